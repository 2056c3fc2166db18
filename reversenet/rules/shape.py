"""Layers that move or pass values without mixing them."""

from __future__ import annotations

import torch
from torch import Size, Tensor, nn

from .registry import Rule, family, rule

DROPOUT = family("Dropout", nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
IDENTITY = family("Identity", nn.Identity)
FLATTEN = family("Flatten", nn.Flatten, torch.flatten)


@rule(DROPOUT, "identity")
@rule(IDENTITY, "identity")
class PassThrough(Rule):
    """x̂ = ŷ. Dropout is taken in evaluation mode (the identity), whatever the
    module's training flag says. Bottleneck: none."""

    def forward(self, op: nn.Module, x: Tensor) -> tuple[Tensor, None]:
        return x, None

    def reverse(self, op: nn.Module, grad: Tensor, r: None) -> Tensor:
        return grad


@rule(FLATTEN, "bp")
class Unflatten(Rule):
    """Flattening reversed by reshaping back: x̂ = reshape(ŷ, shape of x).

    Covers ``nn.Flatten`` and ``torch.flatten``. Bottleneck: x's shape only.
    """

    def forward(self, op: nn.Module, x: Tensor, *args: int, **kwargs: int) -> tuple[Tensor, Size]:
        return op(x, *args, **kwargs), x.shape[1:]

    def reverse(self, op: nn.Module, grad: Tensor, shape: Size) -> Tensor:
        return grad.reshape(-1, *shape)  # -1: the batch, even where start_dim=0 folded it in
