"""LBNet-Dx: the SRASH paper's patch classifier and sample-level vote.

Modules (import them directly; importing :mod:`ml` itself loads nothing heavy):

* :mod:`ml.preprocess` -- [0, 1] composite checks and the paper's z-score (numpy).
* :mod:`ml.patches` -- 300 px / stride 100 sliding windows, validity rule, vote weights (numpy).
* :mod:`ml.augment` -- flips, rotation, colour jitter (torch).
* :mod:`ml.lbnet` -- LiteBlendNet (torch).
* :mod:`ml.vote` -- the weighted Dx vote with its 0.8 threshold (numpy).
* :mod:`ml.metrics` -- ROC, AUC, Youden's threshold, patch-level metrics (numpy).
* :mod:`ml.montecarlo` -- sample-level vs patch-level accuracy study (numpy).
* :mod:`ml.composite` -- raw detector volts + calibration record -> the paper's composite.
* :mod:`ml.dx` -- LBNetDx: tasks, patching rule, classification of a field, running vote.
* :mod:`ml.train` / :mod:`ml.cv` -- the paper's training recipe, grouped k-fold, weights I/O.
* :mod:`ml.gradcam` -- Grad-CAM over a field; :mod:`ml.refnets` -- ResNet-50-sized reference.
* :mod:`ml.baselines` -- SVM / KNN / decision tree / gradient boosting (scikit-learn).
* :mod:`ml.ablation` -- channel-subset retraining; :mod:`ml.report` -- report PNGs and JSON.

Hyperspectral branch (issue 6, in progress): :mod:`ml.phasor` (spectral phasor,
automatic segmentation), :mod:`ml.hybrid_unet` (hybrid 3D/2D UNet, UNet3D / UNet2D
baselines), :mod:`ml.dice`.

Shipped weights: ``ml/weights/lbnet_<task>.pt`` (``docs/model_card.md``).

Nothing in :mod:`ml` imports device or plan modules.
"""
