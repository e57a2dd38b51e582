"""Parity tests: image2 against jwst 3.0.0 run in its own environment (see jwst_harness.py)."""
