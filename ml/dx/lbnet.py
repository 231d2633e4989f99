"""LiteBlendNet (LBNet), the patch classifier of the SRASH paper, in plain PyTorch.

Paper description: ~3M parameters; initial conv + batch-norm layers; a BlendModule of
three branches, each standard convolutions combined with dilated convolutions (different
receptive fields); residual connections; pooling; then conv + SiLU + batch-norm blocks;
global average pooling; a fully connected classifier.

This implementation (default ``width=32`` = ``w``; spatial size for a 300 x 300 input in
brackets)::

    stem     conv4x4/4 (3->w, "patchify")  BN SiLU                        [75]
             conv3x3/2 (w->w)              BN SiLU                        [38]
    blend    BlendModule(w): 3 branches, branch i = conv1x1 (w->w) BN SiLU,
             conv3x3 BN SiLU, conv3x3 dilation d_i BN  (d = 2, 3, 4: receptive fields
             7, 9, 11 feature px = 56-88 input px); concat -> SiLU -> conv1x1 (3w->w) BN;
             + input (residual); SiLU                                     [38]
    pool     maxpool 2x2                                                  [19]
    blocks   ConvSiLUBN(w->2w), ConvSiLUBN(2w->4w), maxpool               [9]
             ConvSiLUBN(4w->8w), ConvSiLUBN(8w->8w), maxpool              [4]
             ConvSiLUBN(8w->8w)                                           [4]
             ConvSiLUBN(8w->16w)  <- ``cam_layer`` (last conv feature map)  [4]
    head     global average pool, dropout, fully connected (16w -> num_classes)

``ConvSiLUBN`` is the paper's "conv + SiLU + batch-norm" block, in that order. The stem
reduces the resolution 8x before anything wide runs (a non-overlapping 4x4 stride-4 conv,
then a stride-2 conv): nothing is computed at 150 or 300 px beyond the patchify conv, and
most of the ~2.8M parameters sit in the 4 x 4 and 9 x 9 tail, where they cost few FLOPs.
This stem replaced a first design (3x3/2 + 3x3/2 + maxpool stem, two BlendModules) that was
too slow to train within the CPU budget. The Grad-CAM map is 4 x 4 per patch (coarse;
overlapping patches at stride 100 refine it over a field). MACs per patch
(:func:`ml.common.nn.count_macs`), training and inference times (measured: see
docs/measured/dx.md).

Grad-CAM: ``model.cam_layer`` is the module whose output is the last convolutional
feature map; :meth:`LiteBlendNet.forward_features` returns that map. The network takes
z-scored composites (:func:`ml.dx.preprocess.normalize`) of any size >= 64 px (global
average pooling).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ml.common.errors import MLError
from ml.common.weights import ParamRange


class ModelConfigError(MLError):
    """Model settings or an input tensor LBNet cannot use (sizes, widths, shapes)."""


__all__ = ["ModelConfigError", "ConvBNAct", "ConvSiLUBN", "BlendBranch", "BlendModule",
           "LiteBlendNet",
           "PARAM_RANGES"]


#: Allowed :class:`LiteBlendNet` arguments in a weights file's ``model`` block, checked by
#: :meth:`ml.dx.predict.LBNetDx.load` before any model is built: ``num_classes`` 2..16,
#: ``in_channels`` 1..3 (protein, lipid, SHG), ``width`` 4..128 (45 M parameters at 128;
#: the default 32 has 2.8 M), ``dilations`` 1..6 values in 1..16 (the deepest blend map is
#: 38 px for a 300 px patch), ``n_blend`` 1..4, ``dropout`` in [0, 1). All upper ends
#: together give 52 M parameters, below :data:`ml.common.weights.MAX_PARAMETERS`.
PARAM_RANGES: dict[str, ParamRange] = {
    "num_classes": ParamRange(int, 2, 16),
    "in_channels": ParamRange(int, 1, 3),
    "width": ParamRange(int, 4, 128),
    "dilations": ParamRange(int, 1, 16, length=(1, 6)),
    "n_blend": ParamRange(int, 1, 4),
    "dropout": ParamRange(float, 0.0, 1.0, hi_open=True),
}


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> optional SiLU ("same" padding for odd kernels)."""

    def __init__(self, cin: int, cout: int, *, kernel: int = 3, stride: int = 1,
                 dilation: int = 1, act: bool = True, padding: int | None = None) -> None:
        pad = dilation * (kernel - 1) // 2 if padding is None else padding
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, dilation=dilation,
                      bias=False),
            nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.SiLU(inplace=True))
        super().__init__(*layers)


