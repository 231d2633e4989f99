"""Metric functions of the studies, one small module per kind of measurement; each
function's docstring gives its definition and units (tested in ``tests/studies/``).

* :mod:`.variation` -- coefficient of variation.
* :mod:`.separability` -- AUC of one feature, oriented on training data.
* :mod:`.classical` -- classical classifiers at their own Youden threshold, sample vote.
* :mod:`.morphology` -- nearest-neighbour spacing, axis ratios, angular-sector contrast.
* :mod:`.artefacts` -- overlap (intersection over union) of two masks.
"""
