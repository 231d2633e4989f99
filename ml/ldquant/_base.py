"""Shared parts of the LD quantification stages: :class:`QuantError`, input checks, block
means."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.common.errors import MLError

__all__ = ["QuantError"]


class QuantError(MLError):
    """Input the LD quantification cannot use: images of different shapes or not 2-D,
    NaN/inf values, a non-positive pixel size, bad options, or a field with no tubule."""


# ----------------------------------------------------------------------------- checks

def _image(a: ArrayLike, name: str) -> NDArray[np.float32]:
    try:
        x = np.asarray(a, dtype=np.float32)
    except (TypeError, ValueError):
        raise QuantError(f"{name}: expected a 2-D array of numbers") from None
    if x.ndim != 2:
        raise QuantError(f"{name} of shape {x.shape}: expected a 2-D image (H, W)")
    if x.shape[0] < 2 or x.shape[1] < 2:
        raise QuantError(f"{name} of shape {x.shape}: expected at least 2 x 2 pixels")
    bad = ~np.isfinite(x)
    if bad.any():
        raise QuantError(f"{name} has {int(bad.sum())} NaN/inf pixel(s): expected finite "
                         "background-subtracted, power-normalised values")
    return x


def _images(named: Sequence[tuple[ArrayLike, str]]) -> list[NDArray[np.float32]]:
    out = [_image(a, n) for a, n in named]
    shapes = {x.shape for x in out}
    if len(shapes) > 1:
        raise QuantError("images of different shapes: " + ", ".join(
            f"{n} {x.shape}" for x, (_, n) in zip(out, named)) + "; expected one field")
    return out


def _number(v: Any, name: str) -> float:
    if isinstance(v, (bool, np.bool_)):
        raise QuantError(f"{name} = {v!r}: expected a number")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise QuantError(f"{name} = {v!r}: expected a number") from None
    if not math.isfinite(f):
        raise QuantError(f"{name} = {v!r}: expected a finite number")
    return f


def _positive(v: Any, name: str, unit: str = "") -> float:
    f = _number(v, name)
    if f <= 0:
        raise QuantError(f"{name} = {v!r}{' ' + unit if unit else ''}: expected > 0")
    return f


def _non_negative(v: Any, name: str, unit: str = "") -> float:
    f = _number(v, name)
    if f < 0:
        raise QuantError(f"{name} = {v!r}{' ' + unit if unit else ''}: expected >= 0")
    return f


def _pixel(pixel_um: Any) -> float:
    return _positive(pixel_um, "pixel_um", "um")


def _labels(a: ArrayLike, name: str) -> NDArray[np.int64]:
    x = np.asarray(a)
    if x.ndim != 2:
        raise QuantError(f"{name} of shape {x.shape}: expected a 2-D instance map (H, W)")
    if x.dtype.kind not in "iu":
        raise QuantError(f"{name} of dtype {x.dtype}: expected integer instance ids "
                         "(0 = not a tubule)")
    if x.size and x.min() < 0:
        raise QuantError(f"{name} has negative ids: expected 0 (not a tubule) or ids >= 1")
    return x.astype(np.int64, copy=False)


def _mask(a: ArrayLike, name: str) -> NDArray[np.bool_]:
    x = np.asarray(a)
    if x.ndim != 2:
        raise QuantError(f"{name} of shape {x.shape}: expected a 2-D mask (H, W)")
    if x.dtype != np.bool_:
        if x.dtype.kind not in "iuf" or not np.isin(x, (0, 1)).all():
            raise QuantError(f"{name} of dtype {x.dtype}: expected a boolean mask")
        x = x.astype(bool)
    return x


def _block_mean(a: NDArray[np.float32], k: int) -> NDArray[np.float32]:
    """Mean over k x k blocks (edge-padded to a multiple of k)."""
    if k == 1:
        return a.astype(np.float32, copy=True)
    h, w = a.shape
    hh, ww = -(-h // k), -(-w // k)
    p = np.pad(a, ((0, hh * k - h), (0, ww * k - w)), mode="edge")
    return p.reshape(hh, k, ww, k).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
