"""Named segmenters (Hybrid-UNet, its ablations, the two baselines) and their weights files.

One name per model the study compares (:data:`SEGMENTERS`)::

    hybrid-unet            HybridUNet, all three modules (the default model)
    hybrid-no-msr          ablation: plain 3D blocks instead of MSR3D
    hybrid-no-compression  ablation: band mean instead of the spectral-compression module
    hybrid-no-attention    ablation: band mean instead of attention-weighted skip pooling
    unet3d                 baseline 3D UNet
    unet2d                 baseline nnU-Net-style 2D UNet (bands as input channels)

A weights file (:func:`ml.common.weights.save_weights`) records the model name, its constructor
arguments and the Raman axis (cm^-1) it was trained on. :func:`segmenter_input` puts a stack
on that axis: identical axes pass unchanged, a stack whose axis covers the training range is
linearly interpolated band by band onto it, anything else is refused with
:class:`SegModelError` (a network's spectral filters are tied to the band spacing it saw).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray
from torch import nn

from ml.common.errors import MLError
from ml.common.morphology import MorphologyError, otsu_threshold
from ml.common.weights import (
    WEIGHTS_DIR,
    ParamRange,
    WeightsError,
    WeightsMetaError,
    check_params,
    load_weights,
    save_weights,
)
from ml.seg.hybrid_unet import MIN_BANDS, HybridUNet, UNet2D, UNet3D
from plans.contract import SEGMENTERS as _CONTRACT_SEGMENTERS
from plans.contract import TRUTH_LABELS

__all__ = ["DEFAULT_WEIGHTS", "SEGMENTERS", "SegModelError", "build_segmenter", "save_segmenter",
           "load_segmenter", "segmenter_input", "labels_from_masks", "check_segmenter_meta",
           "MAX_BANDS", "PARAM_RANGES"]

#: name -> description (the names are the contract's, :data:`plans.contract.SEGMENTERS`)
SEGMENTERS: dict[str, str] = dict(_CONTRACT_SEGMENTERS)

_ABLATION_FLAG = {"hybrid-no-msr": "msr", "hybrid-no-compression": "spectral_compression",
                  "hybrid-no-attention": "attention_skips"}

#: The shipped default segmenter (``srash segment --method hybrid-unet``).
DEFAULT_WEIGHTS = WEIGHTS_DIR / "seg_hybrid-unet.pt"

#: Largest difference (cm^-1) between a stack's and the training Raman axis treated as equal.
AXIS_TOL_CM1 = 0.5


#: Most bands (Raman axis length) a segmenter's weights file may record.
MAX_BANDS = 1024

#: Allowed constructor arguments in a segmenter weights file's ``model`` block, per class,
#: checked by :func:`load_segmenter` before any model is built. ``num_classes`` is 2
#: (nucleus, lipid droplet: :func:`labels_from_masks`); widths are capped so that the
#: largest allowed model stays below :data:`ml.common.weights.MAX_PARAMETERS` (Hybrid-UNet width 64,
#: width3d 64: 54 M; UNet3D width 32: 24 M; UNet2D 1024 bands, width 64: 32 M).
PARAM_RANGES: dict[str, dict[str, ParamRange]] = {
    "HybridUNet": {"num_classes": ParamRange(int, choices=(2,)),
                   "width": ParamRange(int, 2, 64), "width3d": ParamRange(int, 2, 64),
                   "spectral_stride": ParamRange(int, 1, MIN_BANDS),
                   "msr": ParamRange(bool), "spectral_compression": ParamRange(bool),
                   "attention_skips": ParamRange(bool)},
    "UNet3D": {"num_classes": ParamRange(int, choices=(2,)), "width": ParamRange(int, 2, 32)},
    "UNet2D": {"in_bands": ParamRange(int, MIN_BANDS, MAX_BANDS, required=True),
               "num_classes": ParamRange(int, choices=(2,)), "width": ParamRange(int, 2, 64)},
}


class SegModelError(MLError):
    """Unknown segmenter name, or a stack the weights cannot segment."""


def _kwargs(name: str, n_bands: int) -> dict[str, Any]:
    if name not in SEGMENTERS:
        raise SegModelError(f"segmenter {name!r}: expected one of {', '.join(SEGMENTERS)}")
    if name == "unet2d":
        return {"in_bands": int(n_bands)}
    if name == "unet3d":
        return {}
    return {_ABLATION_FLAG[name]: False} if name in _ABLATION_FLAG else {}


def _construct(name: str, kwargs: Mapping[str, Any]) -> nn.Module:
    if name == "unet2d":
        return UNet2D(**kwargs)
    if name == "unet3d":
        return UNet3D(**kwargs)
    return HybridUNet(**kwargs)


def build_segmenter(name: str, n_bands: int) -> nn.Module:
    """A freshly initialised segmenter ``name`` for stacks of ``n_bands`` bands (only
    ``unet2d`` depends on it). Seed torch before calling for reproducible weights."""
    return _construct(name, _kwargs(name, n_bands))


def save_segmenter(model: nn.Module, path: str | os.PathLike, *, name: str,
                   raman_cm1: ArrayLike, meta: Mapping[str, Any] | None = None):
    """Save ``model`` (built by :func:`build_segmenter` ``name``) with its Raman axis."""
    axis = np.asarray(raman_cm1, np.float64)
    full = {**dict(meta or {}), "segmenter": name,
            "model": _kwargs(name, axis.size), "raman_cm1": [float(v) for v in axis]}
    return save_weights(model, path, meta=full)


def _class_name(name: str) -> str:
    return {"unet2d": "UNet2D", "unet3d": "UNet3D"}.get(name, "HybridUNet")


def check_segmenter_meta(meta: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Check a segmenter weights file's metadata before any model is built: ``segmenter``
    one of :data:`SEGMENTERS`; ``raman_cm1`` a strictly increasing list of ``MIN_BANDS..``
    :data:`MAX_BANDS` finite shifts; ``model`` within :data:`PARAM_RANGES`, consistent with
    the name (ablation flag off, UNet2D ``in_bands`` = axis length).

    Raises
    ------
    ml.common.weights.WeightsError
        No segmenter in the file (e.g. LBNet-Dx weights);
        :class:`ml.common.weights.WeightsMetaError`
        naming the key, its value and what is allowed.
    """
    name = meta.get("segmenter")
    if not isinstance(name, str) or name not in SEGMENTERS or "raman_cm1" not in meta:
        raise WeightsError(f"weights file {str(path)!r} holds no segmenter (segmenter="
                           f"{repr(name)[:60]}); expected one of {', '.join(SEGMENTERS)} saved "
                           "by `srash train-seg`")
    check_params({"raman_cm1": meta["raman_cm1"]},
                 {"raman_cm1": ParamRange(float, length=(MIN_BANDS, MAX_BANDS),
                                          increasing=True)}, where="", path=path)
    model = meta.get("model", {})
    check_params(model, PARAM_RANGES[_class_name(name)], where="model", path=path)
    head = f"weights file {str(path)!r}: metadata"
    n = len(meta["raman_cm1"])
    if name == "unet2d" and model["in_bands"] != n:
        raise WeightsMetaError(f"{head} model.in_bands = {model['in_bands']!r} is not allowed: "
                               f"expected the Raman axis length {n}")
    flag = _ABLATION_FLAG.get(name)
    if flag is not None and model.get(flag, True) is not False:
        raise WeightsMetaError(f"{head} model.{flag} = {model.get(flag, True)!r} is not allowed "
                               f"for segmenter {name!r}: expected false")
    others = [f for f in _ABLATION_FLAG.values() if f != flag]
    for f in others if _class_name(name) == "HybridUNet" else ():
        if model.get(f, True) is not True:
            raise WeightsMetaError(f"{head} model.{f} = {model[f]!r} is not allowed for "
                                   f"segmenter {name!r}: expected true")


