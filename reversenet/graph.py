"""A model as a torch.fx graph: tracing, layer names and the path to a layer."""

from __future__ import annotations

import inspect
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from .errors import ReversenetError, UsageError, first_line, unknown
from .rules import FUNCTIONAL, Family, family_of


class _Tracer(fx.Tracer):
    """Keeps every layer with a reverse rule as one node; traces through the rest."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return family_of(m) is not None or super().is_leaf_module(m, qualname)


@dataclass(frozen=True)
class Step:
    """One operation on the way to the chosen layer: ``op(*args, **kwargs)`` with
    graph nodes among the arguments."""

    node: fx.Node
    op: Any  # a module, a function, a method of torch.Tensor, or a get_attr value
    family: Family | None
    args: tuple
    kwargs: dict

    @property
    def inputs(self) -> list[fx.Node]:
        """The nodes among the arguments, in order, repeats included."""
        found: list[fx.Node] = []
        fx.node.map_arg((self.args, self.kwargs), found.append)
        return found

    @property
    def name(self) -> str:
        """The module name for a module call, else the graph node's name."""
        return _target(self.node) if self.node.op == "call_module" else self.node.name

    @property
    def kind(self) -> str:
        """The module's class name, or the function's name."""
        if isinstance(self.op, nn.Module):
            return type(self.op).__name__
        return getattr(self.op, "__name__", None) or str(self.op)

    @property
    def where(self) -> str:
        return f"{self.name} ({self.kind})"


def _target(node: fx.Node) -> str:
    # fx types every node's target as a function or a name; a call_module, get_attr or
    # call_method node's is the name (a module path, an attribute path, a method)
    return cast(str, node.target)


def _stack(node: fx.Node) -> list[str]:
    """Qualified names of the modules that `node` was traced inside, outermost first."""
    return [path for path, _ in node.meta.get("nn_module_stack", {}).values()]


class Graph:
    """The traced graph of `model`; the model itself is not modified.

    `none` names forward parameters that are None in the calls the graph serves (an
    optional input left out; by default those whose default is None): they are traced as
    the constant None, so that a forward that tests ``if x2 is not None`` takes the branch
    of such calls. `input` is the list of the other parameters' placeholders, in the
    forward's order.
    """

    def __init__(
        self, model: nn.Module, aliases: dict[str, str] | None = None, none: frozenset[str] | None = None
    ):
        self.model = model
        self.none = none_parameters(model, ()) if none is None else none
        self.aliases = paper_aliases(model) if aliases is None else dict(aliases)  # conv5, fc8, … by default
        modes = {m: m.training for m in model.modules()}
        try:  # trace the evaluation-mode network (no auxiliary heads), then restore
            model.eval()
            self.fx = _Tracer().trace(model, dict.fromkeys(self.none) or None)
        except Exception as exc:  # tracing runs user code: any failure is the model's
            raise ReversenetError(
                f"cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: {first_line(exc)}); "
                "reversenet needs a forward without data-dependent control flow"
            ) from exc
        finally:
            for m, training in modes.items():
                m.training = training
        self.nodes = list(self.fx.nodes)
        # torch.fx makes one placeholder per parameter, in order, one traced as None too
        placeholders = [n for n in self.nodes if n.op == "placeholder"]
        names = inspect.signature(model.forward).parameters
        self.input = [n for n, name in zip(placeholders, names) if name not in self.none]

    def names(self) -> list[str]:
        """Every name `resolve` accepts: module names, aliases and node names."""
        modules = [name for name, _ in self.model.named_modules() if name]
        return modules + list(self.aliases) + [n.name for n in self.nodes if n.op != "output"]

    def resolve(self, layer: str) -> fx.Node:
        """The node whose output is `layer`: a module name, an alias or a node name."""
        name = self.aliases.get(layer, layer)
        base, _, nth = name.rpartition("#") if "#" in name else (name, "", "")
        calls = self._calls(base)
        if nth:  # module#k: the k-th call of a module called several times
            if not nth.isdigit() or not 1 <= int(nth) <= len(calls):
                raise UsageError(f"{layer!r}: module {base!r} is called {len(calls)} times; #k counts from 1")
            return calls[int(nth) - 1]
        if len(calls) > 1:
            raise UsageError(
                f"module {name!r} is called {len(calls)} times; name one call: "
                + ", ".join(f"{name}#{k}" for k in range(1, len(calls) + 1))
            )
        if calls:
            return calls[0]
        last = self._last_in(name)
        if last is not None:  # a container: its output is the last node computed inside it
            return last
        by_name = [n for n in self.nodes if n.name == name and n.op != "output"]
        if by_name:
            return by_name[0]
        if name == "output":
            return self.nodes[-1].args[0]
        raise unknown("layer", layer, self.names(), "`reversenet layers --model NAME`")

    def path(self, *targets: fx.Node) -> list[Step]:
        """The operations the `targets` depend on, in execution order."""
        needed = set(targets)
        for node in reversed(self.nodes):
            if node in needed:
                needed.update(node.all_input_nodes)
        return [self.step(n) for n in self.nodes if n in needed and n.op != "placeholder"]

    def step(self, node: fx.Node) -> Step:
        """The operation a node runs, with its module, function or method resolved."""
        args, kwargs = node.args, node.kwargs
        op: Any
        if node.op == "call_module":
            op = self.model.get_submodule(_target(node))
        elif node.op == "get_attr":
            op = operator.attrgetter(_target(node))(self.model)
        elif node.op == "call_method":
            op = getattr(torch.Tensor, _target(node), node.target)
        elif node.target in FUNCTIONAL:  # F.relu(x) is reversed as nn.ReLU()(x)
            try:
                op = FUNCTIONAL[node.target](*args, **kwargs)
            except NotImplementedError:  # a form the module cannot express: no rule
                return Step(node, node.target, None, tuple(args), dict(kwargs))
            args, kwargs = (args[0] if args else kwargs["input"],), {}
        else:
            op = node.target
        return Step(node, op, family_of(op), tuple(args), dict(kwargs))

    def _calls(self, target: str) -> list[fx.Node]:
        return [n for n in self.nodes if n.op == "call_module" and n.target == target]

    def unique_name(self, node: fx.Node) -> str:
        """The module name of a module called once, ``module#k`` for its k-th call of
        several, else the graph node's name."""
        if node.op != "call_module":
            return node.name
        target = _target(node)
        calls = self._calls(target)
        return target if len(calls) == 1 else f"{target}#{calls.index(node) + 1}"

    def name_of(self, node: fx.Node) -> str:
        """The friendliest name that `resolve` maps to `node`: an alias, a module
        called once, the outermost container that ends there, or the node's name."""
        aliases = [a for a, target in self.aliases.items() if node.op == "call_module" and target == node.target]
        if aliases:
            return aliases[0]
        if node.op == "call_module" and len(self._calls(_target(node))) == 1:
            return _target(node)
        return next(iter(self.containers_ending_at(node)), self.unique_name(node))

    def containers_ending_at(self, node: fx.Node) -> list[str]:
        """The submodules whose output `node` is, outermost first."""
        own = node.target if node.op == "call_module" else None  # a leaf is no container
        return [name for name in _stack(node) if name != own and self._last_in(name) is node]

    def _last_in(self, container: str) -> fx.Node | None:
        inside = [n for n in self.nodes if container in _stack(n)]
        return inside[-1] if inside else None

    def default_layer(self) -> str:
        """The last feature map: the input of the last global average pooling
        (VGG's pool5, ResNet's layer4), else the output."""
        pools = [
            n for n in self.nodes
            if n.op in ("call_module", "call_function") and isinstance(self.step(n).op, nn.AdaptiveAvgPool2d)
        ]  # fmt: skip
        return self.name_of(pools[-1].all_input_nodes[0]) if pools else "output"

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


