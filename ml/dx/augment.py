"""Training augmentations of the SRASH paper, in plain PyTorch (no torchvision).

The paper: "random horizontal/vertical flips, random rotation of 45 degrees,
brightness/contrast/saturation jitter of magnitude 0.4". Implemented as torchvision's
``RandomHorizontalFlip()``, ``RandomVerticalFlip()``, ``RandomRotation(45)`` and
``ColorJitter(0.4, 0.4, 0.4)`` would do it, which is the usual reading of that sentence:

* flips: each with probability 0.5, independently per sample;
* rotation: an angle drawn uniformly in ``[-45, +45]`` degrees per sample (not exactly
  +-45), about the patch centre, bilinear, corners outside the rotated patch filled with 0
  -- the composites' tissue-free value;
* colour jitter: per sample, brightness factor ``b``, contrast factor ``c`` and saturation
  factor ``s`` each uniform in ``[max(0, 1 - m), 1 + m]`` (``m = 0.4``), applied in a random
  order drawn per sample, each followed by a clip to [0, 1]:
  brightness ``x * b``; contrast ``(x - mean(gray(x))) * c + mean(gray(x))``; saturation
  ``(x - gray(x)) * s + gray(x)`` with ``gray = 0.2989 R + 0.587 G + 0.114 B``
  (torchvision's weights). On SRASH composites "saturation" mixes the protein, lipid and SHG
  channels -- that is what the paper's recipe does, kept as is.

Beyond the paper, an optional **session gain** (``AugmentConfig.session_gain_sigma``, off by
default): per sample, the two SRS channels are multiplied by one lognormal factor
``exp(sigma_srs z1)`` and the SHG channel by ``exp(sigma_shg z2)`` (``z`` standard normal),
then clipped to [0, 1], before the geometric steps. It mimics what the instrument leaves in
a composite from one imaging session to the next: the SRS gain of the day's beam overlap
(common to both Raman bands, so their ratio is kept) and the SHG yield, left after division
by a calibration record that may be stale. :data:`SESSION_GAIN_SIGMA` holds the spread of
that residual measured on the simulator over 400 sessions (log-ratio sd 0.24 SRS, 0.18 SHG;
``docs/physics-notes.md``, "Calibration is a measurement").

All functions take channels-first float tensors ``(N, 3, H, W)`` (or ``(3, H, W)``) with
values in [0, 1], *before* :func:`ml.dx.preprocess.normalize`. Every random draw comes from
the ``torch.Generator`` passed in (a CPU generator; parameters are moved to the tensor's
device), so a given seed reproduces the same batch exactly.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from ml.common.errors import MLError


class AugmentError(MLError):
    """An augmentation setting or tensor outside what is allowed."""


__all__ = ["AugmentError",
    "GRAY_WEIGHTS", "AugmentConfig", "hflip", "vflip", "rotate", "adjust_brightness",
    "adjust_contrast", "adjust_saturation", "grayscale", "augment", "session_gain",
    "SESSION_GAIN_SIGMA",
]

#: Log-sd of the session gain left in composites after calibration, (SRS, SHG): over 400
#: simulated sessions, fresh and stale calibration records together (docs/physics-notes.md).
SESSION_GAIN_SIGMA: tuple[float, float] = (0.24, 0.18)

#: ITU-R 601 luma weights used by torchvision's ``rgb_to_grayscale``.
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _batch(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise AugmentError("augmentations need a floating-point torch.Tensor")
    if x.ndim == 3:
        return x.unsqueeze(0), True
    if x.ndim != 4:
        raise AugmentError(f"tensor of shape {tuple(x.shape)}: expected (3, H, W) or (N, 3, H, W)")
    return x, False


def _per_sample(v: torch.Tensor | float, n: int, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise AugmentError(f"per-sample parameter of shape {tuple(t.shape)}: expected () or ({n},)")
    return t.view(n, 1, 1, 1)


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror left-right (last axis). An involution: ``hflip(hflip(x)) == x``."""
    return x.flip(-1)


def vflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror top-bottom (second-to-last axis). An involution."""
    return x.flip(-2)


def rotate(x: torch.Tensor, angle_deg: torch.Tensor | float, *, fill: float = 0.0) -> torch.Tensor:
    """Rotate about the image centre by ``angle_deg`` degrees (counter-clockwise on screen).

    Parameters
    ----------
    x : torch.Tensor
        ``(N, C, H, W)`` or ``(C, H, W)`` float.
    angle_deg : float or torch.Tensor
        One angle for all samples or ``(N,)`` per-sample angles, degrees.
    fill : float, keyword-only
        Value of pixels that come from outside the input (default 0, tissue-free).

    Returns
    -------
    torch.Tensor
        Same shape and dtype. Bilinear ``grid_sample`` with ``align_corners=False``; pixel
        aspect is preserved for non-square images. Angle 0 reproduces ``x`` (to float
        rounding, ~1e-7).
    """
    xb, single = _batch(x)
    n, _, h, w = xb.shape
    a = torch.deg2rad(_per_sample(angle_deg, n, xb).view(n))
    cos, sin = torch.cos(a), torch.sin(a)
    zero = torch.zeros_like(cos)
    # output pixel -> input pixel, in normalised coordinates, with the pixel aspect ratio
    theta = torch.stack([torch.stack([cos, -sin * (h / w), zero], dim=1),
                         torch.stack([sin * (w / h), cos, zero], dim=1)], dim=1)
    grid = F.affine_grid(theta, list(xb.shape), align_corners=False)
    if fill == 0.0:
        out = F.grid_sample(xb, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    else:
        ones = torch.ones_like(xb[:, :1])
        out = F.grid_sample(torch.cat([xb, ones], 1), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=False)
        inside = out[:, -1:]
        out = out[:, :-1] + (1 - inside) * fill
    return out[0] if single else out


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """``(..., 1, H, W)`` luma ``0.2989 R + 0.587 G + 0.114 B`` of ``(..., 3, H, W)``."""
    wts = x.new_tensor(GRAY_WEIGHTS).view(3, 1, 1)
    return (x * wts).sum(dim=-3, keepdim=True)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """``clip(x * factor, 0, 1)``; ``factor`` scalar or ``(N,)``."""
    xb, single = _batch(x)
    out = (xb * _per_sample(factor, xb.shape[0], xb)).clamp(0, 1)
    return out[0] if single else out


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """``clip((x - m) * factor + m, 0, 1)`` with ``m`` the image's mean luma."""
    xb, single = _batch(x)
    f = _per_sample(factor, xb.shape[0], xb)
    m = grayscale(xb).mean(dim=(-3, -2, -1), keepdim=True)
    out = (f * xb + (1 - f) * m).clamp(0, 1)
    return out[0] if single else out


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """``clip((x - gray) * factor + gray, 0, 1)`` per pixel."""
    xb, single = _batch(x)
    f = _per_sample(factor, xb.shape[0], xb)
    out = (f * xb + (1 - f) * grayscale(xb)).clamp(0, 1)
    return out[0] if single else out


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings; defaults are the paper's.

    Attributes
    ----------
    flip_p : float
        Probability of each of the horizontal and vertical flips.
    max_rotation_deg : float
        Angles are uniform in ``[-max_rotation_deg, +max_rotation_deg]``, degrees.
    brightness, contrast, saturation : float
        Jitter magnitudes ``m``: factors uniform in ``[max(0, 1 - m), 1 + m]``.
    session_gain_sigma : (float, float)
        Log-sds of the per-sample session gain of the SRS channels (R and G together) and
        of SHG (B); ``(0, 0)`` (default, the paper's recipe) turns it off;
        :data:`SESSION_GAIN_SIGMA` is the simulator's measured residual.
    """

    flip_p: float = 0.5
    max_rotation_deg: float = 45.0
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    session_gain_sigma: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        sg = tuple(self.session_gain_sigma)
        if len(sg) != 2 or not all(0.0 <= float(v) <= 1.0 for v in sg):
            raise AugmentError(f"session_gain_sigma {self.session_gain_sigma!r}: expected "
                               "two log-sds (SRS, SHG), each in [0, 1]")
        object.__setattr__(self, "session_gain_sigma", (float(sg[0]), float(sg[1])))
        if not 0.0 <= self.flip_p <= 1.0:
            raise AugmentError(f"flip_p {self.flip_p!r}: expected a probability in [0, 1]")
        if not 0.0 <= self.max_rotation_deg <= 180.0:
            raise AugmentError(
                f"max_rotation_deg {self.max_rotation_deg!r}: expected 0-180 degrees")
        for name in ("brightness", "contrast", "saturation"):
            v = getattr(self, name)
            if not (0.0 <= v < math.inf):
                raise AugmentError(f"{name} jitter {v!r}: expected a finite value >= 0")


def session_gain(x: torch.Tensor, srs_gain: torch.Tensor | float,
                 shg_gain: torch.Tensor | float) -> torch.Tensor:
    """Multiply R and G (SRS 2930 / 2850) by ``srs_gain`` and B (SHG) by ``shg_gain``, clip.

    Gains are scalars or one per sample, > 0. The ratio G / R of every unclipped pixel is
    unchanged (one SRS gain for both Raman bands).
    """
    xb, single = _batch(x)
    n = xb.shape[0]
    gs = _per_sample(srs_gain, n, xb)
    gh = _per_sample(shg_gain, n, xb)
    if bool((gs <= 0).any()) or bool((gh <= 0).any()):
        raise AugmentError("session gains must be > 0")
    out = torch.cat([xb[:, :2] * gs, xb[:, 2:3] * gh, xb[:, 3:]], dim=1).clamp_(0.0, 1.0)
    return out[0] if single else out


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def augment(x: torch.Tensor, *, generator: torch.Generator,
            config: AugmentConfig | None = None) -> torch.Tensor:
    """Apply the paper's random augmentations to a batch of [0, 1] composites.

    Order: the session gain (when on), flips, rotation, then the three colour jitters in a
    per-sample random order (module docstring).

    Parameters
    ----------
    x : torch.Tensor
        ``(N, 3, H, W)`` or ``(3, H, W)`` float, values in [0, 1], not z-scored.
    generator : torch.Generator, keyword-only
        CPU generator; the only source of randomness. The same seed gives the same output.
    config : AugmentConfig, keyword-only
        Settings (default: the paper's).

    Returns
    -------
    torch.Tensor
        New tensor, same shape, dtype and device, values in [0, 1].
    """
    cfg = config or AugmentConfig()
    xb, single = _batch(x)
    n = xb.shape[0]
    dev = xb.device
    # every draw is made up front, in a fixed order, so the stream does not depend on config
    u_h = torch.rand(n, generator=generator, dtype=torch.float64)
    u_v = torch.rand(n, generator=generator, dtype=torch.float64)
    ang = _uniform(n, -cfg.max_rotation_deg, cfg.max_rotation_deg, generator)
    facs = [_uniform(n, max(0.0, 1 - m), 1 + m, generator)
            for m in (cfg.brightness, cfg.contrast, cfg.saturation)]
    order = torch.argsort(torch.rand(n, 3, generator=generator, dtype=torch.float64), dim=1)

    out = xb
    s_srs, s_shg = cfg.session_gain_sigma
    if s_srs > 0 or s_shg > 0:  # drawn last and only when on: the paper's stream is unchanged
        z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        out = session_gain(out, torch.exp(s_srs * z[:, 0]).to(dev, xb.dtype),
                           torch.exp(s_shg * z[:, 1]).to(dev, xb.dtype))
    if cfg.flip_p > 0:
        hm = (u_h < cfg.flip_p).to(dev).view(n, 1, 1, 1)
        vm = (u_v < cfg.flip_p).to(dev).view(n, 1, 1, 1)
        out = torch.where(hm, hflip(out), out)
        out = torch.where(vm, vflip(out), out)
    if cfg.max_rotation_deg > 0:
        out = rotate(out, ang.to(dev, xb.dtype))
    ops = (adjust_brightness, adjust_contrast, adjust_saturation)
    mags = (cfg.brightness, cfg.contrast, cfg.saturation)
    out = out.clone() if out is xb else out
    # each sample gets each jitter once, in its own order: apply op k to the samples whose
    # step-th op is k (index selection, so every op runs once per sample, not per batch)
    for step in range(3):
        for k, (op, m) in enumerate(zip(ops, mags)):
            if m == 0:
                continue
            idx = torch.nonzero(order[:, step] == k).view(-1)
            if idx.numel():
                out[idx.to(dev)] = op(out[idx.to(dev)], facs[k][idx].to(dev, xb.dtype))
    return out[0] if single else out
