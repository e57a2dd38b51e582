"""assign_wcs for Liger/IRIS-format exposures (S_WCS): the WCS of the PRIMARY FITS keywords.

Detector → sky from CRPIX/CRVAL/CTYPE/CUNIT/CDELT (and PC or CD when present) in the FITS
convention: the first pixel's centre is pixel 1, so 0-based pixel ``x`` sits at ``x + 1 - CRPIX``.
Deliberate difference: the pipeline's gWCS applies ``Shift(-CRPIX)`` to 0-based pixels, one
pixel off the FITS convention (our sky position of pixel ``x`` is Liger's of ``x + 1``), and
ignores PC/CD. The keywords stay as they are, so any FITS reader agrees with our WCS; S_REGION
(the footprint) is written to PRIMARY, where the Liger schema keeps it.
"""

from __future__ import annotations

from image2.core.assign_wcs import fits_keyword_wcs, footprint_region
from image2.core.exposure import Exposure
from image2.core.steps import LIGER_FORMAT
from image2.core.provenance import Outcome, StepSkipped, step


@step("assign_wcs", family=LIGER_FORMAT)
def assign_header_wcs(exposure: Exposure) -> Outcome:
    """Return ``exposure`` with the gwcs of its FITS WCS keywords attached and S_REGION set."""
    if not any("CTYPE1" in exposure.meta.header(hdu) for hdu in ("PRIMARY", "SCI")):
        raise StepSkipped("no FITS WCS keywords (CTYPE1 ...)")
    wcs, hdu = fits_keyword_wcs(exposure)
    meta = exposure.meta.with_cards("PRIMARY", {"S_REGION": footprint_region(wcs)})
    return Outcome(exposure.evolve(wcs=wcs, meta=meta), (f"WCS from the FITS keywords of the {hdu} header",))
