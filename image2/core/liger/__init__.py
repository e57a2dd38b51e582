"""Liger/IRIS imager stage 2 as liger_iris_pipeline 3d0ac2e computes it, for Liger/IRIS-format exposures.

Each module holds one step as a pure function over ``Exposure`` records, declared in the step
registry (:mod:`image2.core.steps`) for the ``LIGER_FORMAT`` family; ``image2.core.pipeline``
runs them in the order of the pipeline's ``ImagerStage2Pipeline`` (the sky after dark and flat).
Exposures in the JWST layout, whatever their instrument, keep the spec's steps (``image2.core``).
"""
