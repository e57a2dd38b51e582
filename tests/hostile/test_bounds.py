"""The checks behind the corpus, one by one: limits, the scope of stage 2, containment, destinations."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from image2.cli.watch import watched_output_problem
from image2.core.meta import Instrument, Meta, Subarray
from image2.core.scope import completed_steps, geometry_mismatch, refusal, unsupported_type
from image2.errors import InvalidInputError
from image2.io.association import load_association
from image2.io.bounds import Limits, check_fits
from image2.io.fits import fits_text, open_exposure
from image2.run.options import output_problem
from image2.run.process import validate_input
from image2.run.publish import destination_problem
from image2.synthetic.exposures import write_association
from tests.hostile.corpus import asdf_block_bomb, rate


def test_limits_come_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    path = rate(tmp_path)
    check_fits(path)
    monkeypatch.setenv("IMAGE2_MAX_PLANE_PIXELS", "100")
    assert Limits.from_environment() == Limits(max_plane_pixels=100)
    with pytest.raises(InvalidInputError, match="320 pixels per plane exceed the limit of 100"):
        open_exposure(path)
    monkeypatch.setenv("IMAGE2_MAX_PLANE_PIXELS", "lots")
    with pytest.raises(InvalidInputError, match="'lots' is not a whole number"):
        Limits.from_environment()


def test_the_coordinators_check_reads_no_asdf_tree(tmp_path: Path) -> None:
    bomb = asdf_block_bomb(tmp_path)
    validate_input(bomb)  # headers only: the inflating block is the worker's to refuse
    with pytest.raises(InvalidInputError, match="embedded ASDF block"):
        open_exposure(bomb)


def test_stage2_scope_from_metadata() -> None:
    jwst = Meta(instrument=Instrument(name="NIRCAM"))
    assert refusal(jwst, (4, 5)) is None
    assert completed_steps(attrs.evolve(jwst, status={"S_DARK": "COMPLETE"})) == ()  # stage 1 writes S_DARK
    liger = Meta(instrument=Instrument(name="IRIS"))
    assert unsupported_type(liger) is None
    assert completed_steps(attrs.evolve(liger, status={"S_DARK": "COMPLETE"})) == ("dark_current (S_DARK)",)
    assert "not handled" in unsupported_type(Meta(instrument=Instrument(name="NIRSPEC")))
    sub = attrs.evolve(jwst, subarray=Subarray(xsize=5, ysize=9))
    assert geometry_mismatch(sub, (4, 5)) == "SUBSIZE2=9 but the data have 4 rows"


def test_members_are_contained_after_symlinks(tmp_path: Path) -> None:
    rate(tmp_path, "inside_rate.fits")
    (tmp_path / "asn").mkdir()
    (tmp_path / "asn" / "sci_rate.fits").symlink_to(tmp_path / "inside_rate.fits")
    (tmp_path / "asn" / "here").mkdir()
    (tmp_path / "asn" / "alias").symlink_to(tmp_path / "asn" / "here")
    rate(tmp_path / "asn" / "here", "b_rate.fits")
    products = [{"name": "p", "members": [{"expname": "alias/b_rate.fits", "exptype": "science"}]}]
    assert load_association(write_association(tmp_path / "asn" / "ok_asn.json", products)).products
    escaping = [{"name": "p", "members": [{"expname": "sci_rate.fits", "exptype": "science"}]}]
    path = write_association(tmp_path / "asn" / "x_asn.json", escaping)
    with pytest.raises(InvalidInputError, match="through a symlink"):
        load_association(path)
    assert load_association(path, allow_outside=True).products[0].science[0].path.name == "sci_rate.fits"


def test_destinations_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    meta = Meta()
    assert destination_problem(tmp_path, "x", meta, False, False) is None
    (tmp_path / "x_bsub.fits").symlink_to(tmp_path / "elsewhere.fits")
    assert "x_bsub.fits is a dangling symlink" in destination_problem(tmp_path, "x", meta, False, True)


def test_output_and_watched_folders(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert output_problem(tmp_path / "new" / "deeper") is None
    assert "is not a folder" in output_problem(tmp_path / "file" / "out")
    assert watched_output_problem(tmp_path / "in", tmp_path / "out") is None
    assert "is the watched folder" in watched_output_problem(tmp_path, tmp_path)
    assert "inside the output folder" in watched_output_problem(tmp_path / "out" / "in", tmp_path / "out")


def test_texts_fits_cannot_hold_are_escaped() -> None:
    assert fits_text("plain_cal.fits") == "plain_cal.fits"
    assert fits_text("caf\u00e9\n\u5149") == "caf\\xe9\\n\\u5149"
    assert fits_text(3) == 3


def test_nothing_is_published_when_a_destination_is_taken(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from image2.cli.main import cli
    from tests.hostile.corpus import CASES

    for name in ("dangling-cal-symlink", "foreign-i2d-without-cal"):
        folder = tmp_path / name
        folder.mkdir()
        case = next(case for case in CASES if case.name == name)
        inputs = case.make(folder)
        before = {p.name: p.lstat().st_mtime_ns for p in (folder / "out").iterdir()}
        args = ["process", *map(str, inputs), "-o", str(folder / "out"), *(
            arg for reftype in ("distortion", "filteroffset", "flat", "photom", "area") for arg in ("--ref", f"{reftype}=N/A"))]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert {p.name: p.lstat().st_mtime_ns for p in (folder / "out").iterdir()} == before, name
