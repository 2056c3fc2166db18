"""Affine layers, reversed by their transpose: the bias is dropped (no bottleneck)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Size, Tensor, nn

from .registry import Rule, computed, family, functional, holding, rule

CONV = family("Conv2d", nn.Conv2d)
LINEAR = family("Linear", nn.Linear)


def _conv(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
          dilation: Any = 1, groups: int = 1) -> nn.Conv2d:  # fmt: skip
    if computed(weight, bias) or weight.dim() != 4:
        raise NotImplementedError("a 2-D convolution whose weight is computed in the forward")
    out, per_group, kh, kw = weight.shape
    conv = nn.Conv2d(per_group * groups, out, (kh, kw), stride, padding, dilation, groups, bias=False, device="meta")
    return holding(conv, weight=weight, bias=bias)


def _linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> nn.Linear:
    if computed(weight, bias):
        raise NotImplementedError("a linear map whose weight is computed in the forward")
    return holding(nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta"), weight=weight, bias=bias)


functional(F.conv2d, _conv)  # timm's same-padding and mixed convolutions call it
functional(F.linear, _linear)  # timm's Linear does


@rule(CONV, "bp")
class ConvTranspose(Rule):
    """Convolution reversed by the transposed convolution with the same weights.

    Forward: y = W ∗ x + b (any stride s, padding p, dilation d, groups).
    Reverse: x̂ = Wᵀ ŷ, i.e. ``conv_transpose2d(ŷ, W, s, dilation=d, groups)`` taken
    in the padded input's coordinates, then cropped by the left/top padding and cut
    or zero-filled on the right/bottom, where the forward's floor division dropped
    rows no window reached (conv_transpose2d's own padding and output_padding do
    this where they can express it). x̂ has x's shape exactly. Bottleneck: x's size.
    """

    gradient = True

    def forward(self, conv: nn.Conv2d, x: Tensor) -> tuple[Tensor, Size]:
        return conv(x), x.shape[-2:]

    def reverse(self, conv: nn.Conv2d, grad: Tensor, size: Size) -> Tensor:
        if conv.padding_mode != "zeros":
            raise NotImplementedError(f"Conv2d with padding_mode={conv.padding_mode!r}")
        padding = tuple(_padding_before(conv, a) for a in (0, 1))
        reached = [(grad.shape[2 + a] - 1) * conv.stride[a] - 2 * padding[a] + conv.dilation[a] * (conv.kernel_size[a] - 1) + 1
                   for a in (0, 1)]  # fmt: skip
        extra = tuple(size[a] - reached[a] for a in (0, 1))  # the rows the floor division dropped
        if all(0 <= e < max(s, d) for e, s, d in zip(extra, conv.stride, conv.dilation)):
            return F.conv_transpose2d(grad, conv.weight, None, conv.stride, padding, extra, conv.groups, conv.dilation)
        full = F.conv_transpose2d(
            grad, conv.weight, stride=conv.stride, dilation=conv.dilation, groups=conv.groups
        )
        crop = []
        for axis in (1, 0):  # F.pad lists the last axis first
            before = _padding_before(conv, axis)
            crop += [-before, size[axis] - (full.shape[2 + axis] - before)]
        return F.pad(full, crop)

    def footprint(self, conv: nn.Conv2d, size: Size) -> tuple | None:
        if conv.padding_mode != "zeros":
            return None
        return tuple((conv.kernel_size[a], conv.stride[a], _padding_before(conv, a), conv.dilation[a]) for a in (0, 1))

    def reverse_window(self, conv: nn.Conv2d, grad: Tensor, size: Size, window: Any) -> Tensor:
        """On a window: x̂ = Wᵀ ŷ on every input position the window's outputs read."""
        return F.conv_transpose2d(grad, conv.weight, stride=conv.stride, dilation=conv.dilation, groups=conv.groups)


def _padding_before(conv: nn.Conv2d, axis: int) -> int:
    if conv.padding == "valid":
        return 0
    if isinstance(conv.padding, str):  # "same": torch pads the odd extra element at the end
        return conv.dilation[axis] * (conv.kernel_size[axis] - 1) // 2
    return conv.padding[axis]


@rule(LINEAR, "bp")
class LinearTranspose(Rule):
    """Fully connected layer reversed by its transpose.

    Forward: y = W x + b.   Reverse: x̂ = Wᵀ ŷ.   Bottleneck: none.
    """

    gradient = True

    def forward(self, linear: nn.Linear, x: Tensor) -> tuple[Tensor, None]:
        return linear(x), None

    def reverse(self, linear: nn.Linear, grad: Tensor, r: None) -> Tensor:
        return grad @ linear.weight
