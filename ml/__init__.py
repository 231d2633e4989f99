"""LBNet-Dx: the SRASH paper's patch classifier and sample-level vote.

Modules (import them directly; importing :mod:`ml` itself loads nothing heavy):

* :mod:`ml.preprocess` -- [0, 1] composite checks and the paper's z-score (numpy).
* :mod:`ml.patches` -- 300 px / stride 100 sliding windows, validity rule, vote weights (numpy).
* :mod:`ml.augment` -- flips, rotation, colour jitter (torch).
* :mod:`ml.lbnet` -- LiteBlendNet (torch).
* :mod:`ml.vote` -- the weighted Dx vote with its 0.8 threshold (numpy).
* :mod:`ml.metrics` -- ROC, AUC, Youden's threshold, patch-level metrics (numpy).
* :mod:`ml.montecarlo` -- sample-level vs patch-level accuracy study (numpy).

Nothing in :mod:`ml` imports device or plan modules.
"""
