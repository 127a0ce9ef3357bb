"""Figures and tables from run directories: `resexp report PATH` and `resexp compare RUN ...`."""
