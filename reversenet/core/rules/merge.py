"""Where paths meet: residual addition, products and concatenation."""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import Size, Tensor

from ..window import POINTWISE
from .registry import Rule, family, rule

ADD = family("Add", operator.add, operator.iadd, torch.add, torch.Tensor.add)
SUB = family("Sub", operator.sub, torch.sub, torch.Tensor.sub)
MUL = family("Mul", operator.mul, torch.mul, torch.Tensor.mul)
DIV = family("Div", operator.truediv, torch.div, torch.Tensor.div)
CAT = family("Concat", torch.cat, torch.concat)


def _operand(v: Any) -> bool:
    """A tensor operand as a bottleneck keeps it: the tensor or its shape."""
    return isinstance(v, (Tensor, Size))


def _unbroadcast(grad: Tensor, like: Any) -> Tensor | None:
    """`grad` summed down to a per-sample operand's shape; None for a constant or a
    tensor without the batch axis (a parameter: it is not on a path to the image)."""
    if not _operand(like):
        return None
    shape = like.shape if isinstance(like, Tensor) else like
    if len(shape) != grad.dim():
        return None
    return grad.sum_to_size(grad.shape[0], *shape[1:]) if shape[1:] != grad.shape[1:] else grad


def _same_maps(a: Any, b: Any) -> tuple | None:
    """Pointwise where both operands are maps of one shape (a residual connection); a
    broadcast operand gathers the signal of every position."""
    return POINTWISE if isinstance(a, Size) and a == b and len(a) == 4 else None


def _tensors_only(grads: tuple[Tensor | None, ...], operands: tuple[Any, ...]) -> tuple[Tensor | None, ...]:
    return tuple(g for g, a in zip(grads, operands) if _operand(a))


@rule(ADD, "bp")
class AddTranspose(Rule):
    """y = a + α·b (a residual connection). Reverse: â = ŷ, b̂ = α·ŷ, each summed
    over the axes it was broadcast along. Where one tensor feeds several layers,
    the engine sums the signals coming back. Bottleneck: the operands' shapes."""

    gradient = True

    def forward(self, op: Any, a: Any, b: Any, alpha: float = 1) -> tuple[Tensor, tuple]:
        y = torch.add(a, b, alpha=alpha) if isinstance(a, Tensor) else a + alpha * b  # never in place
        shapes = tuple(v.shape if isinstance(v, Tensor) else v for v in (a, b))
        return y, (shapes, alpha)

    def reverse(self, op: Any, grad: Tensor, r: tuple) -> tuple[Tensor | None, ...]:
        (a, b), alpha = r
        return _tensors_only((_unbroadcast(grad, a), _unbroadcast(grad * alpha, b)), (a, b))

    def footprint(self, op: Any, r: tuple) -> tuple | None:
        return _same_maps(*r[0])

    def reverse_window(self, op: Any, grad: Tensor, r: tuple, window: Any) -> tuple[Tensor, Tensor]:
        return grad, grad * r[1]


@rule(SUB, "bp")
class SubTranspose(Rule):
    """y = a − b. Reverse: â = ŷ, b̂ = −ŷ, summed over broadcast axes.
    Bottleneck: the operands' shapes."""

    gradient = True

    def forward(self, op: Any, a: Any, b: Any) -> tuple[Tensor, tuple]:
        return a - b, tuple(v.shape if isinstance(v, Tensor) else v for v in (a, b))

    def reverse(self, op: Any, grad: Tensor, r: tuple) -> tuple[Tensor | None, ...]:
        a, b = r
        return _tensors_only((_unbroadcast(grad, a), _unbroadcast(-grad, b)), (a, b))

    def footprint(self, op: Any, r: tuple) -> tuple | None:
        return _same_maps(*r)

    def reverse_window(self, op: Any, grad: Tensor, r: tuple, window: Any) -> tuple[Tensor, Tensor]:
        return grad, -grad


def _kept(factor: Any, other: Any) -> Any:
    """What a reverse needs of `factor` to send a signal to `other`: the tensor if
    `other` is one too, else only its shape (a constant gets no signal back)."""
    return factor.shape if isinstance(factor, Tensor) and not isinstance(other, Tensor) else factor


@rule(MUL, "bp")
class MulBP(Rule):
    """y = a ⊙ b. Reverse (backpropagation): â = ŷ ⊙ b, b̂ = ŷ ⊙ a, summed over
    broadcast axes. Linear when one factor is a constant (bottleneck: none beyond
    it, the other factor's shape); a product of two signals keeps both as its
    bottleneck."""

    gradient = True

    def forward(self, op: Any, a: Any, b: Any) -> tuple[Tensor, tuple]:
        return a * b, (_kept(a, b), _kept(b, a))

    def reverse(self, op: Any, grad: Tensor, r: tuple) -> tuple[Tensor | None, ...]:
        a, b = r
        grads = (
            _unbroadcast(grad * b, a) if _operand(a) else None,
            _unbroadcast(grad * a, b) if _operand(b) else None,
        )
        return _tensors_only(grads, (a, b))

    def bits(self, op: Any, r: tuple) -> float:
        a, b = r
        both = isinstance(a, Tensor) and isinstance(b, Tensor)
        return float(sum(v.numel() * v.element_size() * 8 for v in r)) if both else 0.0


@rule(CAT, "bp")
class Split(Rule):
    """y = concat(x₁, …, x_k) along an axis. Reverse: split ŷ back into pieces of
    the inputs' sizes. Bottleneck: the sizes."""

    gradient = True

    def forward(self, op: Any, tensors: list[Tensor], dim: int = 0) -> tuple[Tensor, tuple]:
        dim = dim % tensors[0].dim()
        if dim == 0:
            raise NotImplementedError("concatenation along the batch axis")
        return torch.cat(tensors, dim), (tuple(t.shape[dim] for t in tensors), dim)

    def reverse(self, op: Any, grad: Tensor, r: tuple) -> tuple[Tensor, ...]:
        sizes, dim = r
        return grad.split(list(sizes), dim)

    def footprint(self, op: Any, r: tuple) -> tuple | None:
        return POINTWISE if r[1] == 1 else None  # channels; not positions


@rule(DIV, "bp")
class DivBP(MulBP):
    """y = a / b. Reverse (backpropagation): â = ŷ / b, b̂ = −ŷ a / b², summed over
    broadcast axes. Linear when b is a constant (bottleneck: b and a's shape)."""

    def forward(self, op: Any, a: Any, b: Any) -> tuple[Tensor, tuple]:
        return a / b, (_kept(a, b), b)

    def reverse(self, op: Any, grad: Tensor, r: tuple) -> tuple[Tensor | None, ...]:
        a, b = r
        grads = (
            _unbroadcast(grad / b, a) if _operand(a) else None,
            _unbroadcast(-grad * a / (b * b), b) if _operand(b) else None,
        )
        return _tensors_only(grads, (a, b))
