"""Tracing a model with torch.fx: which modules stay one node (those with a reverse rule),
and, for a forward that reads its input's geometry, tracing with an example input at hand."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

import torch
from torch import fx, nn

from .rules import family_of


class Tracer(fx.Tracer):
    """Keeps every layer with a reverse rule as one node; traces through the rest, and
    through modules with forward hooks, which change what the module computes."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if m._forward_hooks or m._forward_pre_hooks or "forward" in vars(m):
            return False
        return family_of(m) is not None or super().is_leaf_module(m, qualname)


# Tensor attributes and methods that the shape tracer answers with the example's values
_SHAPE_ATTRIBUTES = {"shape", "ndim", "dtype", "device", "is_cuda"}
_SHAPE_METHODS = {"size", "dim", "ndimension", "numel", "nelement"}


class ShapeTracer(Tracer):
    """`Tracer` with an example input at hand: every node is also computed on it, and
    what Python reads of a tensor's geometry (``x.shape``, ``x.size(-1)``, ``len(x)``,
    ``x.dtype``) is a plain value, so that shape-dependent control flow (timm's
    ``ConvMlp``, padding computed from the input size) runs as for that input. The graph
    holds for inputs of that geometry only. Data-dependent control flow still fails."""

    def __init__(self, examples: dict[str, Any]):
        super().__init__()
        self._examples = examples  # per parameter name
        self._concrete = False  # computing a node's value: modules and parameters are real

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _SizedProxy(node, self)

    def create_proxy(self, kind: str, target: Any, args: tuple, kwargs: dict, *rest: Any, **more: Any) -> Any:
        if kind == "call_method" and target in _SHAPE_METHODS:
            values = fx.node.map_aggregate((args, kwargs), _value)
            return getattr(values[0][0], target)(*values[0][1:], **values[1])
        proxy = super().create_proxy(kind, target, args, kwargs, *rest, **more)
        proxy.node.meta["value"] = self._evaluate(kind, target, args, kwargs)
        return proxy

    def _evaluate(self, kind: str, target: Any, args: tuple, kwargs: dict) -> Any:
        """The node's value on the example (one forward pass over the trace)."""
        if kind == "placeholder":  # the example, else the parameter's default (None: traced as None)
            return self._examples.get(target, args[0] if args else None)
        values = fx.node.map_aggregate((args, kwargs), _value)
        if kind == "output":
            return values[0][0] if values[0] else None
        self._concrete = True
        try:
            with torch.no_grad():
                return execute(self.root, kind, target, *values)
        finally:
            self._concrete = False

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        return forward(*args, **kwargs) if self._concrete else super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        return attr_val if self._concrete else super().getattr(attr, attr_val, parameter_proxy_cache)

    def iter(self, obj: fx.Proxy) -> Iterator[Any]:
        return (operator.getitem(obj, i) for i in range(len(_value(obj))))


class _SizedProxy(fx.Proxy):
    """A proxy whose geometry is that of its value on the example."""

    def __getattr__(self, k: str) -> Any:
        if k in _SHAPE_ATTRIBUTES:
            return getattr(_value(self), k)
        return super().__getattr__(k)

    def __len__(self) -> int:
        return len(_value(self))


def execute(root: nn.Module, kind: str, target: Any, args: tuple, kwargs: dict) -> Any:
    """What a graph node of this kind and target computes, in `root`, on these arguments."""
    if kind == "call_module":
        return root.get_submodule(target)(*args, **kwargs)
    if kind == "call_method":
        return getattr(args[0], target)(*args[1:], **kwargs)
    if kind == "get_attr":
        return operator.attrgetter(target)(root)
    return target(*args, **kwargs)


def _value(a: Any) -> Any:
    return a.node.meta["value"] if isinstance(a, fx.Proxy) else a
