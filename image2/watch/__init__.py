"""The ``image2 watch`` daemon (watchdog): calibrate files as they land, exactly once."""
