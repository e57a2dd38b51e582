"""Reference choice by the rules of a CRDS cache written here (.pmap/.imap/.rmap), offline, against crds itself."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import socket
from pathlib import Path

import crds  # in the test extra: these tests run, never skip
import pytest
from astropy.io import fits
from click.testing import CliRunner

from image2.cli.main import cli
from image2.core.meta import ExposureInfo, Instrument, Meta, Subarray
from image2.errors import InvalidInputError
from image2.io.refs import crds as refs_crds
from image2.io.refs import index as reference_index
from image2.io.refs.crds import (
    CRDS_VARIABLES,
    SERVERLESS_URL,
    CrdsCache,
    CrdsRules,
    RuleChoice,
    context_cards,
    crds_parameters,
    reference_selector,
)
from image2.io.fits import open_exposure
from image2.io.refs.origins import describe_origins, reference_origins
from image2.core.steps import needed_reftypes
from image2.io.refs.choices import ChosenReferences
from image2.run import references as run_references
from image2.run.options import RunOptions
from image2.run.process import process_input
from image2.io.refs.resolution import resolve_references
from image2.io.refs.store import ReferenceStore
from image2.synthetic.crds_cache import (
    IMAGING_PARKEYS,
    write_imap,
    write_pmap,
    write_rmap,
    write_server_config,
)
from image2.synthetic.exposures import make_rate
from image2.synthetic.references import (
    make_area,
    make_distortion,
    make_filteroffset,
    make_flat,
    make_photom,
)

SMALL = (16, 16)
DETECTOR_PART = (256, 256)
"""The references' shape: enough to hold the exposures' 64 x 80 subarray at (1, 1), so they calibrate."""
IMAGING = ("distortion", "filteroffset", "flat", "photom", "area")
TS = "NRC_IMAGE|NRC_TSIMAGE"
IMAGING_ONLY = {"EXP_TYPE": "NRC_IMAGE", "P_EXP_TY": None}
"""What real NIRCam imaging references say: EXP_TYPE NRC_IMAGE and no P_EXP_TY."""


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Our index in the test's cache folder; no CRDS variable of the user; a server URL that cannot resolve."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for name in (*CRDS_VARIABLES, "CRDS_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRDS_SERVER_URL", "https://crds.invalid")


def write_references(folder: Path) -> None:
    """NIRCam imaging references whose headers say NRC_IMAGE (flats in two versions, NRCB2 too)."""
    folder.mkdir(parents=True, exist_ok=True)
    make_flat(folder / "jwst_nircam_flat_0001.fits", DETECTOR_PART, **IMAGING_ONLY)
    make_flat(folder / "jwst_nircam_flat_0002.fits", DETECTOR_PART, useafter="2023-01-01T00:00:00", value=1.1, **IMAGING_ONLY)
    make_flat(folder / "jwst_nircam_flat_0003.fits", DETECTOR_PART, filter="F200W", pupil=None, **IMAGING_ONLY)
    make_flat(folder / "jwst_nircam_flat_0004.fits", DETECTOR_PART, detector="NRCB2", **IMAGING_ONLY)
    make_area(folder / "jwst_nircam_area_0001.fits", DETECTOR_PART, **IMAGING_ONLY)
    make_photom(folder / "jwst_nircam_photom_0001.fits", detector="NRCB1", **IMAGING_ONLY)
    make_distortion(folder / "jwst_nircam_distortion_0001.asdf", exp_type="NRC_IMAGE", exposure={"p_exptype": None})
    make_filteroffset(folder / "jwst_nircam_filteroffset_0001.asdf", exp_type="NRC_IMAGE",
                      exposure={"p_exptype": None})


def write_rules(mappings: Path) -> None:
    """Two contexts: jwst_0001 (flat rmap 0001) and jwst_0002 (flat rmap 0002 adds a newer flat)."""
    flat_rows = {
        ("NRCB1", "F150W", "CLEAR", f"{TS}|NRC_FLAT"): {"2022-01-01 00:00:00": "jwst_nircam_flat_0001.fits"},
        ("NRCB1", "F200W", "N/A", TS): {"2022-01-01 00:00:00": "jwst_nircam_flat_0003.fits"},
        ("NRCB2", "F150W", "CLEAR", "NRC_IMAGE"): {"2022-01-01 00:00:00": "jwst_nircam_flat_0004.fits"},
        ("NRCB4", "F150W", "CLEAR", "NRC_IMAGE"): "N/A",
    }
    newer = {**flat_rows, ("NRCB1", "F150W", "CLEAR", f"{TS}|NRC_FLAT"): {
        "2022-01-01 00:00:00": "jwst_nircam_flat_0001.fits", "2023-01-01 00:00:00": "jwst_nircam_flat_0002.fits"}}
    for serial, rows in (("0001", flat_rows), ("0002", newer)):
        write_rmap(mappings, f"jwst_nircam_flat_{serial}.rmap", "NIRCAM", "flat", IMAGING_PARKEYS["flat"], rows)
    since = "2022-01-01 00:00:00"
    write_rmap(mappings, "jwst_nircam_area_0001.rmap", "NIRCAM", "area", IMAGING_PARKEYS["area"],
               {("NRCB1|NRCB2", "F150W", "CLEAR", TS): {since: "jwst_nircam_area_0001.fits"}})
    write_rmap(mappings, "jwst_nircam_photom_0001.rmap", "NIRCAM", "photom", IMAGING_PARKEYS["photom"],
               {("NRCB1", TS): {since: "jwst_nircam_photom_0001.fits"}})
    write_rmap(mappings, "jwst_nircam_distortion_0001.rmap", "NIRCAM", "distortion", IMAGING_PARKEYS["distortion"],
               {("NRCB1", "CLEAR|F162M", TS): {since: "jwst_nircam_distortion_0001.asdf"}})
    write_rmap(mappings, "jwst_nircam_filteroffset_0001.rmap", "NIRCAM", "filteroffset",
               IMAGING_PARKEYS["filteroffset"], {("NRCB1", "ANY"): {since: "jwst_nircam_filteroffset_0001.asdf"}})
    for serial in ("0001", "0002"):
        write_imap(mappings, f"jwst_nircam_{serial}.imap", "NIRCAM", {
            "flat": f"jwst_nircam_flat_{serial}.rmap", "area": "jwst_nircam_area_0001.rmap",
            "photom": "jwst_nircam_photom_0001.rmap", "distortion": "jwst_nircam_distortion_0001.rmap",
            "filteroffset": "jwst_nircam_filteroffset_0001.rmap", "dark": "N/A"})
        write_pmap(mappings, f"jwst_{serial}.pmap", {"NIRCAM": f"jwst_nircam_{serial}.imap"})


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crds_cache")
    write_references(root / "references" / "jwst" / "nircam")
    write_rules(root / "mappings" / "jwst")
    write_server_config(root, "jwst_0002.pmap")
    return root


@pytest.fixture
def cache(shared_cache, tmp_path) -> Path:
    """A private copy of the CRDS cache, for tests that change it."""
    return Path(shutil.copytree(shared_cache, tmp_path / "crds_cache"))


def exposure(detector="NRCB1", filter="F150W", pupil="CLEAR", exp_type="NRC_TSIMAGE", date="2023-02-25",
             tsovisit=True, instrument="NIRCAM") -> Meta:
    return Meta(instrument=Instrument(name=instrument, detector=detector, filter=filter, pupil=pupil,
                                      module="B", channel="SHORT"),
                exposure=ExposureInfo(type=exp_type, date_obs=date, time_obs="12:00:00.000", tsovisit=tsovisit),
                subarray=Subarray(name="SUBGRISM64"))


def rate_file(folder: Path, **primary) -> Path:
    cards = {"EXP_TYPE": "NRC_TSIMAGE", "TSOVISIT": True, "SUBARRAY": "SUBGRISM64", "SUBSTRT1": 1, "SUBSTRT2": 1,
             **primary}
    return make_rate(folder / f"rate_{abs(hash(tuple(sorted(cards.items())))):x}.fits", (64, 80), primary=cards)


# ---------------------------------------------------------------- the same choice as crds

CASES = [
    {},
    {"EXP_TYPE": "NRC_IMAGE", "TSOVISIT": False},
    {"DATE-OBS": "2022-06-01"},                   # before the newer flat
    {"DATE-OBS": "2021-06-01"},                   # before every USEAFTER
    {"FILTER": "F200W", "PUPIL": "GDHS0"},        # N/A in the rmap: any pupil
    {"FILTER": "F444W"},                          # no rule for this filter
    {"DETECTOR": "NRCB2", "EXP_TYPE": "NRC_IMAGE", "TSOVISIT": False, "MODULE": "B"},
    {"DETECTOR": "NRCB4", "EXP_TYPE": "NRC_IMAGE", "TSOVISIT": False},  # the rmap says N/A
]


@pytest.mark.parametrize("context", ["jwst_0001.pmap", "jwst_0002.pmap"])
@pytest.mark.parametrize("case", CASES, ids=lambda case: ",".join(f"{k}={v}" for k, v in case.items()) or "tso")
def test_rules_choose_what_crds_itself_returns(shared_cache, tmp_path, monkeypatch, context, case):
    from stdatamodels.jwst import datamodels

    path = rate_file(tmp_path, **case)
    with open_exposure(path) as handle:
        meta = handle.meta
    ours = CrdsRules(CrdsCache.at(shared_cache), context).choose(meta, (*IMAGING, "dark"))
    with datamodels.open(path) as model:
        parameters = model.get_crds_parameters()  # what jwst hands to crds
    monkeypatch.setenv("CRDS_PATH", str(shared_cache))
    monkeypatch.setenv("CRDS_SERVER_URL", SERVERLESS_URL)
    monkeypatch.setenv("CRDS_MODE", "local")
    theirs = crds.getrecommendations(parameters, reftypes=[*IMAGING, "dark"], context=context, observatory="jwst")
    assert set(theirs) == set(ours)
    for reftype, answer in theirs.items():
        choice = ours[reftype]
        assert isinstance(choice, RuleChoice) and choice.context == context
        if answer == "NOT FOUND n/a":
            assert (choice.path, choice.applicable) == (None, False), reftype
        elif answer.startswith("NOT FOUND"):
            assert (choice.path, choice.applicable) == (None, True), reftype
            assert answer[len("NOT FOUND "):].strip() in choice.note
        else:
            assert choice.path.name == answer, reftype
            assert choice.source == f"crds://{answer}"


def test_a_dictionary_of_keywords_or_model_paths_chooses_as_the_meta_does(shared_cache):
    rules = CrdsRules(CrdsCache.at(shared_cache))
    by_meta = rules.choose(exposure(), IMAGING)
    fits_keywords = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCB1", "FILTER": "F150W", "PUPIL": "CLEAR",
                     "EXP_TYPE": "NRC_TSIMAGE", "DATE-OBS": "2023-02-25", "TIME-OBS": "12:00:00"}
    model_paths = {f"meta.{'.'.join(refs_crds.CRDS_KEYWORDS[k].lower().split('.')[1:])}": v
                   for k, v in fits_keywords.items()}
    for parameters in (fits_keywords, model_paths):
        assert {k: c.path for k, c in rules.choose(parameters, IMAGING).items()} == {
            k: c.path for k, c in by_meta.items()}
    assert crds_parameters({"DETECTOR": "NRCB1", "meta.exposure.type": "NRC_IMAGE", "OBJECT": "x", "NAXIS": None}) == {
        "META.INSTRUMENT.DETECTOR": "NRCB1", "META.EXPOSURE.TYPE": "NRC_IMAGE"}


# ---------------------------------------------------------------- contexts

def test_the_pinned_context_is_used(shared_cache, monkeypatch):
    store = CrdsCache.at(shared_cache)
    assert store.contexts() == ("jwst_0001.pmap", "jwst_0002.pmap")
    newest = CrdsRules(store)
    assert newest.context == "jwst_0002.pmap"
    assert newest.select(exposure(), "flat").path.name == "jwst_nircam_flat_0002.fits"
    pinned = CrdsRules(store, "jwst_0001.pmap")
    assert pinned.select(exposure(), "flat").path.name == "jwst_nircam_flat_0001.fits"
    assert pinned.select(exposure(), "flat").matched[0] == "rules: jwst_nircam_flat_0001.rmap of context jwst_0001.pmap"
    monkeypatch.setenv("CRDS_CONTEXT", "jwst_0001.pmap")
    by_environment = CrdsRules(store)
    assert by_environment.context == "jwst_0001.pmap"
    assert by_environment.select(exposure(), "flat").path.name == "jwst_nircam_flat_0001.fits"
    assert CrdsRules(store, "jwst_0002.pmap").context == "jwst_0002.pmap"  # the argument beats $CRDS_CONTEXT
    assert CrdsRules(store, "latest").context == "jwst_0002.pmap"
    assert CrdsRules(store).select(exposure(), "flat").context == "jwst_0001.pmap"
    with pytest.raises(InvalidInputError, match="context jwst_0999.pmap is not in this CRDS cache"):
        CrdsRules(store, "jwst_0999.pmap")
    with pytest.raises(InvalidInputError, match="date-based context needs the CRDS server"):
        CrdsRules(store, "jwst-2023-01-01T00:00:00")


def test_products_record_the_context_and_crds_version(shared_cache, tmp_path):
    chosen = CrdsRules(CrdsCache.at(shared_cache), "jwst_0001.pmap").choose(exposure(filter="F444W"), IMAGING)
    assert context_cards(chosen.values()) == {"CRDS_CTX": "jwst_0001.pmap", "CRDS_VER": crds.__version__}
    _, by_header = resolve_references(exposure(), ReferenceStore([shared_cache / "references"], tmp_path / "i"))
    assert context_cards(item.choice for item in by_header.values()) == {}


# ---------------------------------------------------------------- time series imaging

def test_tso_exposure_gets_every_imaging_reference_from_the_rules(shared_cache):
    meta = exposure()
    assert needed_reftypes(meta) == IMAGING
    references, plan = resolve_references(meta, CrdsRules(CrdsCache.at(shared_cache)))
    for reftype in IMAGING:
        assert getattr(references, reftype) is not None, reftype
        assert plan[reftype].source == f"crds://{plan[reftype].path.name}"
    assert references.flat.source == "crds://jwst_nircam_flat_0002.fits"
    assert references.filteroffset.filters[0].filter == "F150W"


def test_tso_exposure_gets_every_imaging_reference_by_header_match(shared_cache, tmp_path):
    store = ReferenceStore([shared_cache / "references"], tmp_path / "index")
    references, plan = resolve_references(exposure(), store)
    for reftype in IMAGING:
        assert getattr(references, reftype) is not None, reftype
        assert "EXP_TYPE=NRC_IMAGE" in plan[reftype].choice.matched
        assert ("EXP_TYPE NRC_TSIMAGE served by NRC_IMAGE references (no "
                f"{reftype.upper()} reference names NRC_TSIMAGE)") in plan[reftype].choice.matched
    assert references.flat.source == "crds://jwst_nircam_flat_0002.fits"
    assert store.select(exposure(exp_type="NRC_CORON"), "flat").path is None  # only TSO imaging is served so


def test_a_reference_naming_the_tso_type_takes_precedence_over_the_stand_in(tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    make_flat(refs / "imaging.fits", SMALL, useafter="2022-06-01T00:00:00", **IMAGING_ONLY)
    make_flat(refs / "tso.fits", SMALL, exp_type="NRC_TSIMAGE", p_exp_type="NRC_TSIMAGE|")
    make_flat(refs / "imaging_f200w.fits", SMALL, filter="F200W", **IMAGING_ONLY)
    store = ReferenceStore([refs], tmp_path / "index")
    choice = store.select(exposure(), "flat")
    assert choice.path.name == "tso.fits"
    assert not any("served by" in line for line in choice.matched)
    assert ("imaging.fits", "EXP_TYPE NRC_IMAGE does not match the exposure's EXP_TYPE NRC_TSIMAGE") in [
        (r.path.name, r.reason) for r in choice.rejected]
    other_filter = store.select(exposure(filter="F200W"), "flat")  # tso.fits is for F150W: it does not count
    assert other_filter.path.name == "imaging_f200w.fits"
    assert any("served by NRC_IMAGE" in line for line in other_filter.matched)


# ---------------------------------------------------------------- no network, nothing written

def test_choosing_never_touches_the_network(shared_cache, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    for name in ("getaddrinfo", "create_connection", "gethostbyname"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    rules = CrdsRules(CrdsCache.at(shared_cache), "jwst_0001.pmap")
    chosen = rules.choose(exposure(filter="F444W"), IMAGING)  # a no-match case runs crds's fallback paths too
    assert chosen["flat"].path is None and chosen["area"].path is None and chosen["photom"].path is not None
    _, plan = resolve_references(exposure(), rules)
    assert all(plan[r].path is not None for r in IMAGING)
    assert os.environ["CRDS_SERVER_URL"] == "https://crds.invalid"  # restored after crds ran
    assert "CRDS_MODE" not in os.environ


def test_choosing_by_rules_reads_no_reference_header_and_writes_nothing(cache, monkeypatch):
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*")}
    monkeypatch.setattr(reference_index, "scan_file", lambda *a: pytest.fail("a reference header was read"))
    selector = reference_selector(crds_path=cache)
    assert isinstance(selector, CrdsRules)
    _, plan = resolve_references(exposure(), selector)
    assert all(plan[r].path is not None for r in IMAGING)
    assert selector.header_store is None  # no index was built
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*")} == before


# ---------------------------------------------------------------- what the rules refuse

def test_a_file_the_rules_name_but_the_cache_lacks_is_missing_not_replaced(cache):
    (cache / "references" / "jwst" / "nircam" / "jwst_nircam_flat_0002.fits").unlink()
    choice = CrdsRules(CrdsCache.at(cache)).select(exposure(), "flat")
    assert choice.path is None and choice.applicable
    assert "jwst_nircam_flat_0002.fits, chosen by jwst_nircam_flat_0002.rmap of context jwst_0002.pmap, " \
           "is not in the cache" in choice.note
    assert "crds sync --contexts jwst_0002.pmap --fetch-references" in choice.note


def test_flat_cache_layout_and_extra_folders_are_searched(cache, tmp_path):
    nircam = cache / "references" / "jwst" / "nircam"
    for path in nircam.iterdir():
        path.rename(cache / "references" / "jwst" / path.name)
    assert CrdsRules(CrdsCache.at(cache)).select(exposure(), "flat").path == (
        cache / "references" / "jwst" / "jwst_nircam_flat_0002.fits")
    elsewhere = tmp_path / "mine"
    (cache / "references" / "jwst" / "jwst_nircam_area_0001.fits").rename(tmp_path / "area.tmp")
    elsewhere.mkdir()
    (tmp_path / "area.tmp").rename(elsewhere / "jwst_nircam_area_0001.fits")
    rules = CrdsRules(CrdsCache.at(cache), folders=[elsewhere])
    assert rules.select(exposure(), "area").path == elsewhere / "jwst_nircam_area_0001.fits"


def test_a_file_crds_marks_bad_is_refused(cache):
    config = cache / "config" / "jwst" / "server_config"
    bad = "'bad_files_list': ['jwst_nircam_area_0001.fits']"
    config.write_text(config.read_text().replace("'bad_files_list': []", bad))
    choice = CrdsRules(CrdsCache.at(cache)).select(exposure(), "area")
    assert choice.path is None and "marked scientifically invalid by CRDS" in choice.note


def test_rules_that_cannot_be_loaded_are_a_one_line_error(cache):
    rmap = cache / "mappings" / "jwst" / "jwst_nircam_flat_0002.rmap"
    rmap.write_text(rmap.read_text().replace("'F150W'", "'F151W'"))  # the sha1sum no longer fits
    with pytest.raises(InvalidInputError, match="cannot load the CRDS rules: .*sha1sum mismatch"):
        CrdsRules(CrdsCache.at(cache), "jwst_0002.pmap").select(exposure(), "flat")


# ---------------------------------------------------------------- what the rules do not cover

def test_an_instrument_or_type_without_rules_falls_back_to_header_matching(cache, tmp_path):
    liger = tmp_path / "liger"
    liger.mkdir()
    make_flat(liger / "liger_flat.fits", SMALL, instrument="LIGER", detector="IMG", filter="H", pupil=None)
    imap = cache / "mappings" / "jwst"
    write_imap(imap, "jwst_nircam_0003.imap", "NIRCAM", {"flat": "jwst_nircam_flat_0002.rmap"})
    write_pmap(imap, "jwst_0003.pmap", {"NIRCAM": "jwst_nircam_0003.imap"})
    selector = reference_selector([liger], crds_path=cache)
    assert isinstance(selector, CrdsRules) and selector.context == "jwst_0003.pmap"
    liger_choice = selector.select(exposure(instrument="LIGER", detector="IMG", filter="H", pupil=None,
                                            exp_type=None, tsovisit=None), "flat")
    assert liger_choice.path == liger / "liger_flat.fits" and not isinstance(liger_choice, RuleChoice)
    area = selector.select(exposure(), "area")  # not in this .imap: header match in the cache's references
    assert area.path.name == "jwst_nircam_area_0001.fits" and not isinstance(area, RuleChoice)
    assert isinstance(selector.header_store, ReferenceStore)
    nothing = CrdsRules(CrdsCache.at(cache)).select(exposure(), "area")
    assert nothing.path is None
    assert nothing.note == ("context jwst_0003.pmap has no AREA rules for NIRCAM, and no reference folder to "
                            "match headers in")


def test_the_selector_follows_what_is_available(cache, tmp_path, monkeypatch, caplog):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert isinstance(reference_selector([plain]), ReferenceStore)
    with pytest.raises(InvalidInputError, match="no CRDS rules here"):
        reference_selector(crds_path=plain)
    with pytest.raises(InvalidInputError, match="no CRDS rules here"):
        reference_selector(crds_context="jwst_0001.pmap")
    monkeypatch.setenv("CRDS_PATH", str(cache))
    implicit = reference_selector()
    assert isinstance(implicit, CrdsRules) and implicit.context == "jwst_0002.pmap"
    monkeypatch.setattr(refs_crds, "crds_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert isinstance(reference_selector(), ReferenceStore)
    assert "pip install 'image2[crds]'" in caplog.text
    with pytest.raises(InvalidInputError, match=r"needs the crds package: pip install 'image2\[crds\]'"):
        reference_selector(crds_path=cache)


def test_cache_folders_follow_the_crds_variables(cache, monkeypatch):
    assert CrdsCache.from_environ({}) is None
    by_path = CrdsCache.from_environ({"CRDS_PATH": str(cache)})
    assert by_path.mappings == cache / "mappings" / "jwst"
    assert by_path.references == (cache / "references" / "jwst",)
    single = CrdsCache.from_environ({"CRDS_PATH_SINGLE": str(cache / "x"), "CRDS_MAPPATH": str(cache / "mappings")})
    assert single.mappings == cache / "mappings" / "jwst"


# ---------------------------------------------------------------- where each choice came from

def test_origins_say_where_each_choice_came_from(shared_cache, tmp_path):
    mine = make_flat(tmp_path / "my_flat.fits", SMALL)
    rules = CrdsRules(CrdsCache.at(shared_cache), "jwst_0001.pmap")
    origins = reference_origins(exposure(filter="F444W"), rules, {"flat": str(mine)})
    assert list(origins) == list(IMAGING)
    assert (origins["flat"].kind, origins["flat"].source) == ("override", str(mine))
    distortion = origins["distortion"]
    assert (distortion.kind, distortion.summary) == ("rules", "rmap jwst_nircam_distortion_0001.rmap of context "
                                                               "jwst_0001.pmap")
    assert "EXP_TYPE=NRC_TSIMAGE" in distortion.matched
    area = origins["area"]
    assert (area.kind, area.source) == ("none", "N/A")
    assert "no rule of jwst_nircam_area_0001.rmap of context jwst_0001.pmap matches" in area.summary
    assert [(r.path.name, r.reason) for r in area.refused] == [
        ("jwst_nircam_area_0001.fits", "FILTER F444W not in F150W")]
    text = describe_origins(Path("x_rate.fits"), exposure(filter="F444W"), origins)
    assert "crds://jwst_nircam_distortion_0001.asdf  (from rmap jwst_nircam_distortion_0001.rmap of context " \
           "jwst_0001.pmap)" in text
    assert f"{mine}  (from --ref)" in text
    assert "- jwst_nircam_area_0001.fits: FILTER F444W not in F150W" in text
    na = reference_origins(exposure(detector="NRCB4", exp_type="NRC_IMAGE"), rules, {"dark": "N/A"})
    assert na["dark"].kind == "override"
    assert (na["flat"].kind, na["flat"].source) == ("not applicable", "N/A")
    assert "N/A  (not applicable: jwst_nircam_flat_0001.rmap of context jwst_0001.pmap says N/A for this " \
           "exposure)" in describe_origins(Path("x"), exposure(), na)


def test_unfilled_header_match_lists_the_closest_candidates_with_every_reason(tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    make_flat(refs / "one_off.fits", SMALL, filter="F200W", **IMAGING_ONLY)
    make_flat(refs / "two_off.fits", SMALL, filter="F200W", pupil="F162M", **IMAGING_ONLY)
    make_flat(refs / "late.fits", SMALL, filter="F200W", pupil="F162M", useafter="2030-01-01T00:00:00",
              **IMAGING_ONLY)
    make_flat(refs / "other_detector.fits", SMALL, detector="NRCA1", **IMAGING_ONLY)
    store = ReferenceStore([refs], tmp_path / "index")
    origins = reference_origins(exposure(), store, closest=2)
    flat = origins["flat"]
    assert flat.kind == "none"
    assert [(r.path.name, r.reason) for r in flat.refused] == [
        ("one_off.fits", "FILTER F200W does not match the exposure's FILTER F150W"),
        ("two_off.fits", "FILTER F200W does not match the exposure's FILTER F150W; "
                         "PUPIL F162M does not match the exposure's PUPIL CLEAR")]
    assert flat.unlisted == 2  # late.fits (three reasons) and the other detector's file
    assert origins["photom"].refused == ()
    assert (origins["flat"].source, origins["photom"].kind) == ("N/A", "none")
    assert "- 2 more refused" in describe_origins(Path("x"), exposure(), origins)


def test_one_pass_over_the_rules_serves_every_type_of_an_exposure(shared_cache, monkeypatch):
    rules = CrdsRules(CrdsCache.at(shared_cache))
    passes = []
    choose = rules.choose
    monkeypatch.setattr(rules, "choose", lambda *args: passes.append(args[1]) or choose(*args))
    meta = exposure()
    _, plan = resolve_references(meta, rules)
    assert passes == [IMAGING] and all(plan[r].path is not None for r in IMAGING)
    rules.select(exposure(), "flat")  # another exposure (an equal one too) is chosen afresh
    assert len(passes) == 2


def test_without_crds_the_rules_are_a_clear_error(shared_cache, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "crds.core", None)
    with pytest.raises(InvalidInputError, match=r"crds: choosing by CRDS rules needs the crds package"):
        CrdsRules(CrdsCache.at(shared_cache)).select(exposure(), "flat")
    assert os.environ["CRDS_SERVER_URL"] == "https://crds.invalid"


def test_an_ambiguous_header_match_is_flagged_for_the_command_to_report(tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    for name in ("a.fits", "b.fits"):
        make_flat(refs / name, SMALL, **IMAGING_ONLY)
    origins = reference_origins(exposure(), ReferenceStore([refs], tmp_path / "index"))
    assert origins["flat"].ambiguous and origins["flat"].path is None
    assert "a.fits, b.fits match equally well" in origins["flat"].summary
    assert not origins["photom"].ambiguous


# ---------------------------------------------------------------- wired into the commands

R_KEYWORDS = {"flat": "R_FLAT", "area": "R_AREA", "photom": "R_PHOTOM", "distortion": "R_DISTOR",
              "filteroffset": "R_FILOFF"}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve a name or connect fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    for name in ("getaddrinfo", "create_connection", "gethostbyname"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def cal_header(out: Path) -> fits.Header:
    (cal,) = out.glob("*_cal.fits")
    return fits.getheader(cal)


def with_na_flat_context(cache: Path) -> None:
    """Add context jwst_0003.pmap, whose NIRCam .imap declares FLAT N/A (as FGS's does in real contexts)."""
    mappings = cache / "mappings" / "jwst"
    write_imap(mappings, "jwst_nircam_0003.imap", "NIRCAM", {
        "flat": "N/A", "area": "jwst_nircam_area_0001.rmap", "photom": "jwst_nircam_photom_0001.rmap",
        "distortion": "jwst_nircam_distortion_0001.rmap", "filteroffset": "jwst_nircam_filteroffset_0001.rmap"})
    write_pmap(mappings, "jwst_0003.pmap", {"NIRCAM": "jwst_nircam_0003.imap"})


@pytest.mark.parametrize("how", ["--crds-path", "$CRDS_PATH"])
def test_process_calibrates_a_tso_exposure_by_the_rules_offline_and_records_the_context(
        shared_cache, tmp_path, monkeypatch, no_network, how):
    rate = rate_file(tmp_path)
    if how == "$CRDS_PATH":
        monkeypatch.setenv("CRDS_PATH", str(shared_cache))
    options = ("--crds-path", shared_cache) if how == "--crds-path" else ()
    result = run("process", rate, *options, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    header = cal_header(tmp_path / "out")
    with open_exposure(rate) as handle:
        expected = CrdsRules(CrdsCache.at(shared_cache)).choose(handle.meta, IMAGING)
    assert {reftype: header[keyword] for reftype, keyword in R_KEYWORDS.items()} == {
        reftype: f"crds://{expected[reftype].path.name}" for reftype in R_KEYWORDS}
    assert header["R_FLAT"] == "crds://jwst_nircam_flat_0002.fits"  # the newest context's newer flat
    assert (header["CRDS_CTX"], header["CRDS_VER"]) == ("jwst_0002.pmap", crds.__version__)
    assert (header["S_FLAT"], header["S_PHOTOM"], header["S_WCS"]) == ("COMPLETE",) * 3
    assert os.environ["CRDS_SERVER_URL"] == "https://crds.invalid"


@pytest.mark.parametrize("how", ["--crds-context", "$CRDS_CONTEXT"])
def test_process_uses_the_pinned_context(shared_cache, tmp_path, monkeypatch, how):
    rate = rate_file(tmp_path)
    if how == "$CRDS_CONTEXT":
        monkeypatch.setenv("CRDS_CONTEXT", "jwst_0001.pmap")
    options = ("--crds-context", "jwst_0001.pmap") if how == "--crds-context" else ()
    result = run("process", rate, "--crds-path", shared_cache, *options, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    header = cal_header(tmp_path / "out")
    assert (header["CRDS_CTX"], header["R_FLAT"]) == ("jwst_0001.pmap", "crds://jwst_nircam_flat_0001.fits")


def test_process_without_mappings_calibrates_a_tso_exposure_by_header_match(shared_cache, tmp_path):
    rate = rate_file(tmp_path)
    result = run("process", rate, "--refs", shared_cache / "references", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    header = cal_header(tmp_path / "out")
    assert header["R_FLAT"] == "crds://jwst_nircam_flat_0002.fits"
    assert all(header[keyword].startswith("crds://") for keyword in R_KEYWORDS.values())
    assert (header["S_FLAT"], header["S_PHOTOM"], header["S_WCS"]) == ("COMPLETE",) * 3
    assert "CRDS_CTX" not in header  # no context chose


def test_a_type_the_rules_declare_na_is_skipped_as_not_applicable_not_missing(cache, tmp_path):
    with_na_flat_context(cache)
    rate = rate_file(tmp_path)
    result = run("process", rate, "--crds-path", cache, "--crds-context", "jwst_0003.pmap", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "done (flat_field SKIPPED: FLAT not applicable by the rules of context jwst_0003.pmap)" in result.output
    header = cal_header(tmp_path / "out")
    assert (header["S_FLAT"], header["S_PHOTOM"], header["CRDS_CTX"]) == ("SKIPPED", "COMPLETE", "jwst_0003.pmap")
    refs = run("refs", rate, "--crds-path", cache, "--crds-context", "jwst_0003.pmap")
    assert "flat         N/A  (not applicable: jwst_nircam_0003.imap of context jwst_0003.pmap declares FLAT " \
           "N/A for NIRCAM)" in refs.output
    unmatched = run("process", rate_file(tmp_path, FILTER="F444W"), "--crds-path", cache, "--crds-context",
                    "jwst_0002.pmap", "-o", tmp_path / "out2")
    assert unmatched.exit_code == 1  # no rule matches: missing, unlike N/A
    assert "no FLAT, AREA reference found" in unmatched.output


def test_refs_says_where_each_choice_came_from(shared_cache, tmp_path):
    rate = rate_file(tmp_path)
    mine = make_flat(tmp_path / "my_flat.fits", SMALL)
    by_rules = run("refs", rate, "--crds-path", shared_cache, "--ref", f"photom={mine}")
    assert by_rules.exit_code == 0, by_rules.output
    assert ("  flat         crds://jwst_nircam_flat_0002.fits  (from rmap jwst_nircam_flat_0002.rmap of context "
            "jwst_0002.pmap)") in by_rules.output
    assert f"  photom       {mine}  (from --ref)" in by_rules.output
    unfilled = run("refs", rate_file(tmp_path, FILTER="F444W"), "--crds-path", shared_cache)
    assert "  flat         none: no rule of jwst_nircam_flat_0002.rmap of context jwst_0002.pmap matches" \
        in unfilled.output
    assert "closest candidates:" in unfilled.output
    assert "- jwst_nircam_flat_0002.fits: FILTER F444W not in F150W" in unfilled.output
    by_header = run("refs", rate, "--refs", shared_cache / "references")
    assert "  flat         crds://jwst_nircam_flat_0002.fits  (from header match)" in by_header.output
    plain = tmp_path / "plain"
    plain.mkdir()
    refused = run("refs", rate, "--crds-path", plain)
    assert refused.exit_code == 2 and "no CRDS rules here" in refused.output


def test_the_coordinator_chooses_once_and_the_worker_replays_its_choice(cache, tmp_path, monkeypatch):
    with_na_flat_context(cache)
    rate = rate_file(tmp_path)
    options = RunOptions(output_dir=tmp_path / "out", crds_path=cache, crds_context="jwst_0003.pmap")
    chosen = run_references.with_reference_choices(rate, options)
    choices = chosen.references[str(rate)]
    assert all(isinstance(choice, RuleChoice) and choice.context == "jwst_0003.pmap" for choice in choices.values())
    assert not choices["flat"].applicable and choices["area"].path.name == "jwst_nircam_area_0001.fits"
    shipped = pickle.loads(pickle.dumps(chosen))  # as it crosses to a worker process or a Dask worker
    assert shipped == chosen
    monkeypatch.setattr(run_references, "reference_source",
                        lambda options: pytest.fail("the worker chose references itself"))
    [result] = process_input(rate, shipped)
    assert result.status == "done", result.error
    assert result.skipped_steps == ("flat_field SKIPPED: FLAT not applicable by the rules of context jwst_0003.pmap",)
    header = cal_header(tmp_path / "out")
    assert (header["CRDS_CTX"], header["R_AREA"]) == ("jwst_0003.pmap", "crds://jwst_nircam_area_0001.fits")
    assert ChosenReferences({}).select(exposure(), "flat").applicable  # a choice not made is not N/A


def test_the_watch_daemon_chooses_references_for_its_workers(shared_cache, tmp_path, monkeypatch):
    from image2.watch import daemon

    built = {}

    class Recorded:
        def __init__(self, config, **kwargs):
            built.update(kwargs, config=config)

        def run(self) -> int:
            return 0

    monkeypatch.setattr(daemon, "Daemon", Recorded)
    (tmp_path / "in").mkdir()
    result = run("watch", tmp_path / "in", "-o", tmp_path / "out", "--crds-path", shared_cache,
                 "--crds-context", "jwst_0001.pmap")
    assert result.exit_code == 0, result.output
    assert built["prepare"] is run_references.with_reference_choices
    assert (built["config"].options.crds_path, built["config"].options.crds_context) == (
        shared_cache.absolute(), "jwst_0001.pmap")


@pytest.mark.parametrize("command", ["process", "watch", "refs"])
def test_crds_options_that_cannot_choose_are_usage_errors_before_any_work(shared_cache, tmp_path, command):
    rate = rate_file(tmp_path)
    out = tmp_path / "out"
    output = ("-o", out) if command != "refs" else ()
    unknown = run(command, rate if command != "watch" else tmp_path, "--crds-path", shared_cache,
                  "--crds-context", "jwst_0999.pmap", *output)
    assert unknown.exit_code == 2
    assert "context jwst_0999.pmap is not in this CRDS cache; it has jwst_0001.pmap, jwst_0002.pmap" \
        in unknown.output
    no_rules = run(command, rate if command != "watch" else tmp_path, "--crds-path", tmp_path, *output)
    assert no_rules.exit_code == 2 and "no CRDS rules here" in no_rules.output
    assert not out.exists()
