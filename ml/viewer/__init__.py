"""Viewers of SRASH files: the napari reader (:mod:`ml.viewer.napari_reader`, manifest
``napari.yaml``), installed with the optional extra ``srash[napari]``. Nothing here imports
napari: the reader returns napari layer-data tuples built from numpy and tifffile."""
