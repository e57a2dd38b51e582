"""``image2 watch`` on Liger/IRIS files: the real daemon, real Liger-format files, references from a folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from image2.synthetic.liger import dark_arrays, flat_arrays, frame_arrays, frame_keywords, reference_keywords
from image2.synthetic.liger import write_liger_file
from image2.watch.ledger import DONE
from tests.watch.test_acceptance import WatchProcess, count_in, ledger_rows, products, wait_until

pytestmark = pytest.mark.slow

SHAPE = (256, 256)
JD = 2460600.75


def _liger_dataset(staging: Path, references: Path) -> dict[str, Path]:
    """A dark and a flat in ``references``; three SCI frames and a SKY frame, named as Liger names them, in ``staging``."""
    dark, flat = dark_arrays(SHAPE), flat_arrays(SHAPE)
    write_liger_file(references / "Liger_IMG_DARK.fits", dark, reference_keywords("dark", shape=SHAPE, jd_start=JD))
    write_liger_file(references / "Liger_IMG_FLAT.fits", flat, reference_keywords("flat", shape=SHAPE, jd_start=JD))
    frames = {}
    for number, imtype in enumerate(("SCI", "SCI", "SCI", "SKY"), start=1):
        arrays = frame_arrays(SHAPE, seed=10 * number, sky=40.0 + number, dark=dark["data"], flat=flat["data"],
                              stars=0 if imtype == "SKY" else 40, galaxies=0 if imtype == "SKY" else 5)
        keywords = frame_keywords(imtype=imtype, number=number, jd_start=JD + number / 1440, shape=SHAPE)
        name = f"2024B-P001-001_Liger_IMG_{imtype}_LVL1_{number:04d}.fits"
        frames[f"{imtype.lower()}{number}"] = write_liger_file(staging / name, arrays, keywords)
    return frames


def test_liger_frames_and_a_liger_form_association_are_calibrated_once_sky_frames_are_not_inputs(tmp_path: Path):
    pytest.importorskip("photutils")
    staging, references = tmp_path / "staging", tmp_path / "refs"
    frames = _liger_dataset(staging, references)
    association = staging / "liger_sky_asn.json"
    association.write_text(json.dumps({"SCI": [frames["sci3"].name], "SKY": [frames["sky4"].name]}))
    daemon = WatchProcess(tmp_path, "--settle", "1", "--reconcile", "1", "--refs", str(references), declined=())
    os.replace(association, daemon.inbox / association.name)  # the association first: its members wait for it
    wait_until(lambda: count_in(daemon.output, "waiting") == 1, what="association waiting")
    for key in ("sci1", "sci2", "sci3", "sky4"):
        os.replace(frames[key], daemon.inbox / frames[key].name)
    wait_until(lambda: count_in(daemon.output, DONE) == 3, what="three inputs done")
    assert daemon.stop() == 0
    rows = ledger_rows(daemon.output)
    assert sorted((r.path.name, r.state) for r in rows) == sorted(
        [(frames["sci1"].name, DONE), (frames["sci2"].name, DONE), (association.name, DONE)])
    roots = [frames[key].name.removesuffix(".fits") for key in ("sci1", "sci2", "sci3")]
    assert products(daemon.output) == {f"{root}_cal.fits" for root in roots}
    for root in roots:
        with fits.open(daemon.output / f"{root}_cal.fits") as hdul:
            primary = hdul[0].header
            assert [primary[k] for k in ("S_DARK", "S_FLAT", "S_SKYSUB", "S_WCS")] == ["COMPLETE"] * 4
            assert primary["R_FLAT"].endswith("Liger_IMG_FLAT.fits") and primary["DATAMODL"] == "ImagerModel"
            assert [hdu.name for hdu in hdul[1:4]] == ["DATA", "ERR", "DQ"]
            assert abs(np.nanmedian(hdul["DATA"].data)) < 2.0  # a sky of about 40 e-/s subtracted
    with fits.open(daemon.output / f"{roots[2]}_cal.fits") as hdul:
        assert hdul[0].header["ASNTABLE"] == association.name