class ConvSiLUBN(nn.Sequential):
    """The paper's tail block: Conv2d 3x3 -> SiLU -> BatchNorm2d."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=True), nn.SiLU(inplace=True),
                         nn.BatchNorm2d(cout))


class BlendBranch(nn.Sequential):
    """One BlendModule branch: 1x1 conv, standard 3x3 conv, dilated 3x3 conv (BN each)."""

    def __init__(self, channels: int, dilation: int, *, hidden: int | None = None) -> None:
        h = hidden or channels
        super().__init__(ConvBNAct(channels, h, kernel=1),
                         ConvBNAct(h, h, kernel=3),
                         ConvBNAct(h, h, kernel=3, dilation=dilation, act=False))


class BlendModule(nn.Module):
    """Three parallel branches of standard + dilated convolutions, fused, with a residual.

    ``y = SiLU(x + BN(conv1x1(concat_i SiLU(branch_i(x)))))``; the branches differ only by
    the dilation of their last conv, so they see different receptive fields.

    Parameters
    ----------
    channels : int
        Input and output channels.
    dilations : sequence of int, keyword-only
        Dilation of each branch's second 3x3 conv (default (2, 3, 4)).
    """

    def __init__(self, channels: int, *, dilations: Sequence[int] = (2, 3, 4)) -> None:
        super().__init__()
        if len(dilations) < 1 or any(int(d) < 1 for d in dilations):
            raise ModelConfigError(f"dilations {tuple(dilations)!r}: expected integers >= 1")
        self.branches = nn.ModuleList(BlendBranch(channels, int(d)) for d in dilations)
        self.act = nn.SiLU()
        self.fuse = ConvBNAct(channels * len(dilations), channels, kernel=1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.act(b(x)) for b in self.branches], dim=1)
        return self.act(x + self.fuse(y))


class LiteBlendNet(nn.Module):
    """LiteBlendNet patch classifier (module docstring for the layer table).

    Parameters
    ----------
    num_classes : int, keyword-or-positional
        Output classes (2 for normal vs NOA and for SPT vs SPG).
    in_channels : int, keyword-only
        Input channels (3: protein, lipid, SHG; fewer for channel ablations).
    width : int, keyword-only
        Base width ``w``; the default 32 gives 2.82M parameters.
    dilations : sequence of int, keyword-only
        Branch dilations of the BlendModules.
    n_blend : int, keyword-only
        Number of stacked BlendModules (default 1, as in the paper).
    dropout : float, keyword-only
        Dropout before the classifier.

    Notes
    -----
    ``forward`` returns logits ``(N, num_classes)``; use ``softmax(dim=1)`` for the patch
    probability vectors of the Dx vote. Input: z-scored ``(N, in_channels, H, W)`` with
    ``H, W >= 64``.
    """

    def __init__(self, num_classes: int = 2, *, in_channels: int = 3, width: int = 32,
                 dilations: Sequence[int] = (2, 3, 4), n_blend: int = 1,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if num_classes < 2:
            raise ModelConfigError(f"num_classes {num_classes!r}: expected >= 2")
        if in_channels < 1:
            raise ModelConfigError(f"in_channels {in_channels!r}: expected >= 1")
        if width < 4:
            raise ModelConfigError(f"width {width!r}: expected >= 4")
        if not 0.0 <= dropout < 1.0:
            raise ModelConfigError(f"dropout {dropout!r}: expected a value in [0, 1)")
        w = int(width)
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.stem = nn.Sequential(
            ConvBNAct(in_channels, w, kernel=4, stride=4, padding=0),
            ConvBNAct(w, w, kernel=3, stride=2),
        )
        self.blend = nn.Sequential(*[BlendModule(w, dilations=dilations)
                                     for _ in range(n_blend)])
        self.pool = nn.MaxPool2d(2)
        self.blocks = nn.Sequential(
            ConvSiLUBN(w, 2 * w), ConvSiLUBN(2 * w, 4 * w), nn.MaxPool2d(2),
            ConvSiLUBN(4 * w, 8 * w), ConvSiLUBN(8 * w, 8 * w), nn.MaxPool2d(2),
            ConvSiLUBN(8 * w, 8 * w),
        )
        self.cam_layer = ConvSiLUBN(8 * w, 16 * w)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(16 * w, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last convolutional feature map ``(N, 16 w, h, w')`` (the Grad-CAM target)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ModelConfigError(f"input of shape {tuple(x.shape)}: expected "
                             f"(N, {self.in_channels}, H, W)")
        if x.shape[-1] < 64 or x.shape[-2] < 64:
            raise ModelConfigError(f"input of shape {tuple(x.shape)}: H and W must be >= 64 px")
        x = self.stem(x)
        x = self.blend(x)
        x = self.pool(x)
        x = self.blocks(x)
        return self.cam_layer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of z-scored ``(N, in_channels, H, W)`` patches."""
        f = self.gap(self.forward_features(x)).flatten(1)
        return self.classifier(self.dropout(f))
