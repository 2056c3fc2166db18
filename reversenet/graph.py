"""A model as a torch.fx graph: tracing, layer names and the path to a layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from .errors import ReversenetError, UsageError, unknown
from .rules import Family, family_of


class _Tracer(fx.Tracer):
    """Keeps every layer with a reverse rule as one node; traces through the rest."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return family_of(m) is not None or super().is_leaf_module(m, qualname)


@dataclass(frozen=True)
class Step:
    """One operation on the way to the chosen layer."""

    node: fx.Node
    op: Any  # the module or function that the node calls
    family: Family | None
    inputs: tuple[fx.Node, ...]  # the nodes whose tensors it reads, in order

    @property
    def name(self) -> str:
        """The module name for a module call, else the graph node's name."""
        return self.node.target if self.node.op == "call_module" else self.node.name

    @property
    def kind(self) -> str:
        """The module's class name, or the function's name."""
        if isinstance(self.op, nn.Module):
            return type(self.op).__name__
        return getattr(self.op, "__name__", None) or str(self.op)

    @property
    def where(self) -> str:
        return f"{self.name} ({self.kind})"


class Graph:
    """The traced graph of `model`; the model itself is not modified."""

    def __init__(self, model: nn.Module, aliases: dict[str, str] | None = None):
        self.model = model
        self.aliases = dict(aliases or {})
        try:
            self.fx = _Tracer().trace(model)
        except Exception as exc:  # tracing runs user code: any failure is the model's
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReversenetError(
                f"cannot trace {type(model).__name__} with torch.fx: {first}"
            ) from exc
        self.nodes = list(self.fx.nodes)
        inputs = [n for n in self.nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            raise ReversenetError(f"{type(model).__name__}.forward must take one tensor, not {len(inputs)}")
        self.input = inputs[0]

    def names(self) -> list[str]:
        """Every name `resolve` accepts: module names, aliases and node names."""
        modules = [name for name, _ in self.model.named_modules() if name]
        return modules + list(self.aliases) + [n.name for n in self.nodes if n.op != "output"]

    def resolve(self, layer: str) -> fx.Node:
        """The node whose output is `layer`: a module name, an alias or a node name."""
        name = self.aliases.get(layer, layer)
        calls = [n for n in self.nodes if n.op == "call_module" and n.target == name]
        if len(calls) > 1:
            raise UsageError(
                f"module {name!r} is called {len(calls)} times; name one call by its "
                f"graph node: {', '.join(n.name for n in calls)}"
            )
        if calls:
            return calls[0]
        inside = [n for n in self.nodes if name in n.meta.get("nn_module_stack", {})]
        if inside:  # a container: its output is the last node computed inside it
            return inside[-1]
        by_name = [n for n in self.nodes if n.name == name and n.op != "output"]
        if by_name:
            return by_name[0]
        if name == "output":
            return self.nodes[-1].args[0]
        raise unknown("layer", layer, self.names())

    def path(self, target: fx.Node) -> list[Step]:
        """The operations `target` depends on, in execution order."""
        needed = {target}
        for node in reversed(self.nodes):
            if node in needed:
                needed.update(node.all_input_nodes)
        return [self._step(n) for n in self.nodes if n in needed and n.op != "placeholder"]

    def _step(self, node: fx.Node) -> Step:
        op = self.model.get_submodule(node.target) if node.op == "call_module" else node.target
        return Step(node, op, family_of(op), tuple(node.all_input_nodes))

    def shapes(self, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
        """Output shape (without the batch) of every tensor-valued node, for `x`."""
        module = fx.GraphModule(self.model, self.fx)
        with torch.no_grad():
            ShapeProp(module).propagate(x)
        return {
            n.name: tuple(n.meta["tensor_meta"].shape[1:])
            for n in self.nodes
            if isinstance(n.meta.get("tensor_meta"), TensorMetadata)
        }
