"""Layers that move or pass values without mixing them."""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Size, Tensor, nn

from .registry import Rule, family, functional, rule

DROPOUT = family("Dropout", nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
IDENTITY = family("Identity", nn.Identity)
RESHAPE = family(
    "Reshape",
    nn.Flatten, torch.flatten, torch.Tensor.flatten, torch.reshape, torch.Tensor.reshape,
    torch.Tensor.view, torch.unsqueeze, torch.Tensor.unsqueeze,
)  # fmt: skip
INDEX = family("Index", operator.getitem)
PAD = family("Pad", F.pad, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d)  # and the ZeroPad*d subclasses
functional(F.dropout, lambda input, p=0.5, training=True, inplace=False: nn.Dropout(p))


@rule(DROPOUT, "identity")
@rule(IDENTITY, "identity")
class PassThrough(Rule):
    """x̂ = ŷ. Dropout is taken in evaluation mode (the identity), whatever the
    module's training flag says. Bottleneck: none."""

    gradient = True

    pointwise = True

    def forward(self, op: nn.Module, x: Tensor) -> tuple[Tensor, None]:
        return x, None

    def reverse(self, op: nn.Module, grad: Tensor, r: None) -> Tensor:
        return grad


@rule(RESHAPE, "bp")
class Unreshape(Rule):
    """Reshaping reversed by reshaping back: x̂ = reshape(ŷ, shape of x).

    Covers ``nn.Flatten``, ``torch.flatten``, ``view``, ``reshape`` and
    ``unsqueeze``. Bottleneck: x's shape only.
    """

    gradient = True

    def forward(self, op: Any, x: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Size]:
        return op(x, *args, **kwargs), x.shape[1:]

    def reverse(self, op: Any, grad: Tensor, shape: Size) -> Tensor:
        return grad.reshape(-1, *shape)  # -1: the batch, even where start_dim=0 folded it in


@rule(INDEX, "bp")
class Unindex(Rule):
    """Basic indexing y = x[i] (slices, integers) reversed by its transpose: x̂ = 0,
    x̂[i] = ŷ. The batch axis must be taken whole. Bottleneck: x's shape and i.

    Picking element i of a layer's several outputs (a tuple) sends ŷ back to that
    element alone: the signal is {i: ŷ}, the tuple's other elements get none.
    """

    gradient = True

    def forward(self, op: Any, x: Any, index: Any) -> tuple[Any, Any]:
        if not isinstance(x, Tensor):  # an element of a tuple, counted from the front (spx[-1] is spx[3])
            if not isinstance(index, int):
                raise NotImplementedError("a slice of a layer's several outputs")
            return x[index], index % len(x)
        index = index if isinstance(index, tuple) else (index,)
        if index and index[0] is not Ellipsis and index[0] != slice(None):
            raise NotImplementedError("indexing the batch axis")
        return x[index], (x.shape[1:], index)

    def reverse(self, op: Any, grad: Tensor, r: Any) -> Tensor | dict[int, Tensor]:
        if isinstance(r, int):
            return {r: grad}
        shape, index = r
        out = grad.new_zeros(grad.shape[0], *shape)
        out[index] = grad
        return out


@rule(PAD, "bp")
class Unpad(Rule):
    """Constant padding (``F.pad(x, p, value=v)``, ``nn.ZeroPad2d``; timm pads before
    its same-padding convolutions) reversed by its transpose, the crop:
    x̂ = ŷ without the padded border, ``F.pad(ŷ, −p)`` (a negative pad, a crop in the
    forward, is zero-filled back). Bottleneck: p.
    """

    gradient = True

    def forward(self, op: Any, x: Tensor, pad: Any = None, mode: str = "constant", value: Any = None) -> tuple[Tensor, tuple]:
        if isinstance(op, nn.Module):  # nn.ConstantPad2d, nn.ZeroPad2d
            pad, value = op.padding, op.value
        if mode != "constant":
            raise NotImplementedError(f"padding mode {mode!r}")
        return F.pad(x, pad, value=value), tuple(pad)

    def reverse(self, op: Any, grad: Tensor, pad: tuple) -> Tensor:
        return F.pad(grad, [-p for p in pad])
