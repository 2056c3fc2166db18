"""A model as a torch.fx graph: tracing, layer names and the path to a layer."""

from __future__ import annotations

import hashlib
import inspect
import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from ..errors import ReversenetError, UsageError, first_line, unknown
from .rules import FUNCTIONAL, Family, family_of
from .tracing import ShapeTracer, Tracer, execute


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
        """The step and its type, and for a function the module whose forward calls it."""
        inside = list(self.node.meta.get("nn_module_stack", {}).values()) if self.node.op != "call_module" else []
        if inside:
            path, cls = inside[-1]
            return f"{self.name} ({self.kind}) in {path} ({getattr(cls, '__name__', cls)})"
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

    `example` is an input the graph is for, the values of the forward's other parameters
    in order: used only where tracing needs the input's geometry (shape-dependent control
    flow; docs/design.md §9), then the graph holds for inputs of that geometry (`at`).
    """

    def __init__(
        self, model: nn.Module, aliases: dict[str, str] | None = None, none: frozenset[str] | None = None,
        example: torch.Tensor | Sequence[Any] | None = None,
    ):
        example = (example,) if isinstance(example, torch.Tensor) else example
        self.model = model
        self.none = none_parameters(model, ()) if none is None else none
        self.aliases = paper_aliases(model) if aliases is None else dict(aliases)  # conv5, fc8, … by default
        self.geometry: tuple | None = None  # the input geometry a shape-specialised graph holds for
        self._specialised: dict[tuple, Graph] = {}
        concrete = dict.fromkeys(self.none) or None
        with evaluation(model):  # trace the evaluation-mode network (no auxiliary heads)
            try:
                self.fx = Tracer().trace(model, concrete)
            except Exception as exc:  # tracing runs user code: any failure is the model's
                if example is None:
                    raise _untraceable(model, exc) from exc
                self.fx = self._trace_at(example, concrete)
        self.in_place = _unalias(self.fx, model)  # nodes that write into their first argument
        self.nodes = list(self.fx.nodes)
        # torch.fx makes one placeholder per parameter, in order, one traced as None too
        placeholders = [n for n in self.nodes if n.op == "placeholder"]
        names = inspect.signature(model.forward).parameters
        self.input = [n for n, name in zip(placeholders, names) if name not in self.none]
        self.live = set(self.input)  # the nodes that depend on the inputs; the rest are constants
        for node in self.nodes:
            if any(n in self.live for n in node.all_input_nodes):
                self.live.add(node)

    def _trace_at(self, example: Sequence[Any], concrete: dict[str, None] | None) -> fx.Graph:
        """The trace with shapes made concrete for `example`'s geometry (`ShapeTracer`)."""
        names = [name for name in inspect.signature(self.model.forward).parameters if name not in self.none]
        try:
            graph = ShapeTracer(dict(zip(names, example))).trace(self.model, concrete)
        except Exception as exc:
            raise _untraceable(self.model, exc, data_dependent=isinstance(exc, fx.proxy.TraceError)) from exc
        for node in graph.nodes:  # the example's activations: not kept
            node.meta.pop("value", None)
        self.geometry = geometry(example)
        return graph

    def at(self, example: torch.Tensor | Sequence[Any]) -> Graph:
        """The graph for inputs like `example` (as in `Graph`): this one, unless it is
        specialised to another input geometry, then one traced for the example's (kept)."""
        example = (example,) if isinstance(example, torch.Tensor) else example
        key = geometry(example)
        if self.geometry is None or self.geometry == key:
            return self
        if key not in self._specialised:
            self._specialised[key] = Graph(self.model, self.aliases, self.none, example)
        return self._specialised[key]

    @cached_property
    def fingerprint(self) -> str:
        """What identifies this trace: the model's modules (which objects, of which
        classes, under which names) and the operations of the graph."""
        modules = ";".join(f"{name}:{type(m).__qualname__}:{id(m)}" for name, m in self.model.named_modules())
        return hashlib.sha256(f"{modules}\n{self.fx}".encode()).hexdigest()

    def names(self) -> list[str]:
        """Every name `resolve` accepts: module names, aliases, operations named by their
        module (``layer1.0.add``) and node names."""
        modules = [name for name, _ in self.model.named_modules() if name]
        return modules + list(self.aliases) + list(self._in_module.values()) + [n.name for n in self.nodes if n.op != "output"]

    @cached_property
    def _in_module(self) -> dict[fx.Node, str]:
        """The operations a module's forward calls (not modules: ``x + identity``), named by
        the module and the operation, ``layer1.0.add``; ``#k`` for the k-th of several."""
        named: dict[fx.Node, str] = {}
        for node in self.nodes:
            if node.op in ("call_function", "call_method") and _stack(node):
                operation = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", node.name)
                named[node] = f"{_stack(node)[-1]}.{operation.strip('_')}"
        counts: dict[str, int] = {}
        for name in named.values():
            counts[name] = counts.get(name, 0) + 1
        seen: dict[str, int] = {}
        for node, name in named.items():
            seen[name] = seen.get(name, 0) + 1
            named[node] = name if counts[name] == 1 else f"{name}#{seen[name]}"
        return named

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
        operations = [node for node, known in self._in_module.items() if known == name]
        if operations:
            return operations[0]
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
            try:  # with the model's tensors (F.conv2d(x, self.weight)) as they are now
                held = fx.node.map_arg((args[1:], kwargs), self._attribute)
                op = FUNCTIONAL[node.target](*args[:1], *held[0], **held[1])
            except NotImplementedError:  # a form the module cannot express: no rule
                return Step(node, node.target, None, tuple(args), dict(kwargs))
            args, kwargs = (args[0] if args else kwargs["input"],), {}
        else:
            op = node.target
        return Step(node, op, family_of(op), tuple(args), dict(kwargs))

    def run(self, node: fx.Node, values: dict[fx.Node, Any]) -> Any:
        """The model's own operation at `node` (its module, function or method, as the
        forward calls it) on the `values` of its inputs."""
        args, kwargs = fx.node.map_arg((node.args, node.kwargs), values.__getitem__)
        return execute(self.model, node.op, node.target, args, kwargs)

    def _attribute(self, node: fx.Node) -> Any:
        """A get_attr node's tensor; other nodes stay nodes (a value computed in the forward)."""
        return operator.attrgetter(_target(node))(self.model) if node.op == "get_attr" else node

    def _calls(self, target: str) -> list[fx.Node]:
        return [n for n in self.nodes if n.op == "call_module" and n.target == target]

    def unique_name(self, node: fx.Node) -> str:
        """The module name of a module called once, ``module#k`` for its k-th call of
        several; an operation a module's forward calls named by both (``layer1.0.add``);
        else the graph node's name."""
        if node.op != "call_module":
            return self._in_module.get(node, node.name)
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


