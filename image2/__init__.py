"""image2: stage-2 imaging calibration of infrared count-rate exposures.

Everything below is importable from ``image2`` directly; names are resolved on first use so
that ``import image2`` (and the command line) stays quick.
"""

from __future__ import annotations

import importlib
from typing import Any

from image2._version import __version__

_EXPORTS = {
    # records
    "Exposure": "image2.core.exposure", "stack_integrations": "image2.core.exposure",
    "Meta": "image2.core.meta", "Association": "image2.core.association",
    "References": "image2.core.references", "Config": "image2.core.config",
    "build_config": "image2.core.config", "Products": "image2.core.pipeline",
    # the pipeline and its steps (pure functions)
    "calibrate": "image2.core.pipeline", "plan": "image2.core.pipeline",
    "combine_backgrounds": "image2.core.background", "bkg_subtract": "image2.core.background",
    "parse_subarray_map": "image2.core.parse_subarray_map", "assign_wcs": "image2.core.assign_wcs",
    "dark_current": "image2.core.dark_current", "flat_field": "image2.core.flat_field",
    "photom": "image2.core.photom", "resample": "image2.core.resample",
    # files
    "read_exposure": "image2.io.fits", "open_exposure": "image2.io.fits", "write_exposure": "image2.io.fits",
    "write_products": "image2.io.products", "read_i2d": "image2.io.i2d", "write_i2d": "image2.io.i2d",
    "load_association": "image2.io.association", "load_input": "image2.io.association",
    "load_config": "image2.io.config_file", "read_reference": "image2.io.refs.readers",
    "ReferenceStore": "image2.io.refs.store", "resolve_references": "image2.io.refs.resolution",
    "process_input": "image2.io.process", "RunOptions": "image2.io.process",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'image2' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
