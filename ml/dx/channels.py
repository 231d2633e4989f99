"""Channel subsets of the SRASH composite: R = SRS 2930 cm^-1 (protein), G = SRS 2850 cm^-1
(lipid), B = SHG. :data:`CHANNEL_SUBSETS` are the seven non-empty subsets, named by their
letters in R, G, B order ("R", "G", "B", "RG", "RB", "GB", "RGB").

A dropped channel is *zeroed* in the [0, 1] composite (:func:`mask_channels`): 0 is the
composites' "no signal" value. :class:`ChannelMask` re-imposes that constant on the
dropped channels of a z-scored batch inside the forward pass (after augmentation, which
would otherwise mix the kept channels back in: :mod:`ml.dx.ablation`). Used by the ablations
and by inference with a subset model (:class:`ml.dx.predict.LBNetDx`); no training code.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from ml.common.errors import MLError
from ml.dx.preprocess import MEAN, STD

__all__ = ["CHANNELS", "CHANNEL_SUBSETS", "AblationError", "check_subset", "mask_channels",
           "ChannelMask"]

#: Channel letters in composite order: protein (2930), lipid (2850), SHG.
CHANNELS: tuple[str, str, str] = ("R", "G", "B")
#: The seven non-empty channel subsets, singles first.
CHANNEL_SUBSETS: tuple[str, ...] = tuple(
    "".join(c) for k in (1, 2, 3) for c in itertools.combinations(CHANNELS, k))


class AblationError(MLError):
    """Unknown channel subset or unusable ablation input (shapes, labels)."""


def check_subset(keep: str) -> str:
    """Canonical name (R, G, B order) of a channel subset such as ``"GR"``; raises
    :class:`AblationError` unless it is a non-empty string of distinct letters R, G, B."""
    if (not isinstance(keep, str) or not keep or len(set(keep)) != len(keep)
            or not set(keep) <= set(CHANNELS)):
        raise AblationError(f"channel subset {keep!r}: expected distinct letters from "
                            f"'RGB' (R = protein 2930, G = lipid 2850, B = SHG), one of "
                            f"{list(CHANNEL_SUBSETS)}")
    return "".join(c for c in CHANNELS if c in keep)


def mask_channels(patches: ArrayLike, keep: str) -> NDArray[np.float32]:
    """Zero the channels not in ``keep`` of [0, 1] composites.

    Parameters
    ----------
    patches : array_like
        ``(3, H, W)`` or ``(N, 3, H, W)`` composites, channels R, G, B.
    keep : str
        Channels to keep, e.g. ``"RG"`` (any order; see :func:`check_subset`).

    Returns
    -------
    numpy.ndarray
        float32 copy: kept channels unchanged, dropped channels 0.

    Raises
    ------
    AblationError
        Bad subset, or not ``(..., 3, H, W)``.
    """
    keep = check_subset(keep)
    a = np.array(patches, dtype=np.float32, copy=True)
    if a.ndim not in (3, 4) or a.shape[-3] != 3:
        raise AblationError(f"patches of shape {a.shape}: expected (3, H, W) or (N, 3, H, W)")
    for i, c in enumerate(CHANNELS):
        if c not in keep:
            a[..., i, :, :] = 0.0
    return a


class ChannelMask(nn.Module):
    """Wrap a model so the dropped channels of its z-scored input are the constant
    ``-MEAN[c] / STD[c]`` (a zeroed [0, 1] channel) whatever the batch holds.

    ``num_classes`` and ``in_channels`` are those of the wrapped model; the wrapped model
    is ``.model`` (e.g. for Grad-CAM or saving its weights).
    """

    def __init__(self, model: nn.Module, keep: str) -> None:
        super().__init__()
        self.keep = check_subset(keep)
        self.model = model
        self.num_classes = getattr(model, "num_classes", None)
        self.in_channels = getattr(model, "in_channels", 3)
        drop = torch.tensor([c not in self.keep for c in CHANNELS]).view(1, 3, 1, 1)
        fill = (-torch.tensor(MEAN) / torch.tensor(STD)).view(1, 3, 1, 1)
        self.register_buffer("drop", drop, persistent=False)
        self.register_buffer("fill", fill, persistent=False)

    @property
    def cam_layer(self) -> nn.Module:
        """The wrapped model's Grad-CAM layer (Grad-CAM then sees the masked input)."""
        return self.model.cam_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.where(self.drop, self.fill.to(x.dtype), x))
