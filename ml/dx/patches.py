"""Sliding-window patches of a composite field, the validity rule and per-patch weights.

The SRASH paper cuts each 1200 x 1200 px field with a 300 x 300 px window at a 100 px
stride (100 patches), drops patches that are more than 90 % background, and weights each
remaining patch in the Dx vote by "the number of valid pixels in each channel". The exact
definitions used here (numpy only, no torch):

Background pixel
    A pixel whose value is ``<= background_level`` in *every* channel, i.e.
    ``max_c image[c, y, x] <= background_level``. The default level 0.0 is the paper's
    "tissue-free, value 0": composites from :func:`ml.common.processing.composite_rgb`
    are clipped at 0, so tissue-free pixels are exactly 0. Raise the level (e.g. 0.02) for
    composites whose background carries residual noise.
Valid patch
    ``background_fraction <= max_background_fraction`` (default 0.9), where
    ``background_fraction`` is the number of background pixels over ``size**2``. A patch
    with *more than* 90 % background is invalid and dropped.
Weight
    ``w = (1 / 3) * sum_c count(image[c] > background_level) / size**2`` -- the mean over
    the three channels of the fraction of the patch where that channel carries signal.
    ``w`` lies in [0, 1]; a valid patch has ``w >= (1 - max_background_fraction) / 3 > 0``
    because each of its non-background pixels has signal in at least one channel.

Patch origins are the (row, col) of each window's top-left pixel, in row-major order. The
grid is ``((H - size) // stride + 1) x ((W - size) // stride + 1)``; when
``(H - size) % stride != 0`` the last ``(H - size) % stride`` rows are not covered (no
padding is invented); a stride larger than the window leaves gaps between windows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml.dx.preprocess import Layout, PreprocessError, check_composite, to_chw

__all__ = [
    "PATCH_SIZE", "PATCH_STRIDE", "MAX_BACKGROUND_FRACTION", "PatchError", "PatchSet",
    "patch_grid", "background_mask", "patch_statistics", "extract_patches",
]

#: Window side (px) of the paper.
PATCH_SIZE = 300
#: Window stride (px) of the paper.
PATCH_STRIDE = 100
#: A patch with more than this fraction of background pixels is invalid.
MAX_BACKGROUND_FRACTION = 0.9


class PatchError(PreprocessError):
    """Invalid patching settings (window larger than the field, non-positive stride...)."""


def _grid_counts(shape: tuple[int, int], size: int, stride: int) -> tuple[int, int]:
    if isinstance(size, bool) or isinstance(stride, bool):
        raise PatchError("size and stride must be integers")
    if int(size) != size or size < 1:
        raise PatchError(f"patch size {size!r}: expected an integer >= 1 px")
    if int(stride) != stride or stride < 1:
        raise PatchError(f"stride {stride!r}: expected an integer >= 1 px")
    if len(shape) != 2:
        raise PatchError(f"field shape {shape!r}: expected (H, W)")
    h, w = (int(s) for s in shape)
    if h < size or w < size:
        raise PatchError(f"field {h} x {w} px is smaller than the {size} x {size} px window")
    return (h - size) // stride + 1, (w - size) // stride + 1


def patch_grid(shape: tuple[int, int], *, size: int = PATCH_SIZE,
               stride: int = PATCH_STRIDE) -> NDArray[np.int64]:
    """Top-left (row, col) origins of the sliding windows over a field.

    Parameters
    ----------
    shape : tuple of int
        Field size ``(H, W)`` in px.
    size : int, keyword-only
        Window side in px (default 300).
    stride : int, keyword-only
        Step between windows in px (default 100).

    Returns
    -------
    numpy.ndarray
        int64, shape ``(n_rows * n_cols, 2)``, row-major; ``n_rows = (H - size) // stride + 1``.
        A 1200 x 1200 field gives 100 origins.

    Raises
    ------
    PatchError
        Field smaller than the window, or non-integer / non-positive size or stride.
    """
    nr, nc = _grid_counts(tuple(shape), size, stride)
    rr, cc = np.meshgrid(np.arange(nr) * stride, np.arange(nc) * stride, indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1).astype(np.int64)


def background_mask(image: ArrayLike, *, background_level: float = 0.0,
                    layout: Layout = "auto") -> NDArray[np.bool_]:
    """``(H, W)`` bool mask of background pixels: every channel ``<= background_level``."""
    a = to_chw(image, layout=layout)
    return a.max(axis=0) <= np.float32(background_level)


def _window_sums(mask: NDArray, size: int, stride: int, nr: int, nc: int) -> NDArray[np.int64]:
    """Sum of ``mask`` (..., H, W) over every window, via a summed-area table."""
    s = np.zeros(mask.shape[:-2] + (mask.shape[-2] + 1, mask.shape[-1] + 1), np.int64)
    s[..., 1:, 1:] = mask.astype(np.int64).cumsum(-2).cumsum(-1)
    r0 = np.arange(nr) * stride
    c0 = np.arange(nc) * stride
    r1, c1 = r0 + size, c0 + size
    return (s[..., r1[:, None], c1[None, :]] - s[..., r0[:, None], c1[None, :]]
            - s[..., r1[:, None], c0[None, :]] + s[..., r0[:, None], c0[None, :]])


def patch_statistics(image: ArrayLike, *, size: int = PATCH_SIZE, stride: int = PATCH_STRIDE,
                     background_level: float = 0.0, layout: Layout = "auto",
                     ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Origins, background fraction and weight of every window (valid or not), no copies.

    Returns
    -------
    origins : numpy.ndarray
        ``(n, 2)`` int64 (row, col), row-major, as :func:`patch_grid`.
    background_fraction : numpy.ndarray
        ``(n,)`` fraction of background pixels in each window, in [0, 1].
    weights : numpy.ndarray
        ``(n,)`` mean over channels of the fraction of pixels above ``background_level``,
        in [0, 1] (module docstring).
    """
    a = to_chw(image, layout=layout)
    nr, nc = _grid_counts(a.shape[1:], size, stride)
    level = np.float32(background_level)
    area = float(size * size)
    signal = a > level                                    # (3, H, W)
    bg_counts = _window_sums(~signal.any(axis=0), size, stride, nr, nc)
    ch_counts = _window_sums(signal, size, stride, nr, nc)  # (3, nr, nc)
    origins = patch_grid(a.shape[1:], size=size, stride=stride)
    return (origins, (bg_counts / area).ravel(),
            (ch_counts.sum(axis=0) / (3.0 * area)).ravel())


