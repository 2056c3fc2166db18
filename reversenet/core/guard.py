"""The guard: a recording must compute what the model computes (docs/design.md §9).

A reverse rule is chosen by the type of a layer; a layer that is not what its type says
(a subclass with its own ``forward`` that slipped through, a module changed by hooks or
state the trace cannot see) would give a picture that is silently wrong. So the first
recording of a model's trace checks itself against the model:

- each step's recorded output against the model's own operation on the same inputs,
  and, for a rule that claims to be the layer's gradient (``Rule.gradient``), its
  reverse of a random signal against autograd's vector-Jacobian product of that
  operation (`step`);
- each recorded layer against the model's own forward: the module's output caught by a
  hook, or the model's output (`layers`).

A step that fails is reversed as a layer without a rule (exactly, by the fallback, or
refused); a layer that fails stops the recording, naming the first module where the
trace and the model part ways. Later recordings of that trace skip the checks: a trace made
for a shape-specialised forward is another trace (its operations differ), a symbolic one
serves every input geometry and is checked once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from weakref import WeakKeyDictionary

import torch
from torch import Tensor, fx, nn
from torch.utils._pytree import tree_flatten

from ..errors import ReversenetError
from .graph import Graph, evaluation
from .rules.fallback import copies

# Relative L2 difference above which two computations of one value are different
# values: float32 summed in another order differs by about 1e-6, a left-out activation
# or a wrong weight by about 1.
TOLERANCE = 1e-3


@dataclass
class Checks:
    """What the guard found for one traced model: the (node name, rule) and layer names it
    passed, and the nodes whose rule it refused."""

    passed: set[str | tuple[str, type]] = field(default_factory=set)
    unfaithful: dict[str, str] = field(default_factory=dict)


# Per model (weakly: a model is not kept alive), per trace: graphs traced again from the
# same modules into the same operations share what was checked (reversenet.reverse traces
# each call); weights may change in between, what is checked does not depend on them.
_CHECKS: WeakKeyDictionary[nn.Module, dict[str, Checks]] = WeakKeyDictionary()


def checks(graph: Graph) -> Checks:
    """What the guard has found for `graph`'s model and trace."""
    return _CHECKS.setdefault(graph.model, {}).setdefault(graph.fingerprint, Checks())


def difference(ours: Any, theirs: Any) -> float:
    """The relative L2 difference of two values (tensors, or tuples of them); inf where
    their structure, shapes or finiteness differ, 0 for equal non-tensor values."""
    a, spec_a = tree_flatten(ours)
    b, spec_b = tree_flatten(theirs)
    if spec_a != spec_b:
        return float("inf")
    worst = 0.0
    for u, v in zip(a, b):
        if not isinstance(u, Tensor) or not isinstance(v, Tensor):
            worst = max(worst, 0.0 if _equal(u, v) else float("inf"))
        elif u.shape != v.shape:
            return float("inf")
        elif u.is_floating_point() and v.is_floating_point():
            gap, scale = torch.linalg.vector_norm(u - v).item(), torch.linalg.vector_norm(v).item()
            if math.isfinite(gap) and math.isfinite(scale):
                worst = max(worst, gap / (scale or 1.0))
            elif not torch.equal(u.nan_to_num(), v.nan_to_num()):  # NaN where the model has NaN is no difference
                return float("inf")
        elif not torch.equal(u, v):
            return float("inf")
    return worst


def _equal(u: Any, v: Any) -> bool:
    try:
        return bool(u == v)
    except (RuntimeError, TypeError, ValueError):
        return False


Leaf = tuple[fx.Node, int | None]  # an input tensor: a node's value, or element i of its tuple


def step_differs(
    graph: Graph, node: fx.Node, y: Any, values: dict[fx.Node, Any], inputs: Sequence[fx.Node] = (),
    reverse: Callable[[Tensor], dict[Leaf, Tensor]] | None = None,
) -> str | None:
    """Why a rule at `node` is not the model's operation there, or None: its output `y`
    against the operation's on the same input `values`, and, given the rule's `reverse`
    (of a signal, to each float tensor of the `inputs`), that against autograd's
    vector-Jacobian product."""
    # an in-place operation runs on copies: the engine still holds its input, autograd refuses
    fresh: Callable[[Tensor], Tensor] = (lambda t: t.clone()) if node in graph.in_place else (lambda t: t)
    if reverse is None or not isinstance(y, Tensor):
        given = {n: values[n] for n in node.all_input_nodes}
        if node in graph.in_place:
            given = dict(zip(given, copies(tuple(given.values()), {})[0]))
        theirs = graph.run(node, given)
    else:
        leaves = [(n, i) for n in dict.fromkeys(inputs) for i, v in _tensors(values[n]) if v.is_floating_point()]

        def operation(*xs: Tensor) -> Any:
            given = dict(values)
            for (n, i), x in zip(leaves, xs):
                if i is None:
                    given[n] = fresh(x)
                else:  # element i of a tuple
                    parts = list(given[n])
                    parts[i] = fresh(x)
                    given[n] = tuple(parts) if isinstance(values[n], tuple) else parts
            return graph.run(node, given)

        cotangent = torch.randn(y.shape, generator=torch.Generator(y.device).manual_seed(0), dtype=y.dtype, device=y.device)
        ours = reverse(cotangent.clone())
        with torch.enable_grad():
            primals = (values[n].detach() if i is None else values[n][i].detach() for n, i in leaves)
            theirs, pull = cast(tuple[Any, Callable[..., Any]], torch.func.vjp(operation, *primals))
            transposed = dict(zip(leaves, pull(cotangent)))
        d = max((difference(ours[leaf] if leaf in ours else torch.zeros_like(t), t) for leaf, t in transposed.items()),
                default=0.0)
        if d > TOLERANCE:
            return f"its rule's reverse is not the layer's transpose (relative difference {d:.2g})"
    d = difference(y, theirs)
    return None if d <= TOLERANCE else f"its rule computes another output than the model (relative difference {d:.2g})"


