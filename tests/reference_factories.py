"""Moved to image2.synthetic.references (the demo ships it); re-exported while tests migrate."""

from image2.synthetic.references import *  # noqa: F401,F403
