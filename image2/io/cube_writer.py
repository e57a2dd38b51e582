"""Write a 3-D product integration chunk by chunk, so memory holds one chunk at a time.

The file is laid out completely from the first chunk (every header, and the data areas
sized for all integrations), then each chunk's planes are written in place. The result is
an ordinary FITS file, identical to writing the whole cube at once.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np
from astropy.io import fits

from image2.core.exposure import Exposure
from image2.io.fits import exposure_hdus

BLOCK = 2880


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _extension_bytes(hdu: fits.hdu.base.ExtensionHDU) -> bytes:
    """Return the bytes of one extension HDU (header and padded data) as astropy writes it."""
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    data = buffer.getvalue()
    primary = len(fits.PrimaryHDU().header.tostring())
    return data[primary:]


class CubeWriter:
    """Lays out a 3-D exposure file of ``nints`` integrations and writes chunks into it."""

    def __init__(self, handle: BinaryIO, first: Exposure, nints: int, filename: str) -> None:
        if not first.is_cube:
            raise ValueError("CubeWriter writes 3-D exposures")
        self.handle = handle
        self.nints = nints
        self.offsets: dict[str, tuple[int, int]] = {}  # EXTNAME -> (data start, bytes per integration)
        hdul = exposure_hdus(first, filename)
        hdul[0].header["EXTEND"] = True
        position = self._write(0, hdul[0].header.tostring().encode("ascii"))
        for hdu in hdul[1:]:
            if hdu.is_image and hdu.data is not None and hdu.data.ndim == 3:
                header = hdu.header.copy()
                header["NAXIS3"] = nints
                header_bytes = header.tostring().encode("ascii")
                plane = int(np.prod(hdu.data.shape[1:])) * abs(header["BITPIX"]) // 8
                self.offsets[hdu.name] = (position + len(header_bytes), plane)
                self._write(position, header_bytes)
                position += len(header_bytes) + _padded(plane * nints)
            else:
                position = self._write(position, _extension_bytes(hdu))
        handle.truncate(position)
        self.write(0, first)

    def _write(self, position: int, data: bytes) -> int:
        self.handle.seek(position)
        self.handle.write(data)
        return position + len(data)

    def write(self, start: int, chunk: Exposure) -> None:
        """Write integrations ``[start, start + chunk.nints)`` of every 3-D array."""
        if start + chunk.nints > self.nints:
            raise ValueError(f"chunk ends at integration {start + chunk.nints} beyond {self.nints}")
        arrays = {"SCI": chunk.sci, "ERR": chunk.err, "DQ": chunk.dq, "VAR_POISSON": chunk.var_poisson,
                  "VAR_RNOISE": chunk.var_rnoise, "VAR_FLAT": chunk.var_flat}
        for name, (offset, plane) in self.offsets.items():
            array = arrays[name]
            if array is None:
                raise ValueError(f"chunk lacks {name}, which the first chunk had")
            if name == "DQ":  # FITS stores uint32 as int32 with BZERO = 2**31: flip the sign bit
                raw = (array ^ np.uint32(0x80000000)).astype(">u4")
            else:
                raw = array.astype(">f4")
            self._write(offset + start * plane, raw.tobytes())
