"""The README's Python API example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

from image2.synthetic import references as rf
from image2.synthetic.exposures import make_rate

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_python_api_example_runs(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_rate(tmp_path / "jw02736001001_02101_00001_nrcb1_rate.fits", shape=(96, 128),
              primary={"SUBSTRT1": 501, "SUBSTRT2": 701})
    refs = tmp_path / "references"
    refs.mkdir()
    rf.make_flat(refs / "flat.fits")
    rf.make_photom(refs / "photom.fits", instrument="NIRCAM", detector="NRCB1")
    rf.make_distortion(refs / "distortion.asdf")
    exec(compile(_python_example(), str(README), "exec"), {})
    assert "'S_PHOTOM': 'COMPLETE'" in capsys.readouterr().out
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["jw02736001001_02101_00001_nrcb1_cal.fits", "jw02736001001_02101_00001_nrcb1_i2d.fits"]
