"""ReLU, y = max(x, 0), and its four reverses (the paper's RU†).

The choice of RU† is what separates DeConvNet, SaliNet and DeSaliNet. Two rules
carry no bottleneck, two keep the ReLU mask [x > 0] (one bit per element, packed 8 to a
byte along the channel axis: see packing.py).

ReLU6 (MobileNetV2), y = min(max(x, 0), 6), belongs to the same family, so one
variant entry picks the rule for both: its mask is [0 < x < 6], where it passes its
input, and the `relu` rule still clamps the signal coming back at 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .packing import PackedMask
from .registry import Rule, family, functional, rule

RELU = family("ReLU", nn.ReLU, nn.ReLU6)
functional(F.relu, lambda input, inplace=False: nn.ReLU())
functional(torch.relu, lambda input: nn.ReLU())
functional(torch.Tensor.relu, lambda input: nn.ReLU())
functional(F.relu6, lambda input, inplace=False: nn.ReLU6())


def _top(relu: nn.Module) -> float | None:
    return 6.0 if isinstance(relu, nn.ReLU6) else None


@rule(RELU, "identity")
class ReluIdentity(Rule):
    """x̂ = ŷ: the ReLU is ignored on the way back. Bottleneck: none."""

    pointwise = inplace = True

    def forward(self, relu: nn.Module, x: Tensor) -> tuple[Tensor, None]:
        return x.clamp(min=0, max=_top(relu)), None

    def reverse(self, relu: nn.Module, grad: Tensor, r: None) -> Tensor:
        return grad

    def reverse_(self, relu: nn.Module, grad: Tensor, r: None) -> Tensor:
        return grad


@rule(RELU, "relu")
class ReluRelu(ReluIdentity):
    """x̂ = max(ŷ, 0): DeConvNet's reverse, a ReLU applied to the signal coming back.

    Bottleneck: none; it keeps the polarity of the signal, not where x was active.
    """

    def reverse(self, relu: nn.Module, grad: Tensor, r: None) -> Tensor:
        return grad.clamp(min=0)

    def reverse_(self, relu: nn.Module, grad: Tensor, r: None) -> Tensor:
        return grad.clamp_(min=0)


@rule(RELU, "bp")
class ReluBP(Rule):
    """x̂ = ŷ ⊙ [x > 0]: backpropagation (SaliNet). Bottleneck: the mask [x > 0]
    ([0 < x < 6] for ReLU6), one bit per element, held as bits."""

    gradient = True

    pointwise = inplace = True

    def forward(self, relu: nn.Module, x: Tensor) -> tuple[Tensor, PackedMask]:
        top = _top(relu)
        active = (lambda x: x > 0) if top is None else (lambda x: (x > 0) & (x < top))
        return x.clamp(min=0, max=top), PackedMask.of(x, active)

    def reverse(self, relu: nn.Module, grad: Tensor, mask: PackedMask) -> Tensor:
        return grad * mask

    def reverse_(self, relu: nn.Module, grad: Tensor, mask: PackedMask) -> Tensor:
        return mask.mask_(grad)

    def bits(self, relu: nn.Module, mask: PackedMask) -> float:
        return float(mask.numel())


@rule(RELU, "hybrid")
class ReluHybrid(ReluBP):
    """x̂ = max(ŷ, 0) ⊙ [x > 0]: DeSaliNet (guided backprop). Bottleneck: [x > 0]."""

    gradient = False

    def reverse(self, relu: nn.Module, grad: Tensor, mask: PackedMask) -> Tensor:
        return mask.mask_(grad.clamp(min=0))

    def reverse_(self, relu: nn.Module, grad: Tensor, mask: PackedMask) -> Tensor:
        return mask.mask_(grad.clamp_(min=0))
