"""ReLU, y = max(x, 0), and its four reverses (the paper's RU†).

The choice of RU† is what separates DeConvNet, SaliNet and DeSaliNet. Two rules
carry no bottleneck, two keep the ReLU mask [x > 0] (one bit per element).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import Rule, family, rule

RELU = family("ReLU", nn.ReLU)


@rule(RELU, "identity")
class ReluIdentity(Rule):
    """x̂ = ŷ: the ReLU is ignored on the way back. Bottleneck: none."""

    def forward(self, relu: nn.Module, x: Tensor) -> tuple[Tensor, None]:
        return torch.relu(x), None

    def reverse(self, relu: nn.Module, grad: Tensor, r: None) -> Tensor:
        return grad


@rule(RELU, "relu")
class ReluRelu(ReluIdentity):
    """x̂ = max(ŷ, 0): DeConvNet's reverse, a ReLU applied to the signal coming back.

    Bottleneck: none; it keeps the polarity of the signal, not where x was active.
    """

    def reverse(self, relu: nn.Module, grad: Tensor, r: None) -> Tensor:
        return grad.clamp(min=0)


@rule(RELU, "bp")
class ReluBP(Rule):
    """x̂ = ŷ ⊙ [x > 0]: backpropagation (SaliNet). Bottleneck: the mask [x > 0]."""

    def forward(self, relu: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.relu(x), x > 0

    def reverse(self, relu: nn.Module, grad: Tensor, mask: Tensor) -> Tensor:
        return grad * mask


@rule(RELU, "hybrid")
class ReluHybrid(ReluBP):
    """x̂ = max(ŷ, 0) ⊙ [x > 0]: DeSaliNet (guided backprop). Bottleneck: [x > 0]."""

    def reverse(self, relu: nn.Module, grad: Tensor, mask: Tensor) -> Tensor:
        return grad.clamp(min=0) * mask