def none_parameters(model: nn.Module, args: Sequence[object]) -> frozenset[str]:
    """The parameters of `model`'s forward that are None in a call with positional `args`:
    given as None, or left out where their default is None."""
    parameters = list(inspect.signature(model.forward).parameters.values())
    if len(args) > len(parameters) and all(p.kind != p.VAR_POSITIONAL for p in parameters):
        raise UsageError(
            f"too many arguments for {type(model).__name__}.forward: {len(args)} given, it takes {len(parameters)}"
        )
    given = dict(zip((p.name for p in parameters), args))
    return frozenset(p.name for p in parameters if given.get(p.name, p.default) is None)


def paper_aliases(model: nn.Module) -> dict[str, str]:
    """MatConvNet-style names for AlexNet and VGG (``conv1``/``conv1_1`` … ``pool5``,
    ``fc6`` … ``fc8``) mapped to module names; empty for other architectures."""
    features, classifier = getattr(model, "features", None), getattr(model, "classifier", None)
    if not isinstance(features, nn.Sequential) or not isinstance(classifier, nn.Sequential):
        return {}
    convs = sum(isinstance(m, nn.Conv2d) for m in features)
    vgg = convs > 5  # AlexNet numbers its five convolutions 1..5, VGG per block
    aliases, block, in_block, total, tag = {}, 1, 0, 0, ""
    for name, m in features.named_children():
        if isinstance(m, nn.Conv2d):
            in_block, total = in_block + 1, total + 1
            tag = f"{block}_{in_block}" if vgg else str(total)
            prefix: str | None = "conv"
        elif isinstance(m, nn.MaxPool2d):
            tag, prefix = str(block if vgg else total), "pool"
            block, in_block = block + 1, 0
        else:
            prefix = {nn.ReLU: "relu", nn.BatchNorm2d: "bn", nn.LocalResponseNorm: "norm"}.get(type(m))
        if prefix:
            aliases[f"{prefix}{tag}"] = f"features.{name}"
    fc = 5
    for name, m in classifier.named_children():
        if isinstance(m, nn.Linear):
            fc += 1
        prefix = {nn.Linear: "fc", nn.ReLU: "relu", nn.Dropout: "drop"}.get(type(m))
        if prefix and fc > 5:
            aliases[f"{prefix}{fc}"] = f"classifier.{name}"
    return aliases
