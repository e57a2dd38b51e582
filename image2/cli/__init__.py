"""The ``image2`` command line (click); thin wrappers over io and core."""