def load_segmenter(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, metadata) of a file written by :func:`save_segmenter`; the
    metadata is checked (:func:`check_segmenter_meta`) and the tensor shapes compared
    before any model is built (:func:`ml.common.weights.load_weights`).

    Raises :class:`ml.common.weights.WeightsError` for a missing / corrupted file or one that is
    not a segmenter's (e.g. LBNet-Dx weights), :class:`ml.common.weights.WeightsMetaError` /
    :class:`ml.common.weights.WeightsShapeError` for metadata out of range / tensors that do not
    match it."""
    def factory(meta: dict[str, Any]) -> nn.Module:
        return _construct(meta["segmenter"], meta.get("model", {}))

    return load_weights(path, model_factory=factory, check_meta=check_segmenter_meta)


def segmenter_input(stack: ArrayLike, raman_cm1: ArrayLike,
                    train_cm1: ArrayLike) -> NDArray[np.float32]:
    """``stack`` (B, H, W) on the training Raman axis ``train_cm1`` (module doc).

    Raises
    ------
    SegModelError
        ``raman_cm1`` does not match the stack's bands, or does not cover ``train_cm1``.
    """
    s = np.asarray(stack, np.float32)
    ax = np.asarray(raman_cm1, np.float64)
    tr = np.asarray(train_cm1, np.float64)
    if s.ndim != 3 or ax.shape != (s.shape[0],):
        raise SegModelError(f"stack of shape {s.shape} with a Raman axis of {ax.size} values: "
                            "expected (B, H, W) and one shift per band")
    if ax.shape == tr.shape and np.all(np.abs(ax - tr) <= AXIS_TOL_CM1):
        return s
    order = np.argsort(ax)
    ax, s = ax[order], s[order]
    if ax[0] > tr[0] + AXIS_TOL_CM1 or ax[-1] < tr[-1] - AXIS_TOL_CM1:
        raise SegModelError(
            f"stack covers {ax[0]:.1f}-{ax[-1]:.1f} cm^-1 but the weights were trained on "
            f"{tr[0]:.1f}-{tr[-1]:.1f} cm^-1 ({tr.size} bands): acquire the stack over at "
            "least that range, or train weights on this axis (`srash train-seg`)")
    flat = s.reshape(s.shape[0], -1)
    idx = np.clip(np.searchsorted(ax, tr), 1, ax.size - 1)
    lo, hi = ax[idx - 1], ax[idx]
    w = np.clip((tr - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)[:, None]
    out = flat[idx - 1] * (1.0 - w) + flat[idx] * w
    return out.reshape((tr.size,) + s.shape[1:]).astype(np.float32)


def labels_from_masks(masks: ArrayLike, intensity: ArrayLike) -> NDArray[np.uint8]:
    """A label map in the truth-label codes (:data:`plans.contract.TRUTH_LABELS`, the codes
    of :mod:`ml.seg.phasor` too) from a segmenter's masks.

    ``lipid_droplet`` where the droplet mask is set, else ``nucleus`` where the nucleus mask
    is set, else ``cytoplasm`` where ``intensity`` (the band-mean image) exceeds its Otsu
    threshold (:func:`ml.common.morphology.otsu_threshold`, clipped at the 95th percentile
    as the phasor path does), else ``background``. ``masks``: bool (2, H, W), channel 0
    nucleus, 1 lipid droplet.
    """
    m = np.asarray(masks, bool)
    im = np.asarray(intensity, np.float64)
    if m.ndim != 3 or m.shape[0] != 2 or im.shape != m.shape[1:]:
        raise SegModelError(f"masks {m.shape} and intensity {im.shape}: expected (2, H, W) "
                            "and (H, W)")
    try:
        thr = otsu_threshold(im, clip_percentile=95.0)
    except MorphologyError as exc:
        raise SegModelError(f"intensity: {exc}") from None
    out = np.full(im.shape, TRUTH_LABELS["background"], np.uint8)
    out[im > thr] = TRUTH_LABELS["cytoplasm"]
    out[m[0]] = TRUTH_LABELS["nucleus"]
    out[m[1]] = TRUTH_LABELS["lipid_droplet"]
    return out
