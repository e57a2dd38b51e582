"""Moved to image2.synthetic.exposures (the demo ships it); re-exported while tests migrate."""

from image2.synthetic.exposures import *  # noqa: F401,F403
