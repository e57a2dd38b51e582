"""Read and write ``_i2d`` products in the JWST layout (formats.md §2.1), and custom output-WCS files.

Extension order is jwst's: SCI, ERR, [DQ], CON, WHT, VAR_POISSON, VAR_RNOISE, VAR_FLAT, ASDF; an
extension whose array the record does not hold (switched off by enable_ctx, enable_err,
report_var or propagate_dq) is simply absent.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import asdf
import numpy as np
from astropy.io import fits

from image2._version import __version__
from image2.core.resample import Resampled
from image2.errors import InvalidInputError
from image2.io.asdf_tree import EXTNAME as ASDF_EXTNAME
from image2.io.asdf_tree import hdu_to_meta, tree_to_hdu
from image2.io.atomic import atomic_write
from image2.io.fits import merged_cards, meta_from_headers, to_header, tree_of

log = logging.getLogger(__name__)

I2D_EXTENSIONS = ("SCI", "ERR", "DQ", "CON", "WHT", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT")
"""Image extensions of an i2d, in the order they are written."""

_FIELDS = {"SCI": "sci", "ERR": "err", "DQ": "dq", "CON": "con", "WHT": "wht",
           "VAR_POISSON": "var_poisson", "VAR_RNOISE": "var_rnoise", "VAR_FLAT": "var_flat"}


def i2d_hdus(i2d: Resampled, filename: str) -> fits.HDUList:
    """Return the HDUList of ``i2d``, stamped with ``filename`` and the UTC time of writing."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    primary = fits.PrimaryHDU(header=to_header(merged_cards(i2d.meta, "PRIMARY", {
        "DATE": now, "FILENAME": filename, "CAL_VER": __version__, "CAL_VCS": f"image2-{__version__}",
    })))
    hdus: list[Any] = [primary]
    for name in I2D_EXTENSIONS:
        array = getattr(i2d, _FIELDS[name])
        if array is not None:
            header = to_header(merged_cards(i2d.meta, name))
            hdus.append(fits.ImageHDU(data=np.ascontiguousarray(array), header=header, name=name, ver=1))
    hdus.append(tree_to_hdu({"meta": tree_of(i2d)}))
    return fits.HDUList(hdus)


def write_i2d(i2d: Resampled, path: Path | str, overwrite: bool = False) -> Path:
    """Write ``i2d`` to ``path`` atomically; an existing file is kept unless ``overwrite``."""
    path = Path(path)
    hdul = i2d_hdus(i2d, path.name)
    with atomic_write(path, overwrite=overwrite) as handle:
        hdul.writeto(handle)
    log.info("wrote i2d %s", path.name, extra={"file": str(path)})
    return path


def read_i2d(path: Path | str) -> Resampled:
    """Read an ``_i2d`` file (ours or jwst's) into a :class:`Resampled` record."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(path, "no such file")
    try:
        with fits.open(path, memmap=False) as hdul:
            index = {("PRIMARY" if i == 0 else hdu.name.upper()): i for i, hdu in enumerate(hdul)}
            if "SCI" not in index or "WHT" not in index:
                raise InvalidInputError(path, "not an i2d product (SCI and WHT extensions are required)")
            tree = hdu_to_meta(hdul[ASDF_EXTNAME], path) if ASDF_EXTNAME in index else {}
            headers = {name: hdul[i].header for name, i in index.items() if name != ASDF_EXTNAME}
            meta = meta_from_headers(path, headers, tree)
            arrays = {_FIELDS[name]: np.array(hdul[index[name]].data) for name in I2D_EXTENSIONS
                      if name in index and hdul[index[name]].data is not None}
    except InvalidInputError:
        raise
    except (OSError, ValueError, TypeError) as error:
        raise InvalidInputError(path, f"not a readable i2d file ({error})") from None
    try:
        return Resampled(**arrays, meta=meta, wcs=tree.get("wcs"))
    except ValueError as error:
        raise InvalidInputError(path, str(error)) from None


def read_output_wcs(path: Path | str, output_shape: tuple[int, int] | None = None) -> tuple[Any, float | None]:
    """Return the gwcs stored under ``wcs`` in an ASDF file, and its pixel scale (arcsec) if given.

    The tree may also hold ``pixel_scale`` (arcsec) or ``pixel_area`` (arcsec²), and
    ``array_shape`` or ``pixel_shape`` for a WCS without them; ``output_shape`` ``(nx, ny)``
    takes precedence (jwst's ``output_wcs`` file convention).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(path, "no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with asdf.open(path, lazy_load=False, memmap=False) as handle:
                tree = handle.tree
                if "wcs" not in tree:
                    raise InvalidInputError(path, "the ASDF file has no 'wcs' entry")
                wcs = copy.deepcopy(tree["wcs"])
                pixel_scale, pixel_area = tree.get("pixel_scale"), tree.get("pixel_area")
                pixel_shape = tree.get("pixel_shape")
                array_shape = tree.get("array_shape", None if pixel_shape is None else tuple(pixel_shape)[::-1])
    except InvalidInputError:
        raise
    except (OSError, ValueError) as error:
        raise InvalidInputError(path, f"not a readable ASDF file ({error})") from None
    if not hasattr(wcs, "output_frame") or not hasattr(wcs, "invert"):
        raise InvalidInputError(path, f"'wcs' holds a {type(wcs).__name__}, not a gwcs WCS")
    if output_shape is not None:
        wcs.array_shape = (int(output_shape[1]), int(output_shape[0]))
    elif wcs.array_shape is None and array_shape is not None:
        wcs.array_shape = tuple(int(n) for n in array_shape)
    if pixel_scale is None and pixel_area is not None:
        pixel_scale = math.sqrt(pixel_area)
    return wcs, None if pixel_scale is None else float(pixel_scale)
