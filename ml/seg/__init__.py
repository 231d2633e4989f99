"""Hyperspectral segmentation of exfoliated cells: spectral phasor and hybrid 3D/2D UNet."""
