"""LBNet-Dx: the SRASH paper's patch classifier and its sample-level diagnosis vote."""
