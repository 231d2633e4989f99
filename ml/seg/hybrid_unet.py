"""Hybrid-UNet for label-free segmentation of nucleus and lipid droplets from hyperspectral
SRS stacks, plus two baselines (:class:`UNet3D`, :class:`UNet2D`), in plain PyTorch.

Input: a z-scored hyperspectral stack ``(N, 1, B, H, W)`` (``B`` Raman bands, any
``B >= MIN_BANDS``; ``H, W`` multiples of 16). Output: logits ``(N, 2, H, W)``: channel 0
nucleus, channel 1 lipid droplet. The two masks are scored with *independent sigmoids*
(``sigmoid(logit) > 0.5``; train with BCE and/or :func:`ml.common.dice.soft_dice_loss`), not a
softmax: they are separate masks, and a 3-class softmax would force a pixel into exactly
one of background / nucleus / droplet.

Hybrid-UNet layout (3D width ``c = width3d`` = 8, 2D width ``w = width`` = 16; shapes for a
``(1, 1, 50, 512, 512)`` stack, ``sb = spectral_stride`` = 4)::

    stem   pad B to a multiple of sb (replicate); Conv3d k=(sb,2,2) s=(sb,2,2) 1->c BN ReLU
                                                              (c,  13, 256, 256)
    enc1   MSR3D(c)                 -> skip1 = AttnPool(c)    (c,      256, 256)
    down1  Conv3d k=(3,2,2) s=(2,2,2) pad B 1, c->2c BN ReLU  (2c,  7, 128, 128)
    enc2   MSR3D(2c)                -> skip2 = AttnPool(2c)   (2c,     128, 128)
    down2  -> (4c, 4, 64, 64); enc3 MSR3D(4c) -> skip3 = AttnPool(4c)
    down3  -> (8c, 2, 32, 32); enc4 MSR3D(8c)
    bottom SpectralCompression(8c)                            (8c,       32,  32)
    dec    2D: upsample x2 (bilinear), concat skip, 2 x (conv3x3 BN ReLU):
           32->64 (8c+4c -> 4w), 64->128 (4w+2c -> 2w), 128->256 (2w+c -> w)
    full   upsample x2 to H x W, concat the per-pixel spectral statistics of the raw stack
           (mean, std, max over B: 3 channels), conv3x3 (w+3 -> w) BN ReLU, conv1x1 -> 2

Shapes and kernels are written ``(B, y, x)`` as in the study; the code stores them
spectral-last, ``(y, x, B)`` (see "Spectral-last layout" below).

* **MSR3D** (multi-scale residual 3D module): three parallel ``Conv3d`` with kernels
  ``(3,3,3), (5,3,3), (7,3,3)`` (same spatial 3x3, growing spectral reach), each BN+ReLU,
  concatenated, fused by a 1x1x1 conv + BN, added to the input, ReLU. Spectral features
  (band shapes over 3-7 bands) are extracted while the spatial resolution is kept.
  ``msr=False``: a plain block, 2 x (Conv3d 3x3x3 BN ReLU) (:class:`PlainBlock3D`).
* **Spectral compression** (deepest layer): ``Conv3d k=(3,1,1) s=(2,1,1)`` BN ReLU, then
  average pooling over the remaining bands -> a 2D map. ``spectral_compression=False``:
  the mean over B (:class:`SpectralMean`).
* **Attention-weighted pooling** in each skip: a 1x1x1 conv gives one score per
  (band, pixel); ``softmax`` over B turns it into weights summing to 1; the skip is the
  weighted sum over B of each pixel's ``C``-channel spectral feature vector. A feature
  constant along B is returned unchanged (= its mean). ``attention_skips=False``: the mean
  over B (:class:`SpectralMean`).

Spectral-last layout: internally every 3D tensor is ``(N, C, H, W, B)`` (the input is
permuted once), and 3D kernels are written ``(y, x, B)``. This is mathematically the same
network, but PyTorch's CPU convolution picks oneDNN only when ``N*C*D*H`` (the first four
sizes) exceeds 20480; with the spectral axis in ``D`` a single ``(C=16, B=7, 128, 128)``
stack fell back to the much slower native kernel (measured: see docs/measured/seg-unet.md).

The stride-2 spatial / stride-4 spectral stem keeps all 3D work at <= 256 x 256 x 13; it
was chosen for the inference budget of 2 s per ``(1, 1, 50, 512, 512)`` stack on a 2-core
CPU. Parameters: Hybrid-UNet 0.93M, all three modules ablated 0.46M, UNet2D 1.95M, UNet3D
1.47M. Inference times (measured: see docs/measured/seg-unet.md) are held in
``INFERENCE_SECONDS``.

Baselines: :class:`UNet3D` (a 3D UNet on ``(B, H, W)``, full 3D decoder, final 1x1x1 conv
to 2 channels, logits averaged over B) and :class:`UNet2D` (nnU-Net style, bands as input
channels: 5 resolution levels, strided-conv downsampling, transposed-conv upsampling,
instance norm + leaky ReLU; a fixed number of bands ``in_bands``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ml.common.errors import MLError

__all__ = ["SegInputError", "MIN_BANDS", "DOWNSAMPLING", "INFERENCE_SECONDS",
           "ConvBNReLU3D", "MSR3D", "PlainBlock3D", "SpectralCompression",
           "AttentionSpectralPool", "SpectralMean", "HybridUNet", "UNet3D", "UNet2D",
           "check_stack"]

#: Smallest number of spectral bands the 3D models accept.
MIN_BANDS = 4
#: ``H`` and ``W`` must be multiples of this (4 halvings).
DOWNSAMPLING = 16
#: Measured seconds per (1, 1, 50, 512, 512) stack, 2 CPU threads (docs/measured/seg-unet.md).
INFERENCE_SECONDS: dict[str, float] = {"HybridUNet": 0.7, "HybridUNet(no modules)": 0.4,
                                       "UNet2D": 0.3, "UNet3D": 11.4}


class SegInputError(MLError):
    """A stack of the wrong ndim / shape for a segmentation model, or a bad model option."""


def check_stack(x: torch.Tensor, *, min_bands: int = MIN_BANDS,
                multiple: int = DOWNSAMPLING) -> None:
    """Raise :class:`SegInputError` unless ``x`` is ``(N, 1, B, H, W)`` with ``B >= min_bands``
    and ``H, W`` positive multiples of ``multiple``."""
    if x.ndim != 5 or x.shape[1] != 1:
        raise SegInputError(f"input of shape {tuple(x.shape)}: expected a hyperspectral stack "
                            "(N, 1, B, H, W)")
    b, h, w = x.shape[2:]
    if b < min_bands:
        raise SegInputError(f"input of shape {tuple(x.shape)}: B = {b} bands, expected "
                            f">= {min_bands}")
    if h == 0 or w == 0 or h % multiple or w % multiple:
        raise SegInputError(f"input of shape {tuple(x.shape)}: H and W must be positive "
                            f"multiples of {multiple}")


class ConvBNReLU3D(nn.Sequential):
    """Conv3d (no bias) -> BatchNorm3d -> optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: Sequence[int] = (3, 3, 3), *,
                 stride: Sequence[int] | int = 1, padding: Sequence[int] | None = None,
                 act: bool = True) -> None:
        pad = tuple(k // 2 for k in kernel) if padding is None else tuple(padding)
        layers: list[nn.Module] = [nn.Conv3d(cin, cout, tuple(kernel), stride=stride,
                                             padding=pad, bias=False),
                                   nn.BatchNorm3d(cout)]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ConvBNReLU2D(nn.Sequential):
    """Conv2d (no bias, "same" padding) -> BatchNorm2d -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class MSR3D(nn.Module):
    """Multi-scale residual 3D module (spectral kernel sizes ``spectral_kernels``).

    ``y = ReLU(x + BN(conv1x1x1(concat_k ReLU(BN(conv_(3,3,k)(x))))))``; shape-preserving on
    spectral-last ``(N, C, H, W, B)`` (the study's ``(k,3,3)`` kernels, axes reordered).
    """

    def __init__(self, channels: int, *, spectral_kernels: Sequence[int] = (3, 5, 7)) -> None:
        super().__init__()
        if len(spectral_kernels) < 1 or any(int(k) < 1 or int(k) % 2 == 0
                                            for k in spectral_kernels):
            raise SegInputError(f"spectral_kernels {tuple(spectral_kernels)!r}: expected odd "
                                "integers >= 1")
        self.branches = nn.ModuleList(ConvBNReLU3D(channels, channels, (3, 3, int(k)))
                                      for k in spectral_kernels)
        self.fuse = ConvBNReLU3D(channels * len(self.branches), channels, (1, 1, 1),
                                 act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([b(x) for b in self.branches], dim=1)
        return self.act(x + self.fuse(y))


class PlainBlock3D(nn.Sequential):
    """The ablation replacement of :class:`MSR3D`: 2 x (Conv3d 3x3x3 BN ReLU), no residual."""

    def __init__(self, channels: int) -> None:
        super().__init__(ConvBNReLU3D(channels, channels), ConvBNReLU3D(channels, channels))


class SpectralMean(nn.Module):
    """``(N, C, H, W, B) -> (N, C, H, W)``: the mean over the (last, spectral) axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=-1)


class AttentionSpectralPool(nn.Module):
    """Attention-weighted pooling over the spectral axis, ``(N, C, H, W, B) -> (N, C, H, W)``.

    ``a = softmax_B(conv1x1x1(x))`` (one weight per band and pixel, shared by the ``C``
    channels, summing to 1 over B); output ``sum_B a * x``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv3d(channels, 1, 1)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(N, 1, H, W, B)``, summing to 1 over B."""
        return torch.softmax(self.score(x), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weights(x)).sum(dim=-1)


class SpectralCompression(nn.Module):
    """Collapse the spectral axis at the deepest layer: Conv3d k=(1,1,3) s=(1,1,2) BN ReLU,
    then average over the remaining bands; ``(N, C, H, W, B) -> (N, C, H, W)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU3D(channels, channels, (1, 1, 3), stride=(1, 1, 2),
                                 padding=(0, 0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=-1)


class _Up2D(nn.Module):
    """Bilinear x2 upsampling, concat a skip, 2 x (conv3x3 BN ReLU)."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(ConvBNReLU2D(cin + cskip, cout), ConvBNReLU2D(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


def _spectral_stats(x: torch.Tensor) -> torch.Tensor:
    """Per-pixel mean, std and max over B of ``(N, 1, B, H, W)`` -> ``(N, 3, H, W)``."""
    s = x[:, 0]
    return torch.stack([s.mean(1), s.std(1, unbiased=False), s.amax(1)], dim=1)


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class HybridUNet(nn.Module):
    """Hybrid 3D-encoder / 2D-decoder UNet (module docstring for the layer table).

    Parameters
    ----------
    num_classes : int
        Output mask channels (2: nucleus, lipid droplet; independent sigmoids).
    width : int, keyword-only
        2D decoder base width ``w`` (default 16).
    width3d : int, keyword-only
        3D encoder base width ``c`` (default 8; levels c, 2c, 4c, 8c).
    spectral_stride : int, keyword-only
        Band reduction of the stem (default 4: 50 bands -> 13).
    msr, spectral_compression, attention_skips : bool, keyword-only
        Ablation flags; when False the module is replaced by :class:`PlainBlock3D`,
        :class:`SpectralMean`, :class:`SpectralMean` respectively (no such submodule exists).

    Notes
    -----
    ``forward`` maps z-scored ``(N, 1, B, H, W)`` (``B >= MIN_BANDS``, ``H, W`` multiples of
    16) to logits ``(N, num_classes, H, W)``; any ``B`` works with the same weights.
    """

    def __init__(self, num_classes: int = 2, *, width: int = 16, width3d: int = 8,
                 spectral_stride: int = 4, msr: bool = True,
                 spectral_compression: bool = True, attention_skips: bool = True) -> None:
        super().__init__()
        if num_classes < 1:
            raise SegInputError(f"num_classes {num_classes!r}: expected >= 1")
        if width < 2 or width3d < 2:
            raise SegInputError(f"width {width!r} / width3d {width3d!r}: expected >= 2")
        if not 1 <= spectral_stride <= MIN_BANDS:
            raise SegInputError(f"spectral_stride {spectral_stride!r}: expected 1..{MIN_BANDS}")
        c, w, sb = int(width3d), int(width), int(spectral_stride)
        self.num_classes = int(num_classes)
        self.spectral_stride = sb
        self.flags = {"msr": bool(msr), "spectral_compression": bool(spectral_compression),
                      "attention_skips": bool(attention_skips)}
        block = MSR3D if msr else PlainBlock3D
        pool = AttentionSpectralPool if attention_skips else (lambda ch: SpectralMean())
        self.stem = ConvBNReLU3D(1, c, (2, 2, sb), stride=(2, 2, sb), padding=(0, 0, 0))
        chans = [c, 2 * c, 4 * c, 8 * c]
        self.enc = nn.ModuleList(block(ch) for ch in chans)
        self.down = nn.ModuleList(
            ConvBNReLU3D(chans[i], chans[i + 1], (2, 2, 3), stride=(2, 2, 2),
                         padding=(0, 0, 1)) for i in range(3))
        self.skips = nn.ModuleList(pool(ch) for ch in chans[:3])
        self.compress = SpectralCompression(chans[3]) if spectral_compression else SpectralMean()
        self.up = nn.ModuleList([_Up2D(chans[3], chans[2], 4 * w),
                                 _Up2D(4 * w, chans[1], 2 * w),
                                 _Up2D(2 * w, chans[0], w)])
        self.full = ConvBNReLU2D(w + 3, w)
        self.head = nn.Conv2d(w, self.num_classes, 1)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, H, W)`` of a ``(N, 1, B, H, W)`` stack."""
        check_stack(x)
        sb = self.spectral_stride
        pad = (-x.shape[2]) % sb
        f = x.permute(0, 1, 3, 4, 2).contiguous()  # spectral-last (N, 1, H, W, B)
        if pad:
            f = torch.cat([f, f[..., -1:].expand(-1, -1, -1, -1, pad)], dim=-1)
        f = self.stem(f)
        skips = []
        for i in range(4):
            f = self.enc[i](f)
            if i < 3:
                skips.append(self.skips[i](f))
                f = self.down[i](f)
        y = self.compress(f)
        for up, s in zip(self.up, reversed(skips)):
            y = up(y, s)
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        y = self.full(torch.cat([y, _spectral_stats(x)], dim=1))
        return self.head(y)


class UNet3D(nn.Module):
    """Baseline 3D UNet on ``(B, H, W)``; 2D masks = logits averaged over B.

    Four 3D levels plus a bottleneck (widths c, 2c, 4c, 8c, 16c; default ``width=8``), each
    2 x (Conv3d 3x3x3 BN ReLU); max-pool (2,2,2) with ``ceil_mode`` (any ``B >= MIN_BANDS``);
    trilinear upsampling to the skip's size + concat + 2 convs; 1x1x1 conv to
    ``num_classes`` channels ``(N, K, B, H, W)``; mean over B -> ``(N, K, H, W)``.
    """

    def __init__(self, num_classes: int = 2, *, width: int = 8) -> None:
        super().__init__()
        if num_classes < 1 or width < 2:
            raise SegInputError(f"num_classes {num_classes!r} / width {width!r}: expected "
                                ">= 1 / >= 2")
        c = int(width)
        chans = [c, 2 * c, 4 * c, 8 * c, 16 * c]
        self.num_classes = int(num_classes)
        self.enc = nn.ModuleList()
        cin = 1
        for ch in chans:
            self.enc.append(nn.Sequential(ConvBNReLU3D(cin, ch), ConvBNReLU3D(ch, ch)))
            cin = ch
        self.pool = nn.MaxPool3d(2, ceil_mode=True)
        self.dec = nn.ModuleList(
            nn.Sequential(ConvBNReLU3D(chans[i + 1] + chans[i], chans[i]),
                          ConvBNReLU3D(chans[i], chans[i])) for i in reversed(range(4)))
        self.head = nn.Conv3d(c, self.num_classes, 1)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, H, W)`` of a ``(N, 1, B, H, W)`` stack."""
        check_stack(x)
        skips = []
        f = x.permute(0, 1, 3, 4, 2).contiguous()  # spectral-last (N, 1, H, W, B)
        for i, enc in enumerate(self.enc):
            f = enc(f)
            if i < 4:
                skips.append(f)
                f = self.pool(f)
        for dec, s in zip(self.dec, reversed(skips)):
            f = F.interpolate(f, size=s.shape[2:], mode="trilinear", align_corners=False)
            f = dec(torch.cat([f, s], dim=1))
        return self.head(f).mean(dim=-1)


