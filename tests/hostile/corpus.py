"""A corpus of malformed and hostile inputs, each made on demand from a valid synthetic exposure.

Every :class:`Case` builds its inputs in a folder and states what ``image2 process`` and
``image2 info`` must answer: the exit code and a fragment of the one-line message. Nothing
here is committed as a binary; the bombs declare gigabytes in files of kilobytes (sparse
files, patched headers), so making them costs nothing.
"""

from __future__ import annotations

import bz2
import gzip
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import asdf
import attrs
import numpy as np
from astropy.io import fits

from image2.synthetic.exposures import make_rate, write_association

SHAPE = (16, 20)
"""A small subarray keeps every case quick; SUBSTRT places it on the detector."""

SUB = {"SUBSTRT1": 101, "SUBSTRT2": 201, "SUBARRAY": "SUB20"}


@attrs.frozen
class Outcome:
    """What a command must answer: its exit code and a fragment of its output (case-insensitive)."""

    exit_code: int
    fragment: str = ""


@attrs.frozen
class Case:
    """One hostile input: how to make it (returns the command-line inputs) and what each command answers.

    ``info`` None: the case is not run through ``info`` (it is about options or the output folder).
    ``args``: extra options for ``process``; ``bomb``: its peak memory is measured too.
    """

    name: str
    make: Callable[[Path], list[Path]]
    process: Outcome
    info: Outcome | None
    args: tuple[str, ...] = ()
    bomb: bool = False


def rate(folder: Path, name: str = "x_rate.fits", **kwargs) -> Path:
    """A valid small rate file."""
    kwargs.setdefault("primary", {})
    kwargs["primary"] = {**SUB, **kwargs["primary"]}
    return make_rate(folder / name, shape=kwargs.pop("shape", SHAPE), **kwargs)


def header_offsets(path: Path) -> dict[str, tuple[int, int]]:
    """Return (header start, data start) of each HDU by name (PRIMARY for the first)."""
    with fits.open(path) as hdul:
        return {("PRIMARY" if i == 0 else hdu.name): (hdul.fileinfo(i)["hdrLoc"], hdul.fileinfo(i)["datLoc"])
                for i, hdu in enumerate(hdul)}


def patch_card(path: Path, hdu: str, keyword: str, value: str) -> Path:
    """Rewrite card ``keyword`` of HDU ``hdu`` in place with the raw value text ``value`` (no checks)."""
    start, end = header_offsets(path)[hdu]
    raw = bytearray(path.read_bytes())
    for offset in range(start, end, 80):
        if raw[offset:offset + 8].decode("ascii").rstrip() == keyword:
            raw[offset:offset + 80] = f"{keyword:<8}= {value:>20}".ljust(80).encode("ascii")
            path.write_bytes(bytes(raw))
            return path
    raise KeyError(f"{keyword} not in {hdu}")


def with_asdf(folder: Path, payload: bytes | Callable[[], fits.BinTableHDU], name: str = "x_rate.fits") -> Path:
    """A rate file whose ASDF extension holds ``payload`` (raw bytes, or a function making the HDU)."""
    path = rate(folder, name)
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul if h.name != "ASDF"]
    if callable(payload):
        extension = payload()
    else:
        raw = np.frombuffer(payload, np.uint8)
        column = fits.Column(name="ASDF_METADATA", format=f"{raw.size}B", array=raw[np.newaxis])
        extension = fits.BinTableHDU.from_columns([column], name="ASDF")
    fits.HDUList([*hdus, extension]).writeto(path, overwrite=True)
    return path


def asdf_bytes(tree: dict) -> bytes:
    """An ASDF file of ``tree``, as bytes."""
    import io

    buffer = io.BytesIO()
    asdf.AsdfFile(tree).write_to(buffer)
    return buffer.getvalue()


def replace_hdu(folder: Path, name: str, hdu: fits.hdu.base.ExtensionHDU | None, **kwargs) -> Path:
    """A rate file with HDU ``name`` replaced by ``hdu`` (None drops it)."""
    path = rate(folder, **kwargs)
    with fits.open(path) as hdul:
        hdus = [h.copy() if h.name != name else hdu for h in hdul]
    fits.HDUList([h for h in hdus if h is not None]).writeto(path, overwrite=True)
    return path


