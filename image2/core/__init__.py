"""Pure calibration: immutable records and step functions; no file access, no logging."""
