"""image2: stage-2 imaging calibration of infrared count-rate exposures.

The public API: records and readers/writers here; calibration steps in ``image2.core``.
"""

from image2._version import __version__
from image2.core.association import Association, Member, Product
from image2.core.exposure import Exposure, stack_integrations
from image2.core.meta import Meta
from image2.io.association import load_association, load_input
from image2.io.fits import open_exposure, read_exposure, write_exposure

__all__ = [
    "Association", "Exposure", "Member", "Meta", "Product", "__version__", "load_association",
    "load_input", "open_exposure", "read_exposure", "stack_integrations", "write_exposure",
]