def sparse_image(folder: Path, shape: tuple[int, ...], extname: str = "SCI") -> Path:
    """A rate file whose ``extname`` declares ``shape`` float32 pixels, the data a hole in a sparse file."""
    path = rate(folder)
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    header = fits.ImageHDU(np.zeros((1,) * len(shape), np.float32), name=extname).header
    for i, n in enumerate(reversed(shape), start=1):
        header[f"NAXIS{i}"] = n
    index = next(i for i, h in enumerate(hdus) if h.name == extname) if extname == "SCI" else len(hdus)
    before = fits.HDUList(hdus[:index])
    with open(path, "wb") as handle:
        before.writeto(handle)
        handle.write(header.tostring().encode("ascii"))
        size = int(np.prod(shape)) * 4
        handle.seek(-(-size // 2880) * 2880, os.SEEK_CUR)
        handle.truncate()
    return path


def compressed_bomb(folder: Path, axes: tuple[int, ...]) -> Path:
    """A tile-compressed SCI of a few pixels whose ZNAXISn then declare ``axes`` (FITS order)."""
    path = rate(folder)
    with fits.open(path) as hdul:
        hdus = [h.copy() for h in hdul]
    sci = next(i for i, h in enumerate(hdus) if h.name == "SCI")
    data = hdus[sci].data if len(axes) == 2 else np.stack([hdus[sci].data] * 2)
    hdus[sci] = fits.CompImageHDU(data, header=hdus[sci].header, name="SCI")
    fits.HDUList(hdus).writeto(path, overwrite=True)
    start, end = header_offsets(path)["SCI"]
    raw = bytearray(path.read_bytes())
    for i, n in enumerate(axes, start=1):
        key = f"ZNAXIS{i}".encode()
        at = raw.find(key.ljust(8) + b"=", start, end)
        raw[at:at + 80] = f"{key.decode():<8}= {n:>20}".ljust(80).encode("ascii")
    path.write_bytes(bytes(raw))
    return path


def asdf_block_bomb(folder: Path, inflated: int = 3 * 2**30) -> Path:
    """A rate file whose ASDF tree holds a zlib block declaring ``inflated`` bytes (a few bytes on disk)."""
    small = asdf.AsdfFile({"meta": {"instrument": {"name": "NIRCAM"}}, "junk": np.zeros(1000, np.uint8)})
    import io

    buffer = io.BytesIO()
    small.set_array_compression(small["junk"], "zlib")
    small.write_to(buffer)
    raw = bytearray(buffer.getvalue())
    at = raw.find(b"\xd3BLK")
    raw[at + 6 + 24:at + 6 + 32] = struct.pack(">Q", inflated)  # the block header's data size
    return with_asdf(folder, bytes(raw))


def fifo(folder: Path, name: str) -> Path:
    path = folder / name
    os.mkfifo(path)
    return path


def link(folder: Path, name: str, target: str | Path) -> Path:
    path = folder / name
    path.symlink_to(target)
    return path


def association(folder: Path, members: list[dict] | None = None, products: list[dict] | None = None,
                name: str = "x_asn.json") -> Path:
    if products is None:
        products = [{"name": "prod", "members": members}]
    return write_association(folder / name, products)


def text(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def _nested(folder: Path) -> list[Path]:
    return [text(folder, "x_asn.json", "[" * 100_000)]


def _truncated(folder: Path, keep: int) -> list[Path]:
    path = rate(folder)
    raw = path.read_bytes()
    path.write_bytes(raw[:keep if keep > 0 else len(raw) + keep])
    return [path]


def _no_end(folder: Path) -> list[Path]:
    path = rate(folder)
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"END" + b" " * 77, b"COMMENT".ljust(80)))
    return [path]


def _many_hdus(folder: Path, count: int) -> list[Path]:
    path = rate(folder)
    block = fits.ImageHDU(name="PAD").header.tostring().encode("ascii")
    with open(path, "ab") as handle:
        for _ in range(count):
            handle.write(block)
    return [path]


def _endless_header(folder: Path) -> list[Path]:
    path = folder / "x_rate.fits"
    first = fits.PrimaryHDU().header.tostring().encode("ascii").replace(b"END" + b" " * 77, b" " * 80)
    with open(path, "wb") as handle:
        handle.write(first)
        handle.write(b" " * 2880 * 1001)
    return [path]


def _status(done: dict[str, str]) -> Callable[[Path], list[Path]]:
    return lambda folder: [rate(folder, "x_cal.fits", primary=done)]


def _primary(cards: dict) -> Callable[[Path], list[Path]]:
    return lambda folder: [rate(folder, primary=cards)]


def _sci(cards: dict) -> Callable[[Path], list[Path]]:
    return lambda folder: [rate(folder, sci=cards)]


def _patched(hdu: str, keyword: str, value: str) -> Callable[[Path], list[Path]]:
    return lambda folder: [patch_card(rate(folder), hdu, keyword, value)]


def _tree(meta: dict) -> Callable[[Path], list[Path]]:
    return lambda folder: [with_asdf(folder, asdf_bytes({"meta": meta}))]


def _compressed(kind: str, suffix: str) -> Callable[[Path], list[Path]]:
    def make(folder: Path) -> list[Path]:
        raw = rate(folder, "plain_rate.fits").read_bytes()
        path = folder / f"x_rate{suffix}"
        path.write_bytes(gzip.compress(raw) if kind == "gzip" else bz2.compress(raw))
        return [path]
    return make


def _member_link(folder: Path) -> list[Path]:
    outside = folder / "outside"
    outside.mkdir()
    rate(outside, "sci_rate.fits")
    inner = folder / "asn"
    inner.mkdir()
    link(inner, "sci_rate.fits", outside / "sci_rate.fits")
    return [association(inner, [{"expname": "sci_rate.fits", "exptype": "science"}])]


def _folder_link(folder: Path) -> list[Path]:
    outside = folder / "outside"
    outside.mkdir()
    rate(outside, "sci_rate.fits")
    inner = folder / "asn"
    inner.mkdir()
    link(inner, "root", "/")
    return [association(inner, [{"expname": f"root{outside / 'sci_rate.fits'}", "exptype": "science"}])]


def _members(*members: dict, make: tuple[str, ...] = ("sci_rate.fits",)) -> Callable[[Path], list[Path]]:
    def build(folder: Path) -> list[Path]:
        for name in make:
            rate(folder, name)
        return [association(folder, list(members))]
    return build


def _zero_member(folder: Path) -> list[Path]:
    rate(folder, "sci_rate.fits")
    return [association(folder, [{"expname": "sci_rate.fits", "exptype": "science"},
                                 {"expname": "/dev/zero", "exptype": "background"}])]


def _big_association(folder: Path) -> list[Path]:
    path = folder / "x_asn.json"
    with open(path, "wb") as handle:
        handle.truncate(65 * 2**20)
    return [path]


def _zero_ints(folder: Path) -> list[Path]:
    empty = {name: np.zeros((0, *SHAPE), dtype) for name, dtype in (
        ("SCI", np.float32), ("ERR", np.float32), ("DQ", np.uint32), ("VAR_POISSON", np.float32),
        ("VAR_RNOISE", np.float32))}
    return [rate(folder, "x_rateints.fits", shape=(2, *SHAPE), arrays=empty,
                 primary={"EXP_TYPE": "NRC_TSIMAGE", "TSOVISIT": True})]


def _shape_mismatch(folder: Path) -> list[Path]:
    return [rate(folder, arrays={"ERR": np.zeros((4, 4), np.float32)})]


def _two_inputs(folder: Path) -> list[Path]:
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    return [rate(folder / "a"), rate(folder / "b", seed=2)]


def _same_product_names(folder: Path) -> list[Path]:
    rate(folder, "a_rate.fits")
    rate(folder, "b_rate.fits", seed=2)
    return [association(folder, products=[
        {"name": "same", "members": [{"expname": "a_rate.fits", "exptype": "science"}]},
        {"name": "same", "members": [{"expname": "b_rate.fits", "exptype": "science"}]}])]


def _foreign_i2d(folder: Path) -> list[Path]:
    out = folder / "out"
    out.mkdir()
    fits.HDUList([fits.PrimaryHDU()]).writeto(out / "x_i2d.fits")
    return [rate(folder)]


def _dangling_cal(folder: Path) -> list[Path]:
    out = folder / "out"
    out.mkdir()
    link(out, "x_cal.fits", folder / "nowhere" / "x_cal.fits")
    return [rate(folder)]


def _output_is_a_dangling_link(folder: Path) -> list[Path]:
    link(folder, "out", folder / "nowhere")
    return [rate(folder)]


TRACEBACK = "Traceback (most recent call last)"

INVALID = 2
"""Exit code of a run whose every input is invalid, and of a usage error."""

FAILED = 1
"""Exit code of a run where some product failed for another reason (the output folder, a step)."""


def _cases() -> list[Case]:
    out: list[Case] = []

    def case(name: str, make: Callable[[Path], list[Path]], process: Outcome, info: Outcome | None = None,
             *, same: bool = False, **kwargs) -> None:
        out.append(Case(name, make, process, process if same else info, **kwargs))

    def bad(name: str, make: Callable[[Path], list[Path]], fragment: str, **kwargs) -> None:
        case(name, make, Outcome(INVALID, fragment), same=True, **kwargs)

    # not files, or not FITS files
    bad("fifo-rate", lambda f: [fifo(f, "x_rate.fits")], "FIFO")
    bad("fifo-association", lambda f: [fifo(f, "x_asn.json")], "FIFO")
    bad("dev-zero-as-rate", lambda f: [link(f, "x_rate.fits", "/dev/zero")], "device")
    bad("dev-zero-as-association", lambda f: [link(f, "x_asn.json", "/dev/zero")], "device")
    case("dev-zero-background-member", _zero_member, Outcome(INVALID, "device"),
         Outcome(INVALID, "leaves the association's folder"), args=("--allow-outside",))
    bad("link-to-folder", lambda f: [link(f, "x_rate.fits", f)], "directory")
    bad("empty-file", lambda f: [text(f, "x_rate.fits", b"")], "not a readable FITS file")
    bad("random-bytes", lambda f: [text(f, "x_rate.fits", os.urandom(5000))], "not a readable FITS file")
    bad("text-named-fits", lambda f: [text(f, "x_rate.fits", "hello\n" * 1000)], "not a readable FITS file")
    bad("gzip-fits", _compressed("gzip", ".fits.gz"), "compressed FITS")
    bad("gzip-named-fits", _compressed("gzip", ".fits"), "gzip-compressed")
    bad("bzip2-fits", _compressed("bzip2", ".fits.bz2"), "compressed FITS")
    bad("truncated-data", lambda f: _truncated(f, -3000), "truncated")
    bad("truncated-header", lambda f: _truncated(f, 4000), "truncated")
    bad("primary-without-end", _no_end, "truncated")
    bad("endless-header", _endless_header, "no END card")
    bad("too-many-hdus", lambda f: _many_hdus(f, 1001), "more than 1000 HDUs")
    bad("naxis1-beyond-file", _patched("SCI", "NAXIS1", "100000"), "declares")
    bad("bitpix-12", _patched("SCI", "BITPIX", "12"), "BITPIX")
    bad("naxis-negative", _patched("SCI", "NAXIS2", "-5"), "negative")
    bad("naxis-not-number", _patched("SCI", "NAXIS1", "'abc'"), "not a whole number")
    # bombs: gigabytes declared in kilobytes
    bad("sparse-40000x40000", lambda f: [sparse_image(f, (40000, 40000))], "exceed the limit", bomb=True)
    bad("sparse-extra-extension", lambda f: [sparse_image(f, (30000, 30000), "JUNK")], "exceed the limit",
        bomb=True)
    bad("sparse-cube-too-many-pixels", lambda f: [sparse_image(f, (5000, 1024, 1024))], "exceed the limit",
        bomb=True)
    bad("tile-compressed-20000x20000", lambda f: [compressed_bomb(f, (20000, 20000))], "exceed the limit",
        bomb=True)
    bad("tile-compressed-cube", lambda f: [compressed_bomb(f, (2048, 2048, 100_000))], "exceed the limit",
        bomb=True)
    case("asdf-zlib-3GiB-block", lambda f: [asdf_block_bomb(f)], Outcome(INVALID, "embedded ASDF block"),
         Outcome(0, "instrument"), bomb=True)
    bad("table-of-a-billion-rows", _patched("ASDF", "NAXIS2", "1000000000"), "table of")
    # layout
    bad("sci-1d", lambda f: [replace_hdu(f, "SCI", fits.ImageHDU(np.zeros(5, np.float32), name="SCI"))], "1-D")
    bad("sci-4d", lambda f: [rate(f, shape=(2, 2, *SHAPE))], "4-D")
    bad("sci-as-bintable", lambda f: [replace_hdu(f, "SCI", fits.BinTableHDU.from_columns(
        [fits.Column(name="a", format="E", array=np.zeros(3))], name="SCI"))], "BinTableHDU, not an image")
    bad("dq-as-bintable", lambda f: [replace_hdu(f, "DQ", fits.BinTableHDU.from_columns(
        [fits.Column(name="a", format="J", array=np.zeros(3))], name="DQ"))], "DQ is a BinTableHDU")
    bad("no-sci", lambda f: [replace_hdu(f, "SCI", None)], "no SCI extension")
    bad("err-shape-differs", _shape_mismatch, "differs from SCI")
    bad("naxis3-zero", _zero_ints, "empty axis")
    # keywords
    bad("no-instrume", lambda f: [rate(f, drop=("INSTRUME",))], "INSTRUME is missing")
    bad("no-exp-type", lambda f: [rate(f, drop=("EXP_TYPE",))], "EXP_TYPE is missing")
    bad("ra-ref-text", _patched("SCI", "RA_REF", "'abc'"), "RA_REF = 'abc' is not a valid float")
    bad("ra-ref-nan", _patched("SCI", "RA_REF", "NAN"), "Unparsable card (RA_REF)")
    bad("substrt-text", _patched("PRIMARY", "SUBSTRT1", "'left'"), "SUBSTRT1 = 'left' is not a valid int")
    # the scope of stage-2 imaging
    case("unknown-instrument", _primary({"INSTRUME": "WFC3", "EXP_TYPE": "WFC3_IMAGE"}),
         Outcome(INVALID, "not handled by stage-2 imaging"), Outcome(0, "WFC3"))
    case("nirspec-fixed-slit", _primary({"INSTRUME": "NIRSPEC", "EXP_TYPE": "NRS_FIXEDSLIT", "DETECTOR": "NRS1"}),
         Outcome(INVALID, "NRS_FIXEDSLIT"), Outcome(0, "NRS_FIXEDSLIT"))
    case("nircam-wfss", _primary({"EXP_TYPE": "NRC_WFSS"}), Outcome(INVALID, "not an imaging type"),
         Outcome(0, "NRC_WFSS"))
    case("miri-lrs", _primary({"INSTRUME": "MIRI", "EXP_TYPE": "MIR_LRS-FIXEDSLIT", "DETECTOR": "MIRIMAGE"}),
         Outcome(INVALID, "not an imaging type"), Outcome(0, "MIR_LRS"))
    case("cal-as-input", _status({"S_FLAT": "COMPLETE", "S_PHOTOM": "COMPLETE", "S_WCS": "COMPLETE"}),
         Outcome(INVALID, "already calibrated: assign_wcs (S_WCS), flat_field (S_FLAT), photom (S_PHOTOM)"),
         Outcome(0, "flat_field"))
    case("resampled-input", _status({"S_RESAMP": "COMPLETE"}), Outcome(INVALID, "resample (S_RESAMP) COMPLETE"),
         Outcome(0, "resample"))
    case("subsize1-disagrees", _primary({"SUBSIZE1": 64}), Outcome(INVALID, "SUBSIZE1=64 but the data have 20"),
         Outcome(0, "size 64"))
    case("subsize2-disagrees", _primary({"SUBSIZE2": 2048}), Outcome(INVALID, "SUBSIZE2=2048"),
         Outcome(0, "size 20 x 2048"))
    # the embedded ASDF tree
    # (``info`` reads headers only, never the tree: it describes these files)
    headers_only = Outcome(0, "instrument")
    case("asdf-corrupt-yaml", lambda f: [with_asdf(f, b"#ASDF 1.0.0\n%YAML 1.1\n--- !core/asdf-1.1.0\nmeta: [\n...\n")],
         Outcome(INVALID, "embedded ASDF tree cannot be read"), headers_only)
    case("asdf-random-bytes", lambda f: [with_asdf(f, os.urandom(3000))],
         Outcome(INVALID, "embedded ASDF tree cannot be read"), headers_only)
    case("asdf-no-column", lambda f: [with_asdf(f, lambda: fits.BinTableHDU.from_columns(
        [fits.Column(name="OTHER", format="J", array=np.zeros(1))], name="ASDF"))],
         Outcome(INVALID, "no ASDF_METADATA column"), headers_only)
    case("asdf-as-image", lambda f: [with_asdf(f, lambda: fits.ImageHDU(np.zeros(4), name="ASDF"))],
         Outcome(INVALID, "not a table"), headers_only)
    case("asdf-provenance-nonsense", _tree({"image2": {"provenance": [{"nonsense": 1}]}}),
         Outcome(INVALID, "provenance entry 1 is not a step record"), headers_only)
    case("asdf-provenance-not-list", _tree({"image2": {"provenance": 5}}), Outcome(INVALID, "not a list"),
         headers_only)
    case("asdf-wcsinfo-5", _tree({"wcsinfo": 5}), Outcome(INVALID, "meta.wcsinfo is a int, not a mapping"),
         headers_only)
    case("asdf-subarray-map-text", _tree({"subarray_map": "x"}), Outcome(INVALID, "meta.subarray_map is a str, not a list"),
         headers_only)
    # associations
    bad("association-100k-brackets", _nested, "nested too deeply")
    bad("association-garbage", lambda f: [text(f, "x_asn.json", "{{{: ][")], "not a valid association")
    bad("association-list", lambda f: [text(f, "x_asn.json", "[1, 2]")], "top level is not an object")
    bad("association-no-products", lambda f: [text(f, "x_asn.json", json.dumps({"products": []}))],
        "non-empty list")
    bad("association-65MiB", _big_association, "larger than")
    bad("association-python-tag", lambda f: [text(f, "x_asn.yaml", "products: !!python/object/apply:os.system ['true']\n")],
        "not a valid association")
    bad("member-absolute", _members({"expname": "/etc/passwd", "exptype": "science"}, make=()),
        "leaves the association's folder")
    bad("member-dotdot", _members({"expname": "../x_rate.fits", "exptype": "science"}, make=()),
        "leaves the association's folder")
    bad("member-symlink-outside", _member_link, "through a symlink")
    bad("member-through-folder-link", _folder_link, "through a symlink")
    bad("two-science-members", _members({"expname": "sci_rate.fits", "exptype": "science"},
                                        {"expname": "sci2_rate.fits", "exptype": "science"},
                                        make=("sci_rate.fits", "sci2_rate.fits")),
        "2 science members")
    bad("no-science-member", _members({"expname": "sci_rate.fits", "exptype": "background"}),
        "no science member")
    bad("member-missing", _members({"expname": "gone_rate.fits", "exptype": "science"}, make=()), "no such file")
    bad("member-expname-number", _members({"expname": 5, "exptype": "science"}, make=()), "no expname")
    bad("member-exptype-number", _members({"expname": "sci_rate.fits", "exptype": 5}), "exptype is not a string")
    bad("association-gzip", lambda f: [text(f, "x_asn.json", gzip.compress(b"{}"))], "gzip-compressed")
    # runs, options and the output folder
    case("two-inputs-one-product", _two_inputs, Outcome(FAILED, "makes the same products (x_*) as"), Outcome(0))
    case("association-products-share-a-name", _same_product_names, Outcome(FAILED, "makes the same products"),
         Outcome(0))
    case("foreign-i2d-without-cal", _foreign_i2d, Outcome(FAILED, "x_i2d.fits already in"), Outcome(0))
    case("dangling-cal-symlink", _dangling_cal, Outcome(FAILED, "dangling symlink"), Outcome(0))
    case("output-is-a-dangling-link", _output_is_a_dangling_link, Outcome(INVALID, "is a dangling symlink"))
    case("output-shape-100000", lambda f: [rate(f)], Outcome(INVALID, "exceed the limit"),
         args=("--step", "resample.output_shape=[100000,100000]"))
    case("pixel-scale-tiny", lambda f: [rate(f)], Outcome(FAILED, "the output grid would be"), None,
         args=("--step", "resample.pixel_scale=0.00001"))
    case("bad-step-parameter", lambda f: [rate(f)], Outcome(INVALID, "pixfrac"), args=("--step", "resample.pixfrac=abc"))
    # valid inputs with hostile names or trailing bytes: processed
    case("non-ascii-name", lambda f: [rate(f, "caf\u00e9_\u5149_rate.fits")], Outcome(0, "done 1"), Outcome(0))
    case("newline-in-name", lambda f: [rate(f, "new\nline_rate.fits")], Outcome(0, "done 1"), Outcome(0))
    bad("trailing-garbage-blocks", lambda f: [_append(rate(f), os.urandom(3 * 2880))], "after the last HDU")
    bad("sparse-20GB-tail", _sparse_tail, "after the last HDU", bomb=True)
    case("trailing-bytes", lambda f: [_append(rate(f), b"\0" * 100)], Outcome(0, "done 1"), Outcome(0))
    return out


def _sparse_tail(folder: Path) -> list[Path]:
    path = rate(folder)
    with open(path, "r+b") as handle:
        handle.truncate(20 * 2**30)
    return [path]


def _append(path: Path, data: bytes) -> Path:
    with open(path, "ab") as handle:
        handle.write(data)
    return path


CASES = _cases()
"""The corpus, in order; names are unique."""
