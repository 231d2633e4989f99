"""Composite normalisation for LBNet-Dx, exactly as in the SRASH paper.

The network sees 3-channel composites, R = 2930 cm^-1 (protein), G = 2850 cm^-1 (lipid),
B = SHG, after background subtraction and laser-power normalisation, scaled to [0, 1]
(:func:`ml.common.processing.composite_rgb`), then z-scored per channel with the paper's
constants ``mean = (0.485, 0.456, 0.406)`` and ``std = (0.229, 0.224, 0.225)``.

Canonical layout is channels-first ``(3, H, W)`` (``(N, 3, H, W)`` for batches), which is
what PyTorch convolutions take. :func:`to_chw` also accepts the display layout
``(H, W, 3)`` produced by the simulators. Every array function here is numpy-only;
:func:`normalize` also accepts a ``torch.Tensor`` (duck-typed, torch is never imported
here) so the same constants serve the training loop.

Bad input raises :class:`PreprocessError` (a :class:`ValueError`) whose message says what
was wrong and what is allowed.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.common.errors import MLError

__all__ = [
    "MEAN", "STD", "PreprocessError", "Layout", "to_chw", "check_composite", "normalize",
    "denormalize",
]

#: Per-channel means of the z-score (R = protein 2930, G = lipid 2850, B = SHG), unitless.
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: Per-channel standard deviations of the z-score, unitless.
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

Layout = Literal["auto", "chw", "hwc"]


class PreprocessError(MLError):
    """A composite is unusable: wrong shape or channel count, NaN/inf, or out of [0, 1]."""


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def to_chw(image: ArrayLike, *, layout: Layout = "auto") -> NDArray[np.float32]:
    """Return a composite as a float32 ``(3, H, W)`` array.

    Parameters
    ----------
    image : array_like
        One composite, ``(3, H, W)`` or ``(H, W, 3)``.
    layout : {"auto", "chw", "hwc"}, keyword-only
        ``"auto"`` takes a leading axis of length 3 as channels-first, otherwise a trailing
        axis of length 3 as channels-last (a ``(3, H, 3)`` array is therefore read as
        channels-first; pass ``layout="hwc"`` to override).

    Returns
    -------
    numpy.ndarray
        float32, shape ``(3, H, W)`` (a copy only when needed).

    Raises
    ------
    PreprocessError
        Not 3-D, no axis of length 3 where the layout needs it, or an unknown layout.
    """
    a = np.asarray(image)
    if a.ndim != 3:
        raise PreprocessError(
            f"composite has shape {a.shape}: expected (3, H, W) or (H, W, 3)")
    if layout not in ("auto", "chw", "hwc"):
        raise PreprocessError(f"layout {layout!r}: use 'auto', 'chw' or 'hwc'")
    if layout == "auto":
        layout = "chw" if a.shape[0] == 3 else "hwc"
    if layout == "chw" and a.shape[0] != 3:
        raise PreprocessError(
            f"composite has shape {a.shape}: channels-first needs 3 channels "
            "(R = protein 2930, G = lipid 2850, B = SHG)")
    if layout == "hwc":
        if a.shape[-1] != 3:
            raise PreprocessError(
                f"composite has shape {a.shape}: expected (3, H, W) or (H, W, 3) "
                "(R = protein 2930, G = lipid 2850, B = SHG)")
        a = np.moveaxis(a, -1, 0)
    return np.ascontiguousarray(a, dtype=np.float32)


def check_composite(image: Any, *, tolerance: float = 0.05) -> None:
    """Raise :class:`PreprocessError` unless ``image`` is a finite composite in [0, 1].

    Parameters
    ----------
    image : array_like or torch.Tensor
        Composite(s) with the channel axis at ``-3`` (``(3, H, W)`` or ``(N, 3, H, W)``).
    tolerance : float, keyword-only
        Values in ``[-tolerance, 1 + tolerance]`` are accepted (rounding, interpolation
        overshoot); anything further out means the input was not scaled to [0, 1].
    """
    if _is_tensor(image):
        shape = tuple(image.shape)
        finite = bool(image.isfinite().all())
        lo = float(image.min()) if image.numel() else 0.0
        hi = float(image.max()) if image.numel() else 0.0
    else:
        a = np.asarray(image)
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise PreprocessError(f"composite has dtype {a.dtype}: expected real numbers")
        shape = a.shape
        finite = bool(np.isfinite(a).all())
        lo = float(a.min()) if a.size else 0.0
        hi = float(a.max()) if a.size else 0.0
    if len(shape) not in (3, 4) or shape[-3] != 3:
        raise PreprocessError(
            f"composite has shape {shape}: expected (3, H, W) or (N, 3, H, W) "
            "(R = protein 2930, G = lipid 2850, B = SHG)")
    if shape[-1] == 0 or shape[-2] == 0:
        raise PreprocessError(f"composite has shape {shape}: empty image")
    if not finite:
        raise PreprocessError("composite contains NaN or inf values")
    if lo < -tolerance or hi > 1 + tolerance:
        raise PreprocessError(
            f"composite values span [{lo:.3g}, {hi:.3g}]: expected [0, 1] "
            f"(+-{tolerance:g}); scale with ml.common.processing.composite_rgb first")


def normalize(image: Any, *, layout: Layout = "auto", check: bool = True,
              tolerance: float = 0.05) -> Any:
    """Z-score a [0, 1] composite with the paper's per-channel mean and std.

    ``out[c] = (image[c] - MEAN[c]) / STD[c]``.

    Parameters
    ----------
    image : array_like or torch.Tensor
        numpy: one composite ``(3, H, W)`` / ``(H, W, 3)`` (see :func:`to_chw`) or a
        channels-first batch ``(N, 3, H, W)``. torch: channels-first ``(3, H, W)`` or
        ``(N, 3, H, W)``, any float dtype and device.
    layout : {"auto", "chw", "hwc"}, keyword-only
        Layout of a 3-D numpy input; ignored for 4-D and for tensors.
    check : bool, keyword-only
        Validate with :func:`check_composite` first (default True).
    tolerance : float, keyword-only
        Passed to :func:`check_composite`.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        float32 ndarray ``(3, H, W)`` / ``(N, 3, H, W)``, or a tensor of the input's dtype
        and device.

    Raises
    ------
    PreprocessError
        Wrong shape or channel count, NaN/inf, or values far outside [0, 1].
    """
    if _is_tensor(image):
        if check:
            check_composite(image, tolerance=tolerance)
        mean = image.new_tensor(MEAN).view(3, 1, 1)
        std = image.new_tensor(STD).view(3, 1, 1)
        return (image - mean) / std
    a = np.asarray(image)
    if a.ndim == 3:
        a = to_chw(a, layout=layout)
    elif a.ndim == 4:
        a = np.asarray(a, dtype=np.float32)
    else:
        raise PreprocessError(
            f"composite has shape {a.shape}: expected (3, H, W), (H, W, 3) or (N, 3, H, W)")
    if check:
        check_composite(a, tolerance=tolerance)
    mean = np.asarray(MEAN, np.float32).reshape(3, 1, 1)
    std = np.asarray(STD, np.float32).reshape(3, 1, 1)
    return ((a - mean) / std).astype(np.float32, copy=False)


def denormalize(image: Any) -> Any:
    """Inverse of :func:`normalize` (channels-first numpy array or tensor), for display."""
    if _is_tensor(image):
        return image * image.new_tensor(STD).view(3, 1, 1) + image.new_tensor(MEAN).view(3, 1, 1)
    a = np.asarray(image, np.float32)
    return (a * np.asarray(STD, np.float32).reshape(3, 1, 1)
            + np.asarray(MEAN, np.float32).reshape(3, 1, 1)).astype(np.float32)