class _NNBlock(nn.Sequential):
    """nnU-Net conv block: Conv2d 3x3 (stride s) IN LReLU, Conv2d 3x3 IN LReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.InstanceNorm2d(cout, affine=True), nn.LeakyReLU(0.01, inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.InstanceNorm2d(cout, affine=True), nn.LeakyReLU(0.01, inplace=True))


class UNet2D(nn.Module):
    """Baseline nnU-Net-style 2D UNet, bands as input channels.

    Five levels (widths w, 2w, 4w, 8w, 16w; default ``width=16``), the first unstrided and
    each next one entered by a stride-2 conv; instance norm + leaky ReLU (0.01); transposed
    conv (2x2/2) upsampling, concat, conv block; 1x1 head. Input ``(N, 1, B, H, W)`` with
    ``B == in_bands`` (or ``(N, B, H, W)``), ``H, W`` multiples of 16.
    """

    def __init__(self, in_bands: int, num_classes: int = 2, *, width: int = 16) -> None:
        super().__init__()
        if in_bands < 1 or num_classes < 1 or width < 2:
            raise SegInputError(f"in_bands {in_bands!r} / num_classes {num_classes!r} / width "
                                f"{width!r}: expected >= 1 / >= 1 / >= 2")
        w = int(width)
        chans = [w, 2 * w, 4 * w, 8 * w, 16 * w]
        self.in_bands = int(in_bands)
        self.num_classes = int(num_classes)
        self.enc = nn.ModuleList([_NNBlock(in_bands, chans[0])] +
                                 [_NNBlock(chans[i], chans[i + 1], 2) for i in range(4)])
        self.upconv = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2)
                                    for i in reversed(range(4)))
        self.dec = nn.ModuleList(_NNBlock(2 * chans[i], chans[i]) for i in reversed(range(4)))
        self.head = nn.Conv2d(w, self.num_classes, 1)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, H, W)``; input ``(N, 1, in_bands, H, W)`` or
        ``(N, in_bands, H, W)``."""
        if x.ndim == 5:
            check_stack(x, min_bands=1)
            x = x[:, 0]
        if x.ndim != 4 or x.shape[1] != self.in_bands:
            raise SegInputError(f"input of shape {tuple(x.shape)}: expected "
                                f"(N, 1, {self.in_bands}, H, W) or (N, {self.in_bands}, H, W)")
        h, w = x.shape[-2:]
        if h == 0 or w == 0 or h % DOWNSAMPLING or w % DOWNSAMPLING:
            raise SegInputError(f"input of shape {tuple(x.shape)}: H and W must be positive "
                                f"multiples of {DOWNSAMPLING}")
        skips = []
        f = x
        for i, enc in enumerate(self.enc):
            f = enc(f)
            if i < 4:
                skips.append(f)
        for up, dec, s in zip(self.upconv, self.dec, reversed(skips)):
            f = dec(torch.cat([up(f), s], dim=1))
        return self.head(f)
