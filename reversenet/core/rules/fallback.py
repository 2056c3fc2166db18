"""The fallback for layers without a rule of their own: exact backpropagation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from .registry import Rule, Signal, call


class VectorJacobian(Rule):
    """x̂ = (∂y/∂x)ᵀ ŷ at the recorded input: the exact vector-Jacobian product,
    by autograd, for any operation. Used only where a variant says
    ``fallback: bp``. Bottleneck: the layer's inputs themselves.
    """

    family, name = "fallback", "bp"
    tiled = False  # the bottleneck is the operation's own arguments, which may fix the batch size

    def forward(self, op: Any, *args: Any, **kwargs: Any) -> tuple[Any, tuple]:
        return call(op, *copies(*_plain((args, kwargs)))), (args, kwargs)

    def reverse(self, op: Any, grad: Signal, r: tuple) -> tuple[Tensor | None, ...]:
        leaves, spec = tree_flatten(r)
        tensors = [i for i, v in enumerate(leaves) if isinstance(v, (Tensor, Constant))]
        where = [i for i in tensors if isinstance(leaves[i], Tensor) and leaves[i].is_floating_point()]

        positions: list[int] = []  # of the tensors in a tuple output

        def apply(*tensors: Tensor) -> Tensor | tuple[Tensor, ...]:
            filled = list(leaves)
            for i, t in zip(where, tensors):
                filled[i] = t
            out = call(op, *copies(*_plain(tree_unflatten(filled, spec))))
            if not isinstance(out, (tuple, list)):
                return out
            positions[:] = [i for i, o in enumerate(out) if isinstance(o, Tensor)]
            return tuple(out[i] for i in positions)  # vjp takes tensors only (MHA gives None too)

        with torch.enable_grad():
            primals = (leaves[i].detach() for i in where)
            # two values: torch types the result for has_aux=True too (a third value, aux)
            out, vjp = cast(tuple[Any, Callable[..., Any]], torch.func.vjp(apply, *primals))
        # K signals per recorded output, stacked along the first axis: one pullback each
        first = out[0] if isinstance(out, tuple) else out
        signal = next(iter(grad.values())) if isinstance(grad, dict) else grad
        rows = first.shape[0] if first.dim() else len(signal)
        pulled = []
        for a in range(0, len(signal), rows):
            cotangents: Tensor | tuple[Tensor, ...]
            if isinstance(grad, dict):  # signals for some elements of a tuple output
                cotangents = tuple(grad[i][a : a + rows] if i in grad else torch.zeros_like(o) for i, o in zip(positions, out))
            else:
                cotangents = grad[a : a + rows]
            pulled.append(vjp(cotangents))
        grads = {i: torch.cat(parts) if len(parts) > 1 else parts[0] for i, parts in zip(where, zip(*pulled))}
        return tuple(grads.get(i) for i in tensors)  # None for integer tensors and constants

    def bits(self, op: Any, r: tuple) -> float:
        leaves, _ = tree_flatten(r)
        return float(sum(v.numel() * v.element_size() * 8 for v in leaves if isinstance(v, Tensor)))


class Constant:
    """An argument of a layer that does not depend on the input (a weight computed in the
    forward, a parameter): the fallback passes it to the operation, and sends no signal to
    it (no vector-Jacobian product into weights). Not a bottleneck: the model holds it."""

    __slots__ = ("value",)

    def __init__(self, value: Tensor):
        self.value = value


def _plain(r: tuple[tuple, dict]) -> tuple[tuple, dict]:
    """The arguments with each `Constant` replaced by its value."""
    return cast(tuple[tuple, dict], tree_map(lambda v: v.value if isinstance(v, Constant) else v, r))


def copies(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The arguments with their tensors copied: an unknown op may work in place
    (SiLU(inplace=True)), and its input is also a bottleneck and another layer's input."""
    return tree_map(lambda v: v.clone() if isinstance(v, Tensor) else v, (args, kwargs))


FALLBACK = VectorJacobian()