def _tensors(value: Any) -> list[tuple[int | None, Tensor]]:
    """A node's tensors: itself, or the tensor elements of its tuple."""
    if isinstance(value, Tensor):
        return [(None, value)]
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        return [(i, v) for i, v in enumerate(value) if isinstance(v, Tensor)]
    return []


def layers(graph: Graph, call: Sequence[Any], recorded: dict[fx.Node, Tensor]) -> None:
    """Check each recorded layer against the model's own forward on the arguments `call`.

    Raises
    ------
    reversenet.ReversenetError
        A layer differs; the message names the first module where they part ways.
    """
    output = graph.nodes[-1].args[0]
    hooked = {node: _module_call(graph, node) for node in recorded if node.op == "call_module"}
    with _evaluation(graph.model):
        with _caught(graph.model, list(hooked.values())) as caught:
            model_output = graph.model(*call)
        pairs = [(node, ours, caught.get(hooked[node]) if node in hooked else model_output)
                 for node, ours in recorded.items() if node in hooked or node is output]  # fmt: skip
        if len(pairs) < len(recorded):  # a function's output: the trace as a whole must be the model
            pairs.append((output, fx.GraphModule(graph.model, graph.fx)(*call), model_output))
    for node, ours, theirs in pairs:
        d = difference(ours, theirs)
        if d > TOLERANCE:
            at = "the output" if node is output else graph.name_of(node)
            raise ReversenetError(
                f"the traced {type(graph.model).__name__} does not compute what its forward does "
                f"(relative difference {d:.2g} at {at}; {_first_parting(graph, call)}): state, randomness "
                "or Python that torch.fx cannot record; reverse a layer before it, or make the forward a "
                "pure function of its input"
            )


def _module_call(graph: Graph, node: fx.Node) -> tuple[nn.Module, int]:
    """The module a call_module node calls and which of its calls it is (from 0)."""
    calls = [n for n in graph.nodes if n.op == "call_module" and n.target == node.target]
    return graph.model.get_submodule(str(node.target)), calls.index(node)


@contextmanager
def _evaluation(model: nn.Module) -> Iterator[None]:
    """The model in evaluation mode, without gradients."""
    with evaluation(model), torch.no_grad():
        yield


@contextmanager
def _caught(model: nn.Module, calls: Sequence[tuple[nn.Module, int]]) -> Iterator[dict[tuple[nn.Module, int], Any]]:
    """The outputs of the given calls of modules, filled in while the block runs."""
    caught: dict[tuple[nn.Module, int], Any] = {}
    counts: dict[nn.Module, int] = {}
    wanted = set(calls)

    def hook(module: nn.Module, args: Any, out: Any) -> None:
        k = counts[module] = counts.get(module, -1) + 1
        if (module, k) in wanted:  # a copy: a later in-place layer (ReLU(inplace=True)) writes into out
            caught[(module, k)] = copies((out,), {})[0][0]

    handles = [m.register_forward_hook(hook) for m in {m for m, _ in calls}]
    try:
        yield caught
    finally:
        for h in handles:
            h.remove()


def _first_parting(graph: Graph, call: Sequence[Any]) -> str:
    """The first module call whose output differs between the model's forward and the
    trace's, both run on the arguments `call`: where the trace stops reproducing the model."""
    nodes = [n for n in graph.nodes if n.op == "call_module"]
    calls = [_module_call(graph, n) for n in nodes]
    with _evaluation(graph.model):
        with _caught(graph.model, calls) as theirs:
            graph.model(*call)
        with _caught(graph.model, calls) as ours:
            fx.GraphModule(graph.model, graph.fx)(*call)
    for node, module_call in zip(nodes, calls):
        if module_call not in theirs or difference(ours.get(module_call), theirs[module_call]) > TOLERANCE:
            return f"first at {graph.name_of(node)} ({type(module_call[0]).__name__})"
    return "every module agrees: a function between them differs"
