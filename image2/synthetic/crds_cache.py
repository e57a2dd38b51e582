"""Writers of a JWST CRDS cache for tests, benchmarks and demos (reference_files.md §10).

Rules files are written in the real syntax: a Python-literal ``header`` (keys sorted, with the
``sha1sum`` that crds verifies on load: the SHA-1 of the text without the sha1sum line) and a
``selector``: ``{INSTRUMENT: imap}`` for a ``.pmap``, ``{reftype: rmap or 'N/A'}`` for an
``.imap``, and ``Match({(values, ...): UseAfter({'YYYY-MM-DD hh:mm:ss': file})})`` for an
``.rmap``, whose match values may hold ``|`` alternatives, ``N/A`` or ``ANY``. References are
written with :mod:`image2.synthetic.references` into ``references/jwst/<instrument>/``.
"""

from __future__ import annotations

import hashlib
import pprint
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DATE_TIME = ("META.OBSERVATION.DATE", "META.OBSERVATION.TIME")
"""The UseAfter parameters of every JWST rmap."""

IMAGING_PARKEYS = {
    "flat": ("META.INSTRUMENT.DETECTOR", "META.INSTRUMENT.FILTER", "META.INSTRUMENT.PUPIL", "META.EXPOSURE.TYPE"),
    "area": ("META.INSTRUMENT.DETECTOR", "META.INSTRUMENT.FILTER", "META.INSTRUMENT.PUPIL", "META.EXPOSURE.TYPE"),
    "photom": ("META.INSTRUMENT.DETECTOR", "META.EXPOSURE.TYPE"),
    "distortion": ("META.INSTRUMENT.DETECTOR", "META.INSTRUMENT.PUPIL", "META.EXPOSURE.TYPE"),
    "filteroffset": ("META.INSTRUMENT.DETECTOR", "META.EXPOSURE.TYPE"),
}
"""Match parameters like those of the NIRCam imaging rmaps, per reference type."""

FILE_EXTENSIONS = {"distortion": ".asdf", "filteroffset": ".asdf"}


def mapping_text(header: Mapping[str, Any], selector: str) -> str:
    """Return the text of a mapping file with ``header`` (plus its sha1sum) and ``selector``."""
    lines = ["header = {"]
    lines += [f"    {key!r} : {pprint.pformat(header[key], width=200)}," for key in sorted(header)]
    lines += ["}", "", f"selector = {selector}", ""]
    digest = hashlib.sha1("\n".join(lines).encode()).hexdigest()
    at = 1 + sum(1 for key in header if key < "sha1sum")
    lines.insert(at, f"    'sha1sum' : '{digest}',")
    return "\n".join(lines)


def _dictionary(items: Mapping[str, str], indent: str = "") -> str:
    rows = "".join(f"{indent}    {key!r} : {value!r},\n" for key, value in sorted(items.items()))
    return "{\n" + rows + indent + "}"


def write_pmap(folder: Path | str, name: str, imaps: Mapping[str, str]) -> Path:
    """Write a pipeline context ``name`` selecting an ``.imap`` per instrument (upper-case names)."""
    header = {"derived_from": "image2.synthetic.crds_cache", "mapping": "PIPELINE", "name": name,
              "observatory": "JWST", "parkey": ("META.INSTRUMENT.NAME",)}
    return _write(Path(folder) / name, mapping_text(header, _dictionary(imaps)))


def write_imap(folder: Path | str, name: str, instrument: str, rmaps: Mapping[str, str]) -> Path:
    """Write an instrument context selecting an ``.rmap`` (or ``N/A``) per reference type."""
    header = {"derived_from": "image2.synthetic.crds_cache", "instrument": instrument.upper(),
              "mapping": "INSTRUMENT", "name": name, "observatory": "JWST", "parkey": ("REFTYPE",)}
    return _write(Path(folder) / name, mapping_text(header, _dictionary(rmaps)))


def write_rmap(folder: Path | str, name: str, instrument: str, reftype: str, parkeys: Sequence[str],
               rows: Mapping[tuple[str, ...], Mapping[str, str] | str]) -> Path:
    """Write a reference mapping: ``rows`` maps a tuple of match values (one per ``parkeys`` entry)
    to {USEAFTER 'YYYY-MM-DD hh:mm:ss': file}, or directly to a file name or ``N/A``."""
    header = {"classes": ("Match", "UseAfter"), "derived_from": "image2.synthetic.crds_cache",
              "file_ext": FILE_EXTENSIONS.get(reftype, ".fits"), "filekind": reftype.upper(),
              "filetype": reftype.upper(), "instrument": instrument.upper(), "mapping": "REFERENCE",
              "name": name, "observatory": "JWST", "parkey": (tuple(parkeys), DATE_TIME), "suffix": reftype,
              "text_descr": f"{reftype} written by a test"}
    body = []
    for values, choice in rows.items():
        if len(values) != len(parkeys):
            raise ValueError(f"{name}: match row {values} does not have one value per parameter {tuple(parkeys)}")
        target = repr(choice) if isinstance(choice, str) else f"UseAfter({_dictionary(choice, '    ')})"
        body.append(f"    {tuple(values)!r} : {target},\n")
    return _write(Path(folder) / name, mapping_text(header, "Match({\n" + "".join(body) + "})"))


def write_server_config(cache: Path | str, context: str) -> Path:
    """Write ``config/jwst/server_config`` as ``crds sync`` leaves it, naming ``context`` operational.

    crds's top-level calls (``crds.getreferences``) read it when the server is unreachable.
    """
    info = {"observatory": "jwst", "operational_context": context, "edit_context": context,
            "build_context": context, "versions_context": context, "bad_files": "", "bad_files_list": [],
            "force_remote_mode": False, "crds_version": {"str": "image2 synthetic"},
            "last_synced": "2024-05-01 12:00:00", "reference_url": "", "mapping_url": "",
            "download_metadata": "", "effective_mode": "local"}
    path = Path(cache) / "config" / "jwst" / "server_config"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pprint.pformat(info))
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
