"""Grad-CAM heat maps (Selvaraju et al., ICCV 2017) for LiteBlendNet, per patch and per field.

For a convolutional layer with activations ``A^k`` (``k`` channels) and a class score
``y^c`` (the pre-softmax logit)::

    alpha_k^c = mean_{i,j} d y^c / d A^k_{ij}          (global-average-pooled gradients)
    L^c       = ReLU(sum_k alpha_k^c A^k)               (coarse map, the layer's resolution)

The map is upsampled bilinearly to the input size and, by default, divided by its maximum
so it lies in [0, 1] (a map that is zero everywhere stays zero).

Mechanics: a forward hook on the layer (default ``model.cam_layer``) captures its output;
the gradients are taken with :func:`torch.autograd.grad` with respect to that captured
activation only, so no ``.grad`` is written into the model's parameters and nothing is
back-propagated below the layer. The model runs in eval mode (batch-norm running statistics,
no dropout: each sample's map is independent of the others in the batch) and its previous
train/eval mode is restored, and the hook removed, even when the forward pass raises.

Over a field, :func:`field_cam` computes the raw (un-normalised) map of every valid patch,
pastes it at the patch origin and averages where patches overlap, then normalises the field
map by its maximum, so patches with weak evidence stay weak.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike, NDArray
from torch import nn

from ml.common.errors import MLError
from ml.dx.patches import PatchSet
from ml.dx.preprocess import normalize as zscore_normalize
from ml.dx.preprocess import to_chw

__all__ = ["GradCamError", "grad_cam", "paste_maps", "field_cam", "overlay_png"]


class GradCamError(MLError):
    """Unusable Grad-CAM input (shapes, target classes, missing layer)."""


def _targets(target_class: int | Sequence[int] | torch.Tensor | None, logits: torch.Tensor,
             ) -> torch.Tensor:
    n, k = logits.shape
    if target_class is None:
        return logits.detach().argmax(dim=1)
    t = torch.as_tensor(target_class, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise GradCamError(f"{t.numel()} target classes for a batch of {n}")
    if (t < 0).any() or (t >= k).any():
        raise GradCamError(f"target classes {t.tolist()}: expected integers in [0, {k - 1}]")
    return t


def grad_cam(model: nn.Module, x: torch.Tensor, *,
             target_class: int | Sequence[int] | torch.Tensor | None = None,
             layer: nn.Module | None = None, normalize: bool = True) -> NDArray[np.float32]:
    """Grad-CAM maps of a batch, upsampled to the input size.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier returning logits ``(N, K)``.
    x : torch.Tensor
        Model input ``(N, C, H, W)`` (z-scored composites for LiteBlendNet).
    target_class : int, sequence of int, tensor or None, keyword-only
        Class whose logit is explained: one for the whole batch, one per sample, or None for
        each sample's predicted (argmax) class.
    layer : torch.nn.Module, keyword-only
        Layer whose output is the feature map (default ``model.cam_layer``).
    normalize : bool, keyword-only
        Divide each map by its maximum so it lies in [0, 1] (default True). With False the
        raw ReLU'd maps (>= 0, the logit's units) are returned.

    Returns
    -------
    numpy.ndarray
        float32 ``(N, H, W)``.

    Raises
    ------
    GradCamError
        No layer, wrong input rank, bad target classes, or a layer that did not run or
        does not output a 4-D tensor.
    """
    if layer is None:
        layer = getattr(model, "cam_layer", None)
        if not isinstance(layer, nn.Module):
            raise GradCamError("model has no `cam_layer`; pass layer=")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise GradCamError(f"input of shape {tuple(getattr(x, 'shape', ()))}: expected "
                           "a tensor (N, C, H, W)")
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
        captured.append(out)

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    try:
        model.eval()
        with torch.enable_grad():
            logits = model(x)
            if not captured:
                raise GradCamError("the CAM layer did not run in the forward pass")
            act = captured[-1]
            if not isinstance(act, torch.Tensor) or act.ndim != 4:
                raise GradCamError("the CAM layer must output a tensor (N, C, h, w)")
            if not act.requires_grad:
                # frozen parameters: make the input require grad so the graph exists
                captured.clear()
                logits = model(x.detach().requires_grad_(True))
                act = captured[-1]
            if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
                raise GradCamError(f"model output of shape {tuple(logits.shape)}: expected "
                                   f"logits ({x.shape[0]}, K)")
            t = _targets(target_class, logits)
            score = logits.gather(1, t.to(logits.device).view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(score, act)
    finally:
        handle.remove()
        model.train(was_training)
    with torch.no_grad():
        weights = grad.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * act.detach()).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
        cam = cam[:, 0].clamp_min(0.0)
        if normalize:
            peak = cam.amax(dim=(1, 2), keepdim=True)
            cam = torch.where(peak > 0, cam / peak.clamp_min(1e-30), torch.zeros_like(cam))
    return cam.float().cpu().numpy()


def paste_maps(maps: ArrayLike, origins: ArrayLike, field_shape: tuple[int, int],
               ) -> NDArray[np.float32]:
    """Overlap-average patch maps ``(N, s, s)`` placed at ``origins`` ``(N, 2)`` (row, col).

    Pixels covered by no patch are 0.
    """
    m = np.asarray(maps, np.float64)
    o = np.asarray(origins, np.int64).reshape(-1, 2)
    h, w = (int(v) for v in field_shape)
    if m.ndim != 3 or m.shape[0] != o.shape[0]:
        raise GradCamError(f"maps of shape {m.shape} for {o.shape[0]} origins: expected "
                           "(N, size, size)")
    total = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    ph, pw = m.shape[1:]
    for (r, c), mp in zip(o, m):
        if r < 0 or c < 0 or r + ph > h or c + pw > w:
            raise GradCamError(f"patch at ({r}, {c}) of size {ph} x {pw} leaves the "
                               f"{h} x {w} field")
        total[r:r + ph, c:c + pw] += mp
        count[r:r + ph, c:c + pw] += 1.0
    out = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return out.astype(np.float32)


def field_cam(model: nn.Module, field_chw: ArrayLike, patch_set: PatchSet, *,
              target_class: int, layer: nn.Module | None = None, batch_size: int = 20,
              zscore: bool = True, device: torch.device | str | None = None,
              ) -> NDArray[np.float32]:
    """Grad-CAM of a whole field: per-patch maps averaged back at the patch origins.

    Parameters
    ----------
    model : torch.nn.Module
        Patch classifier (LiteBlendNet).
    field_chw : array_like
        The field the patches were cut from, ``(3, H, W)`` (or ``(H, W, 3)``), [0, 1]
        composite values (z-scored here when ``zscore``), shape ``patch_set.field_shape``.
    patch_set : ml.dx.patches.PatchSet
        Valid patches of that field (their origins and size are used).
    target_class : int, keyword-only
        Class to explain (e.g. the sample-level vote's class).
    layer : torch.nn.Module, keyword-only
        CAM layer (default ``model.cam_layer``).
    batch_size : int, keyword-only
        Patches per forward/backward pass.
    zscore : bool, keyword-only
        Apply :func:`ml.dx.preprocess.normalize` to the patches (default True); pass False for
        an already z-scored field.
    device : torch device, keyword-only
        Where to run (default: the device of the model's first parameter, else CPU).

    Returns
    -------
    numpy.ndarray
        float32 ``(H, W)`` in [0, 1] (divided by its maximum); 0 where no valid patch lies.
    """
    a = to_chw(field_chw)
    h, w = a.shape[1:]
    if (h, w) != tuple(patch_set.field_shape):
        raise GradCamError(f"field of {h} x {w} px but the patches were cut from "
                           f"{patch_set.field_shape[0]} x {patch_set.field_shape[1]} px")
    if batch_size < 1:
        raise GradCamError(f"batch_size {batch_size!r}: expected >= 1")
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    s = int(patch_set.size)
    origins = np.asarray(patch_set.origins, np.int64).reshape(-1, 2)
    if len(origins) == 0:
        return np.zeros((h, w), np.float32)
    maps = np.empty((len(origins), s, s), np.float32)
    for i0 in range(0, len(origins), batch_size):
        chunk = origins[i0:i0 + batch_size]
        batch = np.stack([a[:, r:r + s, c:c + s] for r, c in chunk])
        if zscore:
            batch = zscore_normalize(batch, check=False)
        xb = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(device)
        maps[i0:i0 + len(chunk)] = grad_cam(model, xb, target_class=int(target_class),
                                            layer=layer, normalize=False)
    out = paste_maps(maps, origins, (h, w))
    peak = float(out.max())
    return (out / peak).astype(np.float32) if peak > 0 else np.zeros_like(out)


def overlay_png(path: str | os.PathLike, rgb_hwc: ArrayLike, cam: ArrayLike, *,
                alpha: float = 0.45, cmap: str = "jet") -> str:
    """Save ``(1 - alpha) * rgb + alpha * colormap(cam)`` as a PNG.

    Parameters
    ----------
    path : str or path-like
        Output file (``.png``).
    rgb_hwc : array_like
        Composite ``(H, W, 3)`` in [0, 1] (clipped).
    cam : array_like
        ``(H, W)`` map in [0, 1] (clipped).
    alpha : float, keyword-only
        Weight of the heat map, in [0, 1].
    cmap : str, keyword-only
        Matplotlib colormap name.

    Returns
    -------
    str
        The path written.
    """
    from matplotlib import colormaps
    from matplotlib.image import imsave

    rgb = np.asarray(rgb_hwc, np.float64)
    c = np.asarray(cam, np.float64)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise GradCamError(f"rgb of shape {rgb.shape}: expected (H, W, 3)")
    if c.shape != rgb.shape[:2]:
        raise GradCamError(f"cam of shape {c.shape} for an image of {rgb.shape[:2]}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise GradCamError(f"alpha {alpha!r}: expected a value in [0, 1]")
    heat = colormaps[cmap](np.clip(np.nan_to_num(c), 0.0, 1.0))[..., :3]
    img = (1.0 - alpha) * np.clip(np.nan_to_num(rgb), 0.0, 1.0) + alpha * heat
    out = os.fspath(path)
    imsave(out, np.clip(img, 0.0, 1.0), format="png")
    return out