_IN_PLACE = {operator.iadd, operator.isub, operator.imul, operator.itruediv}


def _unalias(graph: fx.Graph, model: nn.Module) -> set[fx.Node]:
    """Make each in-place operation's result what later readers of its input read.

    ``x.mul_(g)``, ``out += shortcut`` and ``nn.ReLU(inplace=True)`` change their input,
    so the forward's later uses of ``x`` see the new value; the graph still wires them to
    the old node. Rules never write into their inputs, so those uses are rewired to the
    in-place node: the same values, and the signal of a later use goes back through the
    in-place operation as it should. (An in-place write into a view of another tensor
    is not followed; the guard catches it.) Returns the in-place nodes."""
    order = {node: i for i, node in enumerate(graph.nodes)}
    in_place = set()
    for node in graph.nodes:
        changed = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
        if changed is None or not _in_place(node, model):
            continue
        in_place.add(node)
        for user in list(changed.users):
            if order[user] > order[node]:
                user.replace_input_with(changed, node)
    return in_place


def _in_place(node: fx.Node, model: nn.Module) -> bool:
    """Whether a node writes into its first argument."""
    if node.op == "call_module":
        return getattr(model.get_submodule(_target(node)), "inplace", False) is True
    name = _target(node) if node.op == "call_method" else getattr(node.target, "__name__", "")
    in_place_name = name.endswith("_") and not name.endswith("__")
    return node.op in ("call_method", "call_function") and (
        in_place_name or node.target in _IN_PLACE or node.kwargs.get("inplace") is True
    )


@contextmanager
def evaluation(model: nn.Module) -> Iterator[None]:
    """The model in evaluation mode while the block runs, its modules' modes restored
    after: the reversed network is that of the evaluation-mode model."""
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        yield
    finally:
        for m, training in modes.items():
            m.training = training


def geometry(values: Sequence[Any]) -> tuple:
    """What a trace specialised to the forward's arguments `values` depends on: each
    tensor's shape and dtype, each plain value itself."""
    return tuple((tuple(v.shape), v.dtype) if isinstance(v, torch.Tensor) else v if isinstance(v, (int, float, str, bool)) else
                 type(v).__name__ for v in values)  # fmt: skip


def _untraceable(model: nn.Module, exc: Exception, data_dependent: bool | None = None) -> ReversenetError:
    """Why `model` cannot be traced: symbolically (data_dependent None), or for an example input."""
    if data_dependent is None:
        hint = ("reversenet needs a forward without data-dependent control flow; where it depends on the "
                "input's shape only, trace for an example input: Graph(model, example=x)")
    elif data_dependent:
        hint = "reversenet needs a forward whose control flow depends on the input's shape only, not its values"
    else:
        hint = "the model's forward fails on this input"
    return ReversenetError(
        f"cannot trace {type(model).__name__} with torch.fx{_culprit(model, exc)} ({type(exc).__name__}: "
        f"{first_line(exc)}); {hint}"
    )


def _culprit(model: nn.Module, exc: BaseException) -> str:
    """' in NAME (Type)': the innermost of the model's modules whose code raised `exc`."""
    names = {id(m): name for name, m in model.named_modules()}
    where, tb = "", exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_locals.get("self")
        if isinstance(module, nn.Module) and id(module) in names:
            where = f" in {names[id(module)] or 'its forward'} ({type(module).__name__})"
        tb = tb.tb_next
    return where


def device_of(module: nn.Module) -> torch.device:
    """Where a model's parameters are (the CPU for a model without any)."""
    return next(module.parameters(), torch.empty(0)).device


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