@dataclasses.dataclass(frozen=True, eq=False)
class PatchSet:
    """Valid patches of one field and where they came from.

    Attributes
    ----------
    patches : numpy.ndarray
        float32 ``(n_valid, 3, size, size)``, the composite's [0, 1] values (not z-scored).
    origins : numpy.ndarray
        int64 ``(n_valid, 2)`` top-left (row, col) of each valid patch in the field, px.
    weights : numpy.ndarray
        float64 ``(n_valid,)`` vote weights in (0, 1] (module docstring).
    valid : numpy.ndarray
        bool ``(n_total,)`` validity of every window of the grid, row-major.
    grid_origins : numpy.ndarray
        int64 ``(n_total, 2)`` origins of every window; ``grid_origins[valid] == origins``.
    background_fraction : numpy.ndarray
        float64 ``(n_total,)`` background fraction of every window.
    size, stride : int
        Window side and stride, px.
    field_shape : tuple of int
        ``(H, W)`` of the field, px.
    """

    patches: NDArray[np.float32]
    origins: NDArray[np.int64]
    weights: NDArray[np.float64]
    valid: NDArray[np.bool_]
    grid_origins: NDArray[np.int64]
    background_fraction: NDArray[np.float64]
    size: int
    stride: int
    field_shape: tuple[int, int]

    def __len__(self) -> int:
        return int(self.patches.shape[0])

    @property
    def n_total(self) -> int:
        """Number of windows in the grid, valid or not."""
        return int(self.valid.size)


def extract_patches(image: ArrayLike, *, size: int = PATCH_SIZE, stride: int = PATCH_STRIDE,
                    background_level: float = 0.0,
                    max_background_fraction: float = MAX_BACKGROUND_FRACTION,
                    layout: Layout = "auto", check: bool = True) -> PatchSet:
    """Cut a [0, 1] composite into sliding-window patches and keep the valid ones.

    Parameters
    ----------
    image : array_like
        One composite, ``(3, H, W)`` or ``(H, W, 3)`` (see :func:`ml.dx.preprocess.to_chw`),
        values in [0, 1].
    size, stride : int, keyword-only
        Window side and step in px (defaults 300 and 100: 100 windows on 1200 x 1200).
    background_level : float, keyword-only
        A pixel is background when every channel is ``<= background_level`` (default 0.0).
    max_background_fraction : float, keyword-only
        Windows with a larger background fraction are dropped (default 0.9), in [0, 1].
    layout : {"auto", "chw", "hwc"}, keyword-only
        Layout of ``image``.
    check : bool, keyword-only
        Validate the composite (finite, within [0, 1]) first.

    Returns
    -------
    PatchSet
        Valid patches (copies), their origins, weights and the full-grid validity mask.

    Raises
    ------
    PatchError
        Bad window settings or a field smaller than the window.
    ml.dx.preprocess.PreprocessError
        Bad composite (shape, NaN, range).
    """
    if not 0.0 <= float(max_background_fraction) <= 1.0:
        raise PatchError(
            f"max_background_fraction {max_background_fraction!r}: expected a value in [0, 1]")
    a = to_chw(image, layout=layout)
    if check:
        check_composite(a)
    origins, bg, weights = patch_statistics(a, size=size, stride=stride,
                                            background_level=background_level)
    valid = bg <= max_background_fraction
    kept = origins[valid]
    patches = np.empty((len(kept), 3, size, size), np.float32)
    for i, (r, c) in enumerate(kept):
        patches[i] = a[:, r:r + size, c:c + size]
    return PatchSet(patches=patches, origins=kept, weights=weights[valid], valid=valid,
                    grid_origins=origins, background_fraction=bg, size=int(size),
                    stride=int(stride), field_shape=(int(a.shape[1]), int(a.shape[2])))
