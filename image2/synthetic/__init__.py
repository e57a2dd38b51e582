"""Synthetic but realistic exposures and reference files: the demo dataset and test inputs."""
