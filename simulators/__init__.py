"""Physics simulators of the SRASH microscope (numpy/scipy only)."""
