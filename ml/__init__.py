"""Analysis of SRASH data: three applications on a common base.

Import the modules directly; importing :mod:`ml` or a subpackage loads nothing heavy.

* :mod:`ml.common` -- what every application uses: the error base (:mod:`~ml.common.errors`),
  dark subtraction and power normalisation of raw frames (:mod:`~ml.common.processing`, for
  real data as for simulated), ROC / AUC / confusion (:mod:`~ml.common.metrics`), Dice
  (:mod:`~ml.common.dice`), figures (:mod:`~ml.common.plotting`), atomic writes and JSON
  (:mod:`~ml.common.fileio`), weights files (:mod:`~ml.common.weights`), parameter / MAC
  counts (:mod:`~ml.common.nn`).
* :mod:`ml.io` -- raw detector frames + the run's calibration record -> the processed images
  the applications read (the classifier composite and quantitative channels:
  :mod:`~ml.io.composite`; a processed multi-channel field: :mod:`~ml.io.processed`).
* :mod:`ml.dx` -- LBNet-Dx, the patch classifier and its sample-level vote: model, patches,
  preprocessing, augmentation, vote, inference (:mod:`~ml.dx.predict`), training,
  cross-validation, baselines, ablations, the Monte-Carlo study, Grad-CAM, report figures.
* :mod:`ml.seg` -- hyperspectral segmentation: spectral phasor, the hybrid 3D/2D UNet and its
  baselines, segmenter weights, training.
* :mod:`ml.ldquant` -- lipid-droplet quantification per tubule (tubules, droplets, indexes)
  and the group statistics.

Rules: :mod:`ml` imports no device module, and of the other packages only
:mod:`simulators.spectra` and :mod:`plans.contract`; ``ml.dx``, ``ml.seg`` and ``ml.ldquant``
import ``ml.common`` / ``ml.io``, never each other; inference never imports training.
Shipped weights: ``ml/weights/`` (``docs/model_card.md``).
"""
