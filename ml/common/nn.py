"""Small torch helpers shared by the dx and seg models: parameter and MAC counts."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_macs"]


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 300, 300)) -> int:
    """Multiply-accumulates of one forward pass, per batch (MACs = FLOPs / 2).

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` on a zero input of
    ``input_shape`` in eval mode (the model's mode is restored afterwards). It counts the
    matrix-product operators (convolutions of any dimension and their transposes, linear
    layers, matrix products, attention), at 2 FLOPs per multiply-accumulate; element-wise
    operators (activations, batch norm, pooling, additions) are not counted.
    """
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(input_shape))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
