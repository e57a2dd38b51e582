"""Step configuration: defaults from step signatures, TOML files, --step overrides, config show."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from image2.cli.main import cli
from image2.core.config import Config, ConfigError, build_config, defaults, parse_value, to_toml


def test_defaults_cover_every_step_with_the_spec_values():
    table = defaults()
    assert list(table) == ["bkg_subtract", "parse_subarray_map", "assign_wcs", "dark_current", "flat_field",
                           "sky_sub", "photom", "resample"]
    assert all(params["skip"] is False for params in table.values())
    assert table["bkg_subtract"]["sigma"] == 3.0 and table["bkg_subtract"]["maxiters"] is None
    assert table["bkg_subtract"]["save_results"] is False
    assert table["assign_wcs"]["sip_max_pix_error"] == 0.01 and table["assign_wcs"]["sip_npoints"] == 12
    assert table["flat_field"]["inverse"] is False
    assert table["sky_sub"]["box_size"] == 101 and table["sky_sub"]["filter_size"] == (3, 3)  # Liger's
    assert table["photom"]["apply_time_correction"] is True
    resample = table["resample"]
    assert (resample["pixfrac"], resample["kernel"], resample["weight_type"]) == (1.0, "square", "ivm")
    assert resample["pixel_scale_ratio"] == 1.0 and resample["enable_ctx"] is True


def test_document_then_overrides_take_precedence():
    config = build_config(
        {"save_bsub": True, "steps": {"resample": {"pixfrac": 0.5, "kernel": "point"}}, "flat_field": {"skip": True}},
        ["resample.pixfrac=0.8", "resample.kernel=turbo", "photom.apply_time_correction=false"],
    )
    assert config.value("resample", "pixfrac") == 0.8 and config.value("resample", "kernel") == "turbo"
    assert config.skipped("flat_field") and not config.skipped("photom")
    assert config.value("photom", "apply_time_correction") is False
    assert config.value("bkg_subtract", "save_results") is True
    assert "skip" not in config.parameters("resample") and "save_results" not in config.parameters("bkg_subtract")


def test_values_are_coerced_to_the_default_type():
    config = build_config(overrides=["resample.pixfrac=1", "bkg_subtract.maxiters=5", "resample.output_shape=[100, 80]"])
    assert config.value("resample", "pixfrac") == 1.0 and isinstance(config.value("resample", "pixfrac"), float)
    assert config.value("bkg_subtract", "maxiters") == 5
    assert config.value("resample", "output_shape") == [100, 80]
    assert parse_value("none") is None and parse_value("'quoted'") == "quoted" and parse_value("turbo") == "turbo"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("flatfield.skip=true", "unknown step 'flatfield' (did you mean 'flat_field'?)"),
        ("resample.pixfrc=0.5", "unknown parameter resample.pixfrc (did you mean 'pixfrac'?)"),
        ("flat_field.skip=maybe", "expected a bool"),
        ("resample.pixfrac=big", "expected a float"),
        ("resample", "expected STEP.PARAM=VALUE"),
    ],
)
def test_bad_overrides_are_explained(override: str, message: str):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(overrides=[override])


def test_toml_round_trip_of_the_effective_configuration():
    config = build_config(overrides=["resample.pixfrac=0.7", "flat_field.skip=true"])
    text = to_toml(config)
    assert "# maxiters =   (none)" in text
    assert build_config(tomllib.loads(text)) == config
    assert Config() == build_config()


def test_config_show_command(tmp_path: Path):
    path = tmp_path / "image2.toml"
    path.write_text("[steps.resample]\npixfrac = 0.6\n")
    result = CliRunner().invoke(cli, ["config", "show", "--config", str(path), "--step", "photom.skip=true"])
    assert result.exit_code == 0, result.output
    shown = tomllib.loads(result.output)
    assert shown["steps"]["resample"]["pixfrac"] == 0.6 and shown["steps"]["photom"]["skip"] is True


def test_config_errors_exit_2_with_the_file_named(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("[steps.resample]\nkernal = 'turbo'\n")
    result = CliRunner().invoke(cli, ["config", "show", "--config", str(path)])
    assert result.exit_code == 2 and str(path) in result.output and "did you mean 'kernel'" in result.output
    result = CliRunner().invoke(cli, ["config", "show", "--step", "nosuchstep.x=1"])
    assert result.exit_code == 2 and "unknown step" in result.output
