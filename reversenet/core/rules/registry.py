"""The registry of reversible layer pairs.

A *family* is one kind of layer, named as in the variant YAML files (``ReLU``,
``MaxPool2d``, ...), together with the operations that belong to it (module classes
and functions) and its rules. Functional forms (``F.relu``, ``F.max_pool2d``, ...) are registered with
``functional``, which turns the call into the equivalent module, so that one set of
rules serves both. A *rule* is a pair of functions:

    forward(op, *args, **kwargs) -> (y, r)     y: the layer's output, r: its bottleneck
    reverse(op, ŷ, r)            -> x̂          x̂ has the input's shape

``op`` is the module (or function) being reversed. Tensors inside ``r`` are per
sample, batch first: when several signals per image are reversed at once the engine
repeats them along the batch. A rule's ``forward`` never writes into its input, so
modules built with ``inplace=True`` are reversed like the others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import Tensor
from torch.nn import Module

from ..window import POINTWISE, Footprint, Window

M = TypeVar("M", bound=Module)

# The signal reversed to a node: a tensor, or {element index: tensor} for a node whose
# value is a tuple (a layer's several outputs)
Signal = Tensor | dict[int, Tensor]


class Rule:
    """One reversible pair. Subclasses set ``forward`` and ``reverse``."""

    family: str = ""
    name: str = ""
    pointwise: bool = False  # the reverse at a position reads the signal and bottleneck there only
    inplace: bool = False  # has reverse_, which overwrites the signal instead of allocating
    gradient: bool = False  # the reverse is the layer's vector-Jacobian product (the engine's check tests it)
    tiled: bool = True  # the engine repeats the bottleneck for K signals per image; else the rule takes K itself

    def forward(self, op: Any, *args: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def reverse(self, op: Any, grad: Tensor, r: Any) -> Signal | tuple[Tensor | None, ...]:
        """x̂ for each tensor input, in order (None: no signal goes back there)."""
        raise NotImplementedError

    def reverse_(self, op: Any, grad: Tensor, r: Any) -> Tensor:
        """`reverse` written into `grad` and returned, for a rule with ``inplace``: the
        engine calls it on a contiguous signal that nothing else reads (one allocation
        and, where variants differ at a step, one concatenation fewer)."""
        raise NotImplementedError

    def footprint(self, op: Any, r: Any) -> tuple[Footprint, Footprint] | None:
        """How far the reverse spreads a signal over a (N, C, H, W) map, per spatial
        axis (kernel, stride, padding, dilation); POINTWISE for a layer that keeps
        positions apart; None for one that mixes them all."""
        return POINTWISE if self.pointwise else None

    def reverse_window(self, op: Any, grad: Tensor, r: Any, window: Window) -> Signal | tuple[Tensor | None, ...]:
        """`reverse` of a signal on a `window` of the output map (reversenet.core.window),
        the maps in `r` cropped to it: x̂ on ``window.through(footprint)``, without
        cropping to the input map. A pointwise rule reverses as on whole maps."""
        return self.reverse(op, grad, r)

    def bits(self, op: Any, r: Any) -> float:
        """The size of the bottleneck `r` in bits (shapes and constants count 0)."""
        return 0.0

    def nbytes(self, op: Any, r: Any) -> int:
        """The memory that holding the bottleneck `r` takes: the bytes of the storages of
        the tensors inside it, each storage once and whole (a view keeps all of it alive);
        shapes and constants count 0."""
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors_in(r)}
        return sum(storages.values())

    def __repr__(self) -> str:
        return f"<rule {self.family}:{self.name}>"


def tensors_in(r: Any) -> Iterator[Tensor]:
    """The tensors inside a bottleneck: in tuples, lists, dicts and dataclasses, at any depth."""
    if isinstance(r, Tensor):
        yield r
    elif isinstance(r, (tuple, list)):
        for v in r:
            yield from tensors_in(v)
    elif isinstance(r, dict):
        for v in r.values():
            yield from tensors_in(v)
    elif dataclasses.is_dataclass(r) and not isinstance(r, type):
        for f in dataclasses.fields(r):
            yield from tensors_in(getattr(r, f.name))


@dataclass
class Family:
    """A kind of layer and the rules that can reverse it."""

    name: str
    ops: tuple[Any, ...]
    rules: dict[str, Rule] = field(default_factory=dict)

    @property
    def default(self) -> Rule | None:
        """The rule used when a variant names none: the only rule, if there is one."""
        return next(iter(self.rules.values())) if len(self.rules) == 1 else None


FAMILIES: dict[str, Family] = {}
_BY_OP: dict[Any, Family] = {}
FUNCTIONAL: dict[Any, Callable[..., Module]] = {}


def family(name: str, *ops: Any) -> Family:
    """Declare a family of layers: module classes and functions reversed alike."""
    fam = FAMILIES[name] = Family(name, ops)
    for op in ops:
        _BY_OP[op] = fam
    return fam


def rule(fam: Family, name: str) -> Callable[[type[Rule]], type[Rule]]:
    """Class decorator registering a rule under ``fam`` with the given name."""

    def register(cls: type[Rule]) -> type[Rule]:
        instance = cls()
        instance.family, instance.name = fam.name, name
        fam.rules[name] = instance
        return cls

    return register


def functional(fn: Any, to_module: Callable[..., Module]) -> None:
    """Reverse ``fn(input, *args, **kwargs)`` as ``to_module(input, *args, **kwargs)``,
    the module that computes the same function of `input`."""
    FUNCTIONAL[fn] = to_module


def holding(module: M, **tensors: Tensor | None) -> M:
    """`module` with `tensors` in place of its parameters and buffers of those names (a
    module built on the meta device for a functional call, F.conv2d(x, w, b) as a Conv2d)."""
    for name, tensor in tensors.items():
        delattr(module, name)
        setattr(module, name, tensor)
    return module


def computed(*values: Any) -> bool:
    """Whether any of a functional call's arguments is computed in the forward (a graph
    node, not one of the model's tensors): a weight standardised on the fly, a kernel
    made from the input."""
    return any(v is not None and not isinstance(v, Tensor) for v in values)


def call(op: Any, args: tuple, kwargs: dict) -> Any:
    """Apply a module, a function or (by name) a method to its arguments."""
    if isinstance(op, str):
        return getattr(args[0], op)(*args[1:], **kwargs)
    return op(*args, **kwargs)


def family_of(op: Any) -> Family | None:
    """The family of a module or of a function.

    A module belongs to its class's family, or to that of the nearest registered base
    class when no class in between changes what the base computes (`computes_as`): a
    subclass with a ``forward`` of its own (timm's BatchNormAct2d, a weight-standardised
    Conv2d) is no member, and the tracer goes inside it instead (docs/design.md §1). So
    is a module with forward hooks, which change its output where the rule cannot see, or
    with a ``forward`` set on the instance."""
    if not isinstance(op, Module):
        return _BY_OP.get(op)
    if op._forward_hooks or op._forward_pre_hooks or "forward" in vars(op):  # hooked, or a forward of its own
        return None
    base = next((key for key in type(op).__mro__ if key in _BY_OP), None)
    if base is None or not computes_as(type(op), base, _parametrized(op)):
        return None
    return _BY_OP[base]


# What a subclass may redefine and still compute as its base: construction, printing,
# copying and loading, none of which run in the forward.
_INERT = {
    "__init__", "__repr__", "extra_repr", "reset_parameters", "__setstate__", "__getstate__", "__deepcopy__",
    "_load_from_state_dict", "_save_to_state_dict",
}  # fmt: skip


def computes_as(cls: type, base: type, parametrized: frozenset[str] = frozenset()) -> bool:
    """Whether the module class `cls` computes what its base class `base` does: no class
    between them redefines a method or property of `base` (``forward``, ``_conv_forward``,
    a ``weight`` property, ...) other than the inert ones, or the tensors that
    ``torch.nn.utils.parametrize`` computes (`parametrized`), which the rules read as the
    forward does."""
    for klass in cls.__mro__[: cls.__mro__.index(base)]:
        for name, value in vars(klass).items():
            if name in _INERT or name in parametrized or not hasattr(base, name):
                continue
            if callable(value) or isinstance(value, (property, classmethod, staticmethod)):
                return False
    return True


def _parametrized(module: Module) -> frozenset[str]:
    """The names of a module's tensors computed by torch.nn.utils.parametrize."""
    parametrizations = module._modules.get("parametrizations")  # a ModuleDict, name to parametrization
    return frozenset(parametrizations._modules) if parametrizations is not None else frozenset()
