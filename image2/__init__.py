"""image2: stage-2 imaging calibration of infrared count-rate exposures.

Everything in ``__all__`` is importable from ``image2`` directly. Names are resolved on first
use, so that ``import image2`` (and the command line) stays quick; type checkers and IDEs read
the imports below ``TYPE_CHECKING``. The step functions are found through the step registry
(:mod:`image2.core.steps`); ``tests/test_public_api.py`` keeps the three in agreement.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from image2._version import __version__

if TYPE_CHECKING:
    from image2.core.assign_wcs import assign_wcs as assign_wcs
    from image2.core.association import Association as Association
    from image2.core.background import bkg_subtract as bkg_subtract
    from image2.core.background import combine_backgrounds as combine_backgrounds
    from image2.core.config import Config as Config
    from image2.core.config import build_config as build_config
    from image2.core.dark_current import dark_current as dark_current
    from image2.core.exposure import Exposure as Exposure
    from image2.core.exposure import stack_integrations as stack_integrations
    from image2.core.flat_field import flat_field as flat_field
    from image2.core.liger.dark import subtract_dark as subtract_dark
    from image2.core.liger.flat import apply_flat as apply_flat
    from image2.core.liger.sky import sky_background as sky_background
    from image2.core.liger.sky import subtract_sky as subtract_sky
    from image2.core.liger.subarray_map import parse_subarrays as parse_subarrays
    from image2.core.liger.wcs import assign_header_wcs as assign_header_wcs
    from image2.core.meta import Meta as Meta
    from image2.core.parse_subarray_map import parse_subarray_map as parse_subarray_map
    from image2.core.photom import photom as photom
    from image2.core.pipeline import Products as Products
    from image2.core.pipeline import calibrate as calibrate
    from image2.core.pipeline import calibrate_chunks as calibrate_chunks
    from image2.core.pipeline import plan as plan
    from image2.core.references import References as References
    from image2.core.resample import resample as resample
    from image2.errors import Image2Error as Image2Error
    from image2.errors import InvalidInputError as InvalidInputError
    from image2.errors import MissingReferenceError as MissingReferenceError
    from image2.errors import ReferenceFileError as ReferenceFileError
    from image2.errors import StepError as StepError
    from image2.io.association import load_association as load_association
    from image2.io.association import load_input as load_input
    from image2.io.config_file import load_config as load_config
    from image2.io.fits import open_exposure as open_exposure
    from image2.io.fits import read_exposure as read_exposure
    from image2.io.fits import write_exposure as write_exposure
    from image2.io.i2d import read_i2d as read_i2d
    from image2.io.i2d import write_i2d as write_i2d
    from image2.io.refs.readers import read_reference as read_reference
    from image2.io.refs.store import ReferenceStore as ReferenceStore
    from image2.io.refs.resolution import resolve_references as resolve_references
    from image2.run.options import RunOptions as RunOptions
    from image2.run.process import process_input as process_input
    from image2.run.publish import write_products as write_products
    from image2.run.results import ProductResult as ProductResult

__all__ = [
    "__version__",
    # records
    "Exposure", "stack_integrations", "Meta", "Association", "References", "Config", "build_config", "Products",
    # the pipeline and its steps (pure functions)
    "calibrate", "calibrate_chunks", "plan", "combine_backgrounds", "bkg_subtract", "parse_subarray_map",
    "assign_wcs", "dark_current", "flat_field", "photom", "resample",
    # their Liger/IRIS-format variants
    "parse_subarrays", "assign_header_wcs", "subtract_dark", "apply_flat", "sky_background", "subtract_sky",
    # files
    "read_exposure", "open_exposure", "write_exposure", "read_i2d", "write_i2d", "load_association",
    "load_input", "load_config", "read_reference", "ReferenceStore", "resolve_references",
    # running inputs
    "process_input", "RunOptions", "ProductResult", "write_products",
    # errors
    "Image2Error", "InvalidInputError", "MissingReferenceError", "ReferenceFileError", "StepError",
]

_MODULES = {
    "Exposure": "image2.core.exposure", "stack_integrations": "image2.core.exposure",
    "Meta": "image2.core.meta", "Association": "image2.core.association",
    "References": "image2.core.references", "Config": "image2.core.config",
    "build_config": "image2.core.config", "Products": "image2.core.pipeline",
    "calibrate": "image2.core.pipeline", "calibrate_chunks": "image2.core.pipeline", "plan": "image2.core.pipeline",
    "read_exposure": "image2.io.fits", "open_exposure": "image2.io.fits", "write_exposure": "image2.io.fits",
    "read_i2d": "image2.io.i2d", "write_i2d": "image2.io.i2d",
    "load_association": "image2.io.association", "load_input": "image2.io.association",
    "load_config": "image2.io.config_file", "read_reference": "image2.io.refs.readers",
    "ReferenceStore": "image2.io.refs.store", "resolve_references": "image2.io.refs.resolution",
    "process_input": "image2.run.process", "RunOptions": "image2.run.options",
    "ProductResult": "image2.run.results", "write_products": "image2.run.publish",
    "Image2Error": "image2.errors", "InvalidInputError": "image2.errors", "MissingReferenceError": "image2.errors",
    "ReferenceFileError": "image2.errors", "StepError": "image2.errors",
}
"""Where each public name lives, the step functions aside: the step registry names their modules."""


def _module_of(name: str) -> str | None:
    """Return the module that defines public ``name``."""
    if name in _MODULES:
        return _MODULES[name]
    from image2.core.steps import public_functions

    return public_functions().get(name)


def __getattr__(name: str) -> Any:
    module = _module_of(name) if name in __all__ else None
    if module is None:
        raise AttributeError(f"module 'image2' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
