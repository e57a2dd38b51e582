"""ReferenceStore: offline CRDS-like selection, the self-refreshing index, and resolution."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import asdf
import numpy as np
import pytest
from astropy.io import fits

from image2.core.meta import ExposureInfo, Instrument, Meta, Subarray
from image2.core.steps import needed_reftypes
from image2.errors import InvalidInputError, ReferenceFileError
from image2.io.refs import index as reference_index
from image2.io.refs.choices import ChosenReferences
from image2.io.refs import headers as reference_headers
from image2.io.refs.headers import asdf_keys, asdf_meta_block, fits_keys, primary_cards, sci_ndim
from image2.io.refs.resolution import plan_references, resolve_references
from image2.io.refs.selection import apply_rule, exposure_start, parse_useafter, rule_of
from image2.io.refs.store import ReferenceStore, crds_reference_folders
from image2.synthetic.references import (
    make_area,
    make_dark,
    make_distortion,
    make_filteroffset,
    make_flat,
    make_photom,
)

SMALL = (16, 16)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Keep every index in the test's own cache folder and ignore the user's CRDS cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for name in ("CRDS_PATH", "CRDS_PATH_SINGLE", "CRDS_REFPATH", "CRDS_REFPATH_SINGLE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def refs(tmp_path) -> Path:
    folder = tmp_path / "refs"
    folder.mkdir()
    return folder


def exposure(instrument="NIRCAM", detector="NRCB1", filter="F150W", pupil="CLEAR", exp_type="NRC_IMAGE",
             subarray="FULL", date="2023-02-25", time="12:00:00.000", **instrument_fields) -> Meta:
    return Meta(instrument=Instrument(name=instrument, detector=detector, filter=filter, pupil=pupil,
                                      **instrument_fields),
                exposure=ExposureInfo(type=exp_type, date_obs=date, time_obs=time),
                subarray=Subarray(name=subarray))


def store_of(refs: Path, tmp_path: Path) -> ReferenceStore:
    return ReferenceStore([refs], tmp_path / "cache")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``folder`` (hidden ones too) with its mtime and size."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            status = (Path(root) / name).stat()
            out[str(Path(root, name).relative_to(folder))] = (status.st_mtime_ns, status.st_size)
    return out


# ---------------------------------------------------------------- matching rules

def test_selection_by_detector(refs, tmp_path):
    make_flat(refs / "jwst_nircam_flat_0001.fits", SMALL, detector="NRCB1")
    make_flat(refs / "jwst_nircam_flat_0002.fits", SMALL, detector="NRCB2")
    store = store_of(refs, tmp_path)
    choice = store.select(exposure(detector="NRCB2"), "flat")
    assert choice.path == refs / "jwst_nircam_flat_0002.fits"
    assert choice.source == "crds://jwst_nircam_flat_0002.fits"
    assert "DETECTOR=NRCB2" in choice.matched
    assert (choice.rejected, choice.other_detectors) == ((), 1)  # other detectors are counted, not listed
    nowhere = store.select(exposure(detector="NRCB3"), "flat")  # nothing for NRCB3: every file explained
    assert nowhere.note == "none of 2 FLAT reference(s) for NIRCAM NRCB3 matched"
    assert sorted((r.path.name, r.reason) for r in nowhere.rejected) == [
        ("jwst_nircam_flat_0001.fits", "DETECTOR NRCB1 does not match the exposure's DETECTOR NRCB3"),
        ("jwst_nircam_flat_0002.fits", "DETECTOR NRCB2 does not match the exposure's DETECTOR NRCB3")]


def test_detector_patterns_and_wildcards_are_always_considered(refs, tmp_path):
    make_flat(refs / "b1.fits", SMALL, detector="NRCB1", useafter="2022-01-01T00:00:00")
    make_flat(refs / "pattern.fits", SMALL, instrument="NIRCAM", detector="N/A", P_DETECT="NRCB1|NRCB2|",
              useafter="2022-02-01T00:00:00")
    make_flat(refs / "any.fits", SMALL, instrument="NIRCAM", detector="ANY", useafter="2022-03-01T00:00:00")
    store = store_of(refs, tmp_path)
    choice = store.select(exposure(detector="NRCB2"), "flat")
    assert choice.path.name == "pattern.fits" and choice.other_detectors == 1
    assert [r.path.name for r in choice.rejected] == ["any.fits"]
    assert "less specific" in choice.rejected[0].reason
    assert store.select(exposure(detector="NRCB4"), "flat").path.name == "any.fits"


def test_selection_by_filter_and_pupil(refs, tmp_path):
    for serial, (filt, pupil) in enumerate([("F150W", "CLEAR"), ("F162M", "F150W2"), ("F150W2", "CLEAR")]):
        make_flat(refs / f"jwst_nircam_flat_000{serial}.fits", SMALL, filter=filt, pupil=pupil)
    store = store_of(refs, tmp_path)
    assert store.select(exposure(filter="F162M", pupil="F150W2"), "flat").path.name == "jwst_nircam_flat_0001.fits"
    assert store.select(exposure(filter="F150W2", pupil="CLEAR"), "flat").path.name == "jwst_nircam_flat_0002.fits"
    none = store.select(exposure(filter="F444W", pupil="CLEAR"), "flat")
    assert none.path is None and len(none.rejected) == 3
    assert all("FILTER" in r.reason for r in none.rejected)


def test_p_patterns_with_alternatives(refs, tmp_path):
    make_flat(refs / "generic.fits", SMALL, instrument="NIRCAM", filter="N/A", P_FILTER="F150W|F200W|", detector="N/A",
              P_DETECT="NRCB1|NRCB2|")
    store = store_of(refs, tmp_path)
    chosen = store.select(exposure(filter="F200W", detector="NRCB2", exp_type="NRC_TSIMAGE"), "flat")
    assert chosen.path.name == "generic.fits"
    assert {"FILTER=F200W in P_FILTER", "DETECTOR=NRCB2 in P_DETECT", "EXP_TYPE=NRC_TSIMAGE in P_EXP_TY"} <= set(
        chosen.matched)
    miss = store.select(exposure(filter="F090W", detector="NRCB2"), "flat")
    assert miss.path is None
    assert miss.rejected[0].reason == "P_FILTER F150W|F200W| does not match the exposure's FILTER F090W"
    wrong_type = store.select(exposure(exp_type="NRC_CORON"), "flat")
    assert "P_EXP_TY" in wrong_type.rejected[0].reason


def test_pattern_in_asdf_meta(refs, tmp_path):
    make_distortion(refs / "d1.asdf", detector="NRCB1", p_pupil="CLEAR|F162M|")
    store = store_of(refs, tmp_path)
    meta = exposure(pupil="F162M", module="B", channel="SHORT")
    assert store.select(meta, "distortion").path.name == "d1.asdf"
    assert store.select(exposure(pupil="GRISMR", module="B", channel="SHORT"), "distortion").path is None
    assert "MODULE B does not match" in store.select(exposure(module="A", channel="SHORT"),
                                                     "distortion").rejected[0].reason


@pytest.mark.parametrize("reference, value, expected", [
    ({"FILTER": "F150W"}, "F150W", (True, True)),
    ({"FILTER": "F150W"}, "F200W", (False, False)),
    ({"FILTER": "ANY"}, "F200W", (True, False)),
    ({"FILTER": "N/A"}, None, (True, False)),
    ({"FILTER": "GENERIC"}, "F200W", (True, False)),
    ({}, "F200W", (True, False)),
    ({"FILTER": "F150W", "P_FILTER": "F200W|F277W|"}, "F200W", (True, True)),
    ({"FILTER": "F150W", "P_FILTER": "F200W|F277W|"}, "F150W", (False, False)),
    ({"FILTER": "F150W|F200W"}, "F200W", (True, True)),
    ({"FILTER": "F150W"}, None, (False, False)),
    ({"SUBARRAY": "FULL"}, "SUB640", (True, False)),
    ({"SUBARRAY": "SUB640"}, "SUB640", (True, True)),
    ({"SUBARRAY": "SUB320"}, "SUB640", (False, False)),
])
def test_selection_rules(reference, value, expected):
    key = next(k for k in reference if not k.startswith("P_")) if reference else "FILTER"
    rule = rule_of(key, reference)
    ok, _, specific = (True, "", False) if rule is None else apply_rule(rule, value)  # no rule: not constrained
    assert (ok, specific) == expected


def test_useafter_ordering_takes_the_newest_not_after_the_exposure(refs, tmp_path):
    for serial, useafter in enumerate(["2021-01-01T00:00:00", "2023-02-25T11:59:59", "2023-02-25T12:00:01",
                                       "2022-06-01T00:00:00"]):
        make_flat(refs / f"jwst_nircam_flat_000{serial}.fits", SMALL, useafter=useafter)
    store = store_of(refs, tmp_path)
    choice = store.select(exposure(date="2023-02-25", time="12:00:00.000"), "flat")
    assert choice.path.name == "jwst_nircam_flat_0001.fits"
    assert choice.useafter == "2023-02-25T11:59:59"
    reasons = {r.path.name: r.reason for r in choice.rejected}
    assert reasons["jwst_nircam_flat_0002.fits"].startswith("USEAFTER 2023-02-25T12:00:01 is later than")
    assert "older than jwst_nircam_flat_0001.fits" in reasons["jwst_nircam_flat_0003.fits"]
    earlier = store.select(exposure(date="2022-01-01"), "flat")
    assert earlier.path.name == "jwst_nircam_flat_0000.fits"
    assert store.select(exposure(date="2020-12-31"), "flat").path is None


def test_specific_match_beats_a_newer_wildcard(refs, tmp_path):
    make_flat(refs / "exact.fits", SMALL, filter="F150W", useafter="2021-01-01T00:00:00")
    make_flat(refs / "any.fits", SMALL, filter="ANY", useafter="2022-01-01T00:00:00")
    choice = store_of(refs, tmp_path).select(exposure(), "flat")
    assert choice.path.name == "exact.fits"
    assert "less specific match than exact.fits" in choice.rejected[0].reason


def test_full_frame_reference_covers_a_subarray_but_an_exact_subarray_wins(refs, tmp_path):
    make_flat(refs / "full.fits", (1024, 1032), detector="MIRIMAGE", filter="F770W", pupil=None,
              exp_type="MIR_IMAGE")
    store = store_of(refs, tmp_path)
    meta = exposure("MIRI", "MIRIMAGE", "F770W", None, "MIR_IMAGE", subarray="SUB256")
    choice = store.select(meta, "flat")
    assert choice.path.name == "full.fits" and "SUBARRAY FULL covers SUB256" in choice.matched
    make_flat(refs / "sub256.fits", (256, 256), detector="MIRIMAGE", filter="F770W", pupil=None,
              exp_type="MIR_IMAGE", substrt=(413, 51), SUBARRAY="SUB256")
    assert store.select(meta, "flat").path.name == "sub256.fits"


def test_no_match_explains_why(refs, tmp_path):
    make_flat(refs / "miri.fits", (1024, 1032), detector="MIRIMAGE", filter="F770W", pupil=None)
    store = store_of(refs, tmp_path)
    choice = store.select(exposure(), "flat")
    assert choice.path is None and choice.source == "N/A"
    assert choice.explanation() == f"no FLAT reference for NIRCAM in {refs}"
    empty = ReferenceStore([], tmp_path / "cache").select(exposure(), "flat")
    assert "no reference folders" in empty.explanation()


def test_ambiguous_match_is_reported_not_chosen(refs, tmp_path):
    make_flat(refs / "jwst_nircam_flat_0001.fits", SMALL)
    make_flat(refs / "jwst_nircam_flat_0002.fits", SMALL, seed=2)
    store = store_of(refs, tmp_path)
    choice = store.select(exposure(), "flat")
    assert choice.path is None
    assert sorted(p.name for p in choice.ambiguous) == ["jwst_nircam_flat_0001.fits", "jwst_nircam_flat_0002.fits"]
    assert "match equally well" in choice.explanation() and "--ref flat=PATH" in choice.explanation()
    with pytest.raises(ReferenceFileError, match="ambiguous FLAT selection"):
        resolve_references(exposure(), store)


def test_ramp_level_dark_is_never_selected_but_a_rate_dark_is(refs, tmp_path):
    make_dark(refs / "jwst_nircam_dark_0001.fits", (3, 16, 16), useafter="2022-06-01T00:00:00",
              EXP_TYPE="NRC_IMAGE")
    store = store_of(refs, tmp_path)
    jwst_choice = store.select(exposure(), "dark")
    assert jwst_choice.path is None
    assert "ramp-level" in jwst_choice.rejected[0].reason
    make_dark(refs / "liger_dark.fits", SMALL, instrument="LIGER", detector="IMG")
    liger = exposure("LIGER", "IMG", None, None, None, subarray="FULL")
    assert store.select(liger, "dark").path.name == "liger_dark.fits"


def test_useafter_formats_and_exposure_start():
    assert parse_useafter("2022-01-01T00:00:00") == dt.datetime(2022, 1, 1)
    assert parse_useafter("2022-01-01 10:20:30") == dt.datetime(2022, 1, 1, 10, 20, 30)
    assert parse_useafter("Jan 01 2000 00:00:00") == dt.datetime(2000, 1, 1)
    assert parse_useafter("soon") is None and parse_useafter(None) is None
    assert exposure_start(exposure(date="2023-02-25", time="12:00:00.500")) == dt.datetime(2023, 2, 25, 12, 0, 0,
                                                                                           500000)
    from_mjd = Meta(exposure=ExposureInfo(start=60000.5))
    assert exposure_start(from_mjd) == dt.datetime(2023, 2, 25, 12, 0, 0)
    assert exposure_start(Meta()) is None


def test_unparseable_useafter_is_a_rejection(refs, tmp_path):
    make_flat(refs / "bad_date.fits", SMALL, useafter="someday")
    choice = store_of(refs, tmp_path).select(exposure(), "flat")
    assert choice.rejected[0].reason == "USEAFTER 'someday' is not a date"


# ---------------------------------------------------------------- header scanning

def test_direct_primary_header_reading_agrees_with_astropy(tmp_path):
    long_pattern = "|".join(f"F{n:03d}W" for n in range(40, 400, 7)) + "|"
    path = make_flat(tmp_path / "f.fits", SMALL, P_FILTER=long_pattern, AUTHOR="O'Brien & Co",
                     DESCRIP="a flat; with 'quotes'")
    wanted = ("P_FILTER", "AUTHOR", "DESCRIP", "REFTYPE", "USEAFTER", "SUBSTRT1", "MISSING")
    header = fits.getheader(path)
    assert len(long_pattern) > 200 and "CONTINUE" in header.tostring()
    assert primary_cards(path, wanted) == {key: str(header[key]) for key in wanted if key in header}
    assert primary_cards(path, wanted)["P_FILTER"] == long_pattern
    keys, ndim = fits_keys(path)
    assert keys["P_FILTER"] == long_pattern and ndim is None


def test_direct_header_reading_refuses_what_is_not_fits(tmp_path):
    text = tmp_path / "text.fits"
    text.write_bytes(b"hello" * 1000)
    with pytest.raises(ValueError, match="no SIMPLE card"):
        primary_cards(text)
    path = make_flat(tmp_path / "f.fits", SMALL)
    truncated = tmp_path / "cut.fits"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="no END card"):
        primary_cards(truncated)


def test_dark_headers_record_the_sci_dimensions_from_the_headers_alone(tmp_path, monkeypatch):
    ramp, rate = make_dark(tmp_path / "ramp.fits", (3, 8, 8)), make_dark(tmp_path / "rate.fits", (8, 8))
    expected = [fits.getheader(path, "SCI")["NAXIS"] for path in (ramp, rate)]
    monkeypatch.setattr(reference_headers.fits, "open", lambda *a, **k: pytest.fail("astropy read a header"))
    assert [fits_keys(ramp)[1], fits_keys(rate)[1]] == expected == [3, 2]
    assert sci_ndim(make_flat(tmp_path / "flat.fits", SMALL)) == 2
    no_sci = tmp_path / "primary_only.fits"
    fits.PrimaryHDU().writeto(no_sci)
    assert sci_ndim(no_sci) is None


def test_asdf_meta_is_read_from_the_yaml_alone_and_agrees_with_asdf(tmp_path):
    path = make_distortion(tmp_path / "d.asdf", detector="MIRIMAGE", exp_type="MIR_IMAGE",
                           subarray={"name": "FULL", "p_subarray": "FULL|SUB256|"})
    with asdf.open(path) as handle:
        meta = handle.tree["meta"]
        assert asdf_meta_block(path)["subarray"] == dict(meta["subarray"])
        assert asdf_meta_block(path)["instrument"] == dict(meta["instrument"])
    assert asdf_keys(path)["P_SUBARR"] == "FULL|SUB256|"
    assert asdf_keys(path)["REFTYPE"] == "distortion"


def test_asdf_without_meta_falls_back_and_yields_no_keys(tmp_path):
    path = tmp_path / "bare.asdf"
    asdf.AsdfFile({"model": {"a": 1}}).write_to(path)
    assert asdf_meta_block(path) is None
    assert asdf_keys(path) == {}
    junk = tmp_path / "junk.asdf"
    junk.write_text("not asdf")
    with pytest.raises(ValueError, match="not an ASDF file"):
        asdf_meta_block(junk)


# ---------------------------------------------------------------- the index

def test_index_lives_in_the_cache_and_the_folder_is_never_written(refs, tmp_path):
    make_flat(refs / "a.fits", SMALL)
    (refs / "sub").mkdir()
    make_distortion(refs / "sub" / "d.asdf")
    before = snapshot(refs)
    store = store_of(refs, tmp_path)
    store.select(exposure(), "flat")
    store.refresh()
    (index_file,) = store.index_files
    assert index_file.is_file() and tmp_path / "cache" in index_file.parents
    document = json.loads(index_file.read_text())
    assert set(document["files"]) == {"a.fits", "sub/d.asdf"}
    assert document["files"]["sub/d.asdf"]["keys"]["REFTYPE"] == "distortion"
    assert snapshot(refs) == before


def test_default_cache_is_under_xdg_cache_home(refs, tmp_path):
    make_flat(refs / "a.fits", SMALL)
    store = ReferenceStore([refs])
    assert store.index_files[0].parent.parent == tmp_path / "xdg-cache" / "image2"


def test_cache_inside_a_reference_folder_is_refused(refs):
    with pytest.raises(InvalidInputError, match="never writes into reference folders"):
        ReferenceStore([refs], refs / ".cache")
    with pytest.raises(InvalidInputError, match="reference folder does not exist"):
        ReferenceStore([refs / "missing"])


def test_index_is_reused_without_rereading_headers(refs, tmp_path, monkeypatch):
    make_flat(refs / "a.fits", SMALL)
    make_photom(refs / "p.fits")
    store_of(refs, tmp_path)
    calls = []
    original = reference_index.scan_file
    monkeypatch.setattr(reference_index, "scan_file", lambda *a: calls.append(a[0].name) or original(*a))
    again = store_of(refs, tmp_path)
    assert calls == [] and len(again) == 2
    make_area(refs / "area.fits", SMALL)
    again.refresh()
    assert calls == ["area.fits"]


def test_index_refreshes_when_a_file_changes_in_place(refs, tmp_path):
    path = make_flat(refs / "flat.fits", SMALL, detector="NRCB1")
    store = store_of(refs, tmp_path)
    assert store.select(exposure(detector="NRCB1"), "flat").path == path
    make_flat(path, SMALL, detector="NRCB2", SUBSTRT1=1, DESCRIP="re-delivered for NRCB2 with a longer text")
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))  # mtime surely differs
    assert store.select(exposure(detector="NRCB1"), "flat").path is None  # same store notices
    assert store_of(refs, tmp_path).select(exposure(detector="NRCB2"), "flat").path == path


def test_in_place_edit_of_a_matching_file_is_noticed_without_a_directory_change(refs, tmp_path):
    path = make_flat(refs / "flat.fits", SMALL, detector="NRCB1")
    store = store_of(refs, tmp_path)
    assert store.select(exposure(detector="NRCB1"), "flat").path == path
    directory_mtime = refs.stat().st_mtime_ns
    with open(path, "r+b") as handle:  # same length, same inode: only the file's mtime moves
        raw = handle.read(2880)
        handle.seek(0)
        handle.write(raw.replace(b"'2022-01-01T00:00:00'", b"'2030-01-01T00:00:00'"))
    os.utime(path, ns=(1_800_000_000_000_000_000, 1_800_000_000_000_000_000))
    assert refs.stat().st_mtime_ns == directory_mtime
    choice = store.select(exposure(detector="NRCB1"), "flat")
    assert choice.path is None
    assert choice.rejected[0].reason.startswith("USEAFTER 2030-01-01T00:00:00 is later than")


def test_index_refreshes_when_a_file_appears_or_disappears(refs, tmp_path):
    make_flat(refs / "old.fits", SMALL, useafter="2021-01-01T00:00:00")
    store = store_of(refs, tmp_path)
    assert store.select(exposure(), "flat").path.name == "old.fits"
    (refs / "instrument").mkdir()
    make_flat(refs / "instrument" / "new.fits", SMALL, useafter="2022-01-01T00:00:00")
    assert store.select(exposure(), "flat").path.name == "new.fits"
    (refs / "instrument" / "new.fits").unlink()
    assert store.select(exposure(), "flat").path.name == "old.fits"
    (refs / "old.fits").unlink()
    assert store.select(exposure(), "flat").path is None
    assert json.loads(store.index_files[0].read_text())["files"] == {}


def test_unreadable_and_foreign_files_do_not_break_the_store(refs, tmp_path):
    (refs / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    (refs / "notes.txt").write_text("not a reference")
    from image2.synthetic.exposures import make_rate
    make_rate(refs / "science_rate.fits")
    make_flat(refs / "flat.fits", SMALL)
    store = store_of(refs, tmp_path)
    assert len(store) == 1
    assert store.select(exposure(), "flat").path.name == "flat.fits"
    files = json.loads(store.index_files[0].read_text())["files"]
    assert files["broken.fits"]["error"] and "notes.txt" not in files


# ---------------------------------------------------------------- CRDS cache

@pytest.mark.parametrize("mode", ["instrument", "flat"])
def test_crds_cache_in_both_layouts(tmp_path, mode):
    crds = tmp_path / "crds_cache"
    (crds / "config" / "jwst").mkdir(parents=True)
    (crds / "config" / "jwst" / "ref_cache_subdir_mode").write_text(mode)
    folder = crds / "references" / "jwst" / ("nircam" if mode == "instrument" else "")
    folder.mkdir(parents=True)
    make_flat(folder / "jwst_nircam_flat_0745.fits", SMALL)
    before = snapshot(crds)
    environ = {"CRDS_PATH": str(crds), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert crds_reference_folders(environ) == (crds / "references" / "jwst",)
    store = ReferenceStore([], environ=environ)
    choice = store.select(exposure(), "flat")
    assert choice.source == "crds://jwst_nircam_flat_0745.fits"
    assert snapshot(crds) == before
    assert ReferenceStore([], tmp_path / "c2", use_crds=False, environ=environ).folders == ()


def test_crds_path_variants():
    assert crds_reference_folders({}) == ()
    assert crds_reference_folders({"CRDS_PATH": "/nonexistent/crds"}) == ()


def test_crds_refpath_overrides_crds_path(tmp_path):
    refpath = tmp_path / "refpath" / "jwst"
    refpath.mkdir(parents=True)
    environ = {"CRDS_PATH": str(tmp_path / "other"), "CRDS_REFPATH": str(tmp_path / "refpath")}
    assert crds_reference_folders(environ) == (refpath,)
    assert crds_reference_folders({"CRDS_REFPATH_SINGLE": str(refpath)}) == (refpath,)


# ---------------------------------------------------------------- needs and resolution

def test_needed_reftypes_per_instrument():
    assert needed_reftypes(exposure()) == ("distortion", "filteroffset", "flat", "photom", "area")
    assert needed_reftypes(exposure("FGS", "GUIDER1", None, None, "FGS_IMAGE")) == (
        "distortion", "flat", "photom", "area")
    assert "dark" in needed_reftypes(exposure("IRIS", "IMG1", None, None, None))
    assert "dark" not in needed_reftypes(exposure("MIRI", "MIRIMAGE", "F770W", None, "MIR_IMAGE"))


@pytest.fixture
def full_refs(refs):
    make_flat(refs / "jwst_nircam_flat_0001.fits", SMALL)
    make_photom(refs / "jwst_nircam_photom_0001.fits")
    make_distortion(refs / "jwst_nircam_distortion_0001.asdf")
    make_filteroffset(refs / "jwst_nircam_filteroffset_0001.asdf")
    return refs


def test_resolve_reads_store_choices_and_records_crds_names(full_refs, tmp_path):
    store = store_of(full_refs, tmp_path)
    meta = exposure(module="B", channel="SHORT")
    references, plan = resolve_references(meta, store)
    assert references.flat.source == "crds://jwst_nircam_flat_0001.fits"
    assert references.photom.rows["photmjsr"].dtype == np.float32
    assert references.distortion.source == "crds://jwst_nircam_distortion_0001.asdf"
    assert references.filteroffset.filters[0].filter == "F150W"
    assert references.area is None and references.dark is None
    assert (plan["area"].origin, plan["area"].source) == ("none", "N/A")
    assert (plan["flat"].origin, plan["flat"].path) == ("store", full_refs / "jwst_nircam_flat_0001.fits")
    assert list(plan) == ["distortion", "filteroffset", "flat", "photom", "area"]


def test_chosen_references_resolve_as_the_store_did(full_refs, tmp_path):
    """Both reference sources answer select(meta, reftype); the choices a coordinator hands on resolve alike."""
    store = store_of(full_refs, tmp_path)
    meta = exposure(module="B", channel="SHORT")
    by_store, store_plan = resolve_references(meta, store)
    chosen = ChosenReferences({reftype: item.choice for reftype, item in store_plan.items()})
    by_choices, chosen_plan = resolve_references(meta, chosen)
    for reftype in store_plan:
        store_record, chosen_record = getattr(by_store, reftype), getattr(by_choices, reftype)
        assert (chosen_record is None) == (store_record is None)
        assert getattr(chosen_record, "source", None) == getattr(store_record, "source", None)
    assert np.array_equal(by_choices.flat.sci, by_store.flat.sci)
    assert [(i.origin, i.source, i.path) for i in chosen_plan.values()] == [
        (i.origin, i.source, i.path) for i in store_plan.values()]
    assert chosen_plan["area"].choice.explanation() == store_plan["area"].choice.explanation()
    assert "was chosen" in plan_references(meta, ChosenReferences({}))["flat"].choice.explanation()


def test_overrides_win_and_are_recorded_as_absolute_paths(full_refs, tmp_path, monkeypatch):
    store = store_of(full_refs, tmp_path)
    mine = make_flat(tmp_path / "my_flat.fits", SMALL, value=2.0)
    dark = make_dark(tmp_path / "rate_dark.fits", SMALL)
    monkeypatch.chdir(tmp_path)
    references, plan = resolve_references(exposure(module="B", channel="SHORT"), store,
                                          {"flat": "my_flat.fits", "PHOTOM": "N/A", "dark": str(dark)})
    assert references.flat.source == str(mine.resolve())
    assert abs(float(np.mean(references.flat.sci)) - 2.0) < 0.05
    assert references.photom is None
    assert references.dark.source == str(dark.resolve())
    assert (plan["photom"].origin, plan["photom"].source) == ("override", "N/A")
    assert list(plan) == ["distortion", "filteroffset", "dark", "flat", "photom", "area"]


def test_resolution_errors(full_refs, tmp_path):
    store = store_of(full_refs, tmp_path)
    with pytest.raises(ValueError, match="unknown reference type"):
        plan_references(exposure(), store, {"gain": "N/A"})
    with pytest.raises(ReferenceFileError, match="does not exist"):
        resolve_references(exposure(), store, {"flat": str(tmp_path / "nope.fits")})
    make_photom(full_refs / "jwst_nircam_photom_0002.fits", useafter="2022-05-01T00:00:00", REFTYPE="FLAT",
                FILTER="F150W", PUPIL="CLEAR")
    with pytest.raises(ReferenceFileError, match="jwst_nircam_photom_0002.fits: has no SCI image extension"):
        resolve_references(exposure(module="B", channel="SHORT"), store)
    references, _ = resolve_references(exposure(), None, {"area": "N/A"})
    assert references == type(references)()
