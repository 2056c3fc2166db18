"""The reversed network: one forward pass records the bottleneck, reverses reuse it."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Generic, TypeGuard, TypeVar, cast

import torch
from torch import Tensor, fx, nn

from ..errors import ReversenetError, UsageError, first_line
from . import guard
from .graph import Graph, Step, evaluation, none_parameters
from .rules import Rule
from .rules.fallback import FALLBACK, Constant
from .rules.registry import Signal, tensors_in
from .selectors import Selector, parse_selector
from .variants import VARIANTS, Variant, load_variant
from .window import Axis, Footprint, Window, box, crop_bottleneck

VariantSpec = str | Path | Variant
# The most a reverse holds in one map of its signals at a time. On the CPU, chunks that
# stay near the caches are faster than one big batch (measured: eight variants of VGG-16 at
# pool5 in 0.78 s with 16 MiB against 1.04 s with 1 GiB; a batch of 4 photos 3.1 s against
# 6.7 s); on a GPU, where a large batch pays, the bound only keeps memory in check.
CHUNK_BYTES = 16 << 20
CHUNK_BYTES_GPU = 1 << 30
# A reverse's result, shaped like the recording's x: one tensor, or a tuple of one per input.
P = TypeVar("P", bound=Tensor | tuple[Tensor, ...])


def _key(step: Step, rule: Rule) -> tuple[fx.Node, Any]:
    """Rules that share a forward share its bottleneck (ReLU bp and hybrid: the mask)."""
    return step.node, type(rule).forward


def _tile(r: Any, k: int, n: int) -> Any:
    """Repeat the per-sample tensors (batch n) of a bottleneck for k signals per sample."""
    if k == 1:
        return r
    if isinstance(r, Tensor):
        return r.repeat(k, *[1] * (r.dim() - 1)) if r.dim() and r.shape[0] == n else r
    if isinstance(r, (tuple, list)) and not isinstance(r, torch.Size):
        return type(r)(_tile(v, k, n) for v in r)
    if isinstance(r, dict):
        return {key: _tile(v, k, n) for key, v in r.items()}
    return r


class Recording(Generic[P]):
    """The forward pass of `model` on `x` up to one or several layers, and its bottleneck.

    One forward pass records what the reversed networks of `variants` need (ReLU masks,
    pooling switches, ...: the bottleneck, docs/design.md §1); `reverse` then runs any
    signal of a recorded layer's shape back to the input, for any of those variants,
    without running the model again.

    Parameters
    ----------
    model : torch.nn.Module or reversenet.core.graph.Graph
        The network, traced with torch.fx; pass a ``Graph`` already traced to trace a
        model used for many batches once.
    x : torch.Tensor or tuple of torch.Tensor
        The normalised input, float, finite, of any rank with the batch first: (N, C, H, W)
        for images, (N, D) for features. A model of several inputs takes a tuple of them
        (one batch size); its reverses are then tuples too, one picture per input.
    layer : str or sequence of str
        The layer(s) to record: a module name as in ``model.named_modules()``, a paper
        name (``conv5``, ``pool5``, ``fc8``; docs/design.md §1), a graph node name, or
        ``"output"``. The forward pass stops at the deepest.
    variants : iterable of str, pathlib.Path or Variant, default VARIANTS
        The variants the recording must serve (their bottleneck is recorded): names,
        YAML files or ``Variant`` objects.
    aliases : dict of str to str, optional
        Extra layer names, alias to module name; the paper's names are always known.
    args : sequence, optional
        The forward's further positional arguments, after x (captum's
        ``additional_forward_args``): tensors or other values, which get no picture. An
        argument that is None, or left out with the default None, is traced as None.

    Attributes
    ----------
    activations : dict of str to torch.Tensor
        Each recorded layer's output, keyed by the name it was asked by.
    layers : list of str
        The recorded layers, in the order asked.
    input_shapes : list of tuple of int
        The shape of each input in x.

    Raises
    ------
    reversenet.UsageError
        `x` is not a finite float tensor (N, ...) or a tuple of them, the forward takes
        other arguments, a layer does not exist (the error suggests close names), or no
        layer or variant is given.

    Examples
    --------
    >>> import torch, torchvision, reversenet
    >>> model = torchvision.models.alexnet().eval()  # random weights
    >>> rec = reversenet.Recording(model, torch.randn(2, 3, 224, 224), layer=["conv5", "pool5"])
    >>> rec.activations["pool5"].shape
    torch.Size([2, 256, 6, 6])
    >>> rec.visualize("max", "desalinet", layer="conv5").shape  # (K, N, C, H, W)
    torch.Size([1, 2, 3, 224, 224])

    A model of two inputs, on (N, D) features:

    >>> class Pair(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = torch.nn.Linear(4, 2)
    ...     def forward(self, a, b):
    ...         return self.fc(torch.relu(a) + b)
    >>> rec = reversenet.Recording(Pair(), (torch.randn(3, 4), torch.randn(3, 4)), layer="output")
    >>> [p.shape for p in rec.reverse(torch.ones(3, 2), "salinet")]
    [torch.Size([3, 4]), torch.Size([3, 4])]
    """

    def __init__(
        self,
        model: nn.Module | Graph,
        x: P,
        *,
        layer: str | Sequence[str],
        variants: Iterable[VariantSpec] = VARIANTS,
        aliases: dict[str, str] | None = None,
        args: Sequence[Any] = (),
    ):
        self._single = isinstance(x, Tensor)
        inputs = _checked((x,) if isinstance(x, Tensor) else x)
        self.layers = [layer] if isinstance(layer, str) else list(dict.fromkeys(layer))
        if not self.layers:
            raise UsageError("record at least one layer")
        module = model.model if isinstance(model, Graph) else model
        self._call = (*inputs, *args)  # the forward's arguments, as given
        none = none_parameters(module, self._call)
        given = [v for v in self._call if v is not None]
        if isinstance(model, Graph) and model.none == none:
            graph = model
        else:  # traced for this call's None arguments
            graph = Graph(module, model.aliases if isinstance(model, Graph) else aliases, none, example=given)
        self.graph = graph.at(given)
        feed = self._feed(given)
        self._inputs = self.graph.input[: len(inputs)]  # the placeholders that get pictures
        self.targets = {name: self.graph.resolve(name) for name in self.layers}
        self.steps = self.graph.path(*self.targets.values())
        self._on_path = {t: {s.node for s in self.graph.path(t)} for t in set(self.targets.values())}
        loaded = [load_variant(v) for v in variants]
        if not loaded:
            raise UsageError("record at least one variant")
        self._bottleneck: dict[tuple[fx.Node, Any], Any] = {}
        self._tensor_inputs: dict[fx.Node, list[fx.Node]] = {}  # the inputs signals go back to
        self._checks = guard.checks(self.graph)
        # steps whose rule refused their case (or the guard the rule): why
        self._uncovered = {n: self._checks.unfaithful[n.name] for n in self.graph.nodes if n.name in self._checks.unfaithful}
        tensors = {node: v for node, v in feed.items() if isinstance(v, Tensor) and v.dim()}
        # maps' (H, W): receptive-field windows are of (N, C, H, W) maps only
        self._extent: dict[fx.Node, tuple[int, int]] = {
            node: (v.shape[-2], v.shape[-1]) for node, v in tensors.items() if v.dim() == 4
        }
        self._numel = {node: v[0].numel() for node, v in tensors.items()}  # elements per image of each step's output
        self._elements: dict[fx.Node, list[int]] = {}  # a tuple's positions of tensors, per tuple-valued step
        self._plans: dict[tuple, list[tuple[Step, Rule]]] = {}
        self.input_shapes = [tuple(v.shape) for v in inputs]
        self._n = len(inputs[0])  # the batch
        self._fallbacks: dict[tuple[str, str], dict[str, None]] = {}  # (variant, layer type): where, in order
        with evaluation(self.graph.model):
            self.activations = self._forward(feed, loaded)
        unchecked = {node: self.activations[name] for name, node in self.targets.items()
                     if node.name not in self._checks.passed}  # fmt: skip
        if unchecked:  # the guard, once per model, trace and layer (reversenet.core.guard)
            guard.layers(self.graph, self._call, unchecked)
            self._checks.passed.update(node.name for node in unchecked)
        for (variant, kind), places in self._fallbacks.items():  # one line per layer type
            where = list(places)
            more = f" and {len(where) - 1} more" if len(where) > 1 else ""
            warnings.warn(
                f"{where[0]}{more}: no reverse rule for {kind}; variant {variant!r} backpropagates through "
                f"{'them' if more else 'it'} exactly (bottleneck: the input)",
                stacklevel=3,
            )

    @property
    def layer(self) -> str:
        """The recorded layer, when there is one (a `reversenet.UsageError` otherwise)."""
        if len(self.layers) > 1:
            raise UsageError(f"this recording holds {len(self.layers)} layers; name one: {', '.join(self.layers)}")
        return self.layers[0]

    @property
    def activation(self) -> Tensor:
        """The recorded layer's output, when there is one layer."""
        return self.activations[self.layer]

    def _feed(self, given: list[Any]) -> dict[fx.Node, Any]:
        """The value of each placeholder: the arguments given, then the defaults."""
        placeholders = self.graph.input
        for node in placeholders[len(given) :]:
            if not node.args:
                raise UsageError(f"{type(self.graph.model).__name__}.forward needs argument {node.target!r}")
        return dict(zip(placeholders, [*given, *(node.args[0] for node in placeholders[len(given) :])]))

    def _forward(self, feed: dict[fx.Node, Any], variants: list[Variant]) -> dict[str, Tensor]:
        last_use = {n: i for i, step in enumerate(self.steps) for n in step.inputs}
        values = dict(feed)
        kept: dict[fx.Node, Any] = {}
        with torch.no_grad():
            for i, step in enumerate(self.steps):
                values[step.node] = self._run(step, values, variants)
                if step.node in self._on_path:
                    kept[step.node] = values[step.node]
                for node in step.inputs:
                    if last_use[node] == i:
                        values.pop(node, None)
        out = {}
        for name, node in self.targets.items():
            y = kept.get(node, feed.get(node))  # a layer may be an input
            if not isinstance(y, Tensor):
                raise UsageError(f"layer {name!r} outputs {type(y).__name__}, not a tensor")
            out[name] = y
        return out

    def _run(self, step: Step, values: dict[fx.Node, Any], variants: list[Variant]) -> Any:
        """One step forward, recording the bottleneck of each rule the variants use."""
        if step.node.op == "get_attr":
            return step.op
        args, kwargs = fx.node.map_arg((step.args, step.kwargs), values.__getitem__)
        try:
            if step.node not in self.graph.live:  # a constant (a weight computed in the forward)
                return self.graph.run(step.node, values)
            if step.family is None:
                y = FALLBACK.forward(step.op, *args, **kwargs)[0]
                if not _carries_tensors(y):
                    return y  # sizes and other plain values: nothing to reverse
            self._tensor_inputs[step.node] = [n for n in step.inputs if _carries_tensors(values[n])]
            rules = {_key(step, r): r for r in (self._rule(step, v, warn=True) for v in variants)}
            for key, rule in rules.items():
                if rule is FALLBACK:  # no signal into the model's own tensors (weights)
                    args, kwargs = fx.node.map_arg((step.args, step.kwargs), lambda n: _held(n, values[n], self.graph.live))
                try:
                    y, self._bottleneck[key] = rule.forward(step.op, *args, **kwargs)
                    unfaithful = self._check(step, rule, y, self._bottleneck[key], values)
                except NotImplementedError as exc:  # a case the rule does not cover
                    unfaithful = first_line(exc)
                if unfaithful:
                    self._uncovered[step.node] = unfaithful
                    return self._run(step, values, variants)  # again, with the fallback
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            raise ReversenetError(f"{step.where} failed: {first_line(exc)}") from exc
        if isinstance(y, (tuple, list)):
            self._elements[step.node] = [i for i, v in enumerate(y) if isinstance(v, Tensor)]
        if isinstance(y, Tensor) and y.dim() == 4:
            h, w = y.shape[-2:]
            self._extent[step.node] = (h, w)
        if isinstance(y, Tensor) and y.dim():
            self._numel[step.node] = y[0].numel()
        return y

    def _check(self, step: Step, rule: Rule, y: Any, r: Any, values: dict[fx.Node, Any]) -> str | None:
        """The guard at one step, once per model, trace and rule: why the rule does not
        compute the model's operation there (reversenet.core.guard), or None."""
        key = (step.node.name, type(rule))
        if rule is FALLBACK or key in self._checks.passed:
            return None
        live = [n for n in self._tensor_inputs[step.node] if n in self.graph.live]

        def reverse(signal: Tensor) -> dict[guard.Leaf, Tensor]:
            summed: dict[guard.Leaf, Tensor] = {}
            for node, g in self._per_input(step, rule.reverse(step.op, signal, r)):
                for leaf, part in (((node, i), p) for i, p in g.items()) if isinstance(g, dict) else [((node, None), g)]:
                    summed[leaf] = summed[leaf] + part if leaf in summed else part
            return summed

        why = guard.step_differs(self.graph, step.node, y, values, live, reverse if rule.gradient and live else None)
        if why is None:
            self._checks.passed.add(key)
            return None
        self._checks.unfaithful[step.node.name] = why = f"{why}, so it has no rule"
        return why

    def _rule(self, step: Step, variant: Variant, warn: bool = False) -> Rule:
        """The variant's rule for a step; the fallback where no rule covers it."""
        reason = self._uncovered.get(step.node)
        where = f"{step.where}, {reason}" if reason else step.where
        rule = variant.rule(None if reason or step.family is None else step.family, where)
        if warn and rule is FALLBACK:
            self._fallbacks.setdefault((variant.name, step.kind), {})[where] = None  # a step retried: once
        return rule

    def rules(self, variant: VariantSpec, layer: str | None = None) -> list[tuple[Step, Rule]]:
        """The reverse plan: the rule `variant` applies at each step of the path to `layer`.

        Parameters
        ----------
        variant : str, pathlib.Path or Variant
            One of the recorded variants.
        layer : str, optional
            A recorded layer; may be left out when one layer was recorded.

        Returns
        -------
        list of (reversenet.core.graph.Step, reversenet.core.rules.Rule)
            Input first; made once per recording, variant and layer.
        """
        variant, layer = load_variant(variant), layer or self.layer
        key = (variant.name, repr(variant.rules), variant.fallback, layer)
        if key not in self._plans:
            on_path = self._on_path[self.targets[layer]]
            self._plans[key] = [(s, self._rule(s, variant)) for s in self.steps
                                if s.node in self._tensor_inputs and s.node in on_path]  # fmt: skip
        return self._plans[key]

    def bottleneck_bits(self, variant: VariantSpec, layer: str | None = None) -> list[tuple[Step, Rule, float]]:
        """The information each step's bottleneck carries, in bits per image.

        Parameters
        ----------
        variant : str, pathlib.Path or Variant
            One of the recorded variants.
        layer : str, optional
            A recorded layer; may be left out when one layer was recorded.

        Returns
        -------
        list of (reversenet.core.graph.Step, reversenet.core.rules.Rule, float)
            Per step of the plan, its rule and bits per image (a ReLU mask: 1 bit per
            element; switches: log2(window) per output).
        """
        return self._per_image("bits", variant, layer)

    def bottleneck_bytes(
        self, variant: VariantSpec, layer: str | None = None
    ) -> list[tuple[Step, Rule, float]]:
        """The memory each step's bottleneck holds, in bytes per image.

        Parameters
        ----------
        variant : str, pathlib.Path or Variant
            One of the recorded variants.
        layer : str, optional
            A recorded layer; may be left out when one layer was recorded.

        Returns
        -------
        list of (reversenet.core.graph.Step, reversenet.core.rules.Rule, float)
            Per step of the plan, its rule and bytes per image (``Rule.nbytes``: a ReLU
            mask packed 8 bits to a byte, a switch one byte per output).
        """
        return self._per_image("nbytes", variant, layer)

    def _per_image(
        self, size: str, variant: VariantSpec, layer: str | None
    ) -> list[tuple[Step, Rule, float]]:
        """(step, rule, rule.<size>(its bottleneck) / batch) along the path to `layer`."""
        n = self._n
        measure = lambda step, rule: getattr(rule, size)(step.op, self._bottleneck[_key(step, rule)])
        return [(step, rule, measure(step, rule) / n) for step, rule in self.rules(variant, layer)]

    def reverse(
        self, signal: Tensor, variant: VariantSpec = "desalinet", *, layer: str | None = None, restrict: bool = True
    ) -> P:
        """Run `signal` back to the input through the reversed network of `variant`.

        Parameters
        ----------
        signal : torch.Tensor
            The reversed network's input e: the activation's shape (N, ...), or K signals
            per image, (K, N, ...).
        variant : str, pathlib.Path or Variant, default "desalinet"
            One of the recorded variants.
        layer : str, optional
            The recorded layer `signal` starts from; may be left out when one layer was
            recorded.
        restrict : bool, default True
            Reverse a signal confined to a small box of a feature map (a neuron) on its
            receptive field only; the result is the same (docs/design.md §7).

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            Shape (N, C, H, W) like the input, or (K, N, C, H, W) for K signals per image;
            for a tuple of inputs, a tuple of such pictures, one per input.

        Raises
        ------
        reversenet.UsageError
            `layer` was not recorded, or `signal` does not have its shape.

        Examples
        --------
        >>> import torch, torchvision, reversenet
        >>> model = torchvision.models.alexnet().eval()
        >>> rec = reversenet.Recording(model, torch.randn(1, 3, 224, 224), layer="pool5")
        >>> e = torch.zeros_like(rec.activation)
        >>> e[0, 7, 3, 3] = 1  # one neuron
        >>> rec.reverse(e, "deconvnet").shape
        torch.Size([1, 3, 224, 224])
        """
        return self.reverse_many([(variant, signal)], layer=layer, restrict=restrict)[0]

    def reverse_many(
        self, signals: Sequence[tuple[VariantSpec, Tensor]], *, layer: str | None = None, restrict: bool = True
    ) -> list[P]:
        """`reverse` of several (variant, signal) pairs in one batched pass.

        Each layer whose rule the variants share (a convolution, ...) reverses all their
        signals in one call: faster than one `reverse` per pair.

        Parameters
        ----------
        signals : sequence of (variant, torch.Tensor)
            Each signal as `reverse` takes it, with its variant.
        layer : str, optional
            The recorded layer the signals start from.
        restrict : bool, default True
            As in `reverse`.

        Returns
        -------
        list of torch.Tensor, or of tuples of torch.Tensor
            One result per pair, as `reverse` returns it.
        """
        layer = layer or self.layer
        if layer not in self.activations:
            raise UsageError(f"layer {layer!r} was not recorded; recorded: {', '.join(self.layers)}")
        act = self.activations[layer].shape
        flat, counts = [], []
        for _, signal in signals:
            several = signal.dim() == len(act) + 1
            if tuple(signal.shape[several:]) != tuple(act):
                raise UsageError(f"signal shape {tuple(signal.shape)} does not match the layer's {tuple(act)}")
            flat.append(signal.reshape(-1, *act[1:]).to(self.activations[layer]))
            counts.append(len(flat[-1]))
        plans = [self.rules(v, layer) for v, _ in signals]
        rows = torch.cat(flat) if len(flat) > 1 else flat[0]
        steps = [step for step, _ in plans[0]]
        windows = self._windows(rows, steps, plans, layer) if restrict else {}
        # In chunks of whole copies of the batch (the bottleneck is repeated per copy), so
        # that the widest map (or window) of a chunk's signals stays within the bound.
        n, limit = self._n, CHUNK_BYTES if rows.device.type == "cpu" else CHUNK_BYTES_GPU
        size = n * max(1, limit // (self._per_signal(steps, windows) * rows.element_size() * n))
        ends = list(itertools.accumulate(counts))
        results = []
        # the fallback runs the model's own layers again: as in the recorded, evaluation-mode forward
        modes = evaluation(self.graph.model) if any(r is FALLBACK for plan in plans for _, r in plan) else nullcontext()
        with modes:
            for a in range(0, len(rows), size):
                b = min(a + size, len(rows))
                share = [(plan, min(b, end) - max(a, end - count)) for plan, count, end in zip(plans, counts, ends)]
                share = [(plan, count) for plan, count in share if count > 0]
                chunk = {node: window.rows_of(a, b) for node, window in windows.items()}
                results.append(self._reverse(rows[a:b], [p for p, _ in share], [c for _, c in share], layer, chunk))
        # per input, every signal's picture, then split per pair
        split = [(torch.cat(parts) if len(parts) > 1 else parts[0]).split(counts) for parts in zip(*results)]
        pictures = []
        for i, (_, s) in enumerate(signals):
            lead = s.shape[: s.dim() - len(act)]
            parts = tuple(per_pair[i].view(*lead, *shape) for per_pair, shape in zip(split, self.input_shapes))
            pictures.append(cast(P, parts[0] if self._single else parts))
        return pictures

    def _reverse(
        self, signal: Tensor, plans: list[list[tuple[Step, Rule]]], counts: list[int], layer: str,
        windows: dict[fx.Node, Window],
    ) -> list[Tensor]:
        """The reverse of `signal`, whose rows are `counts` signals of each plan in turn, on
        the `windows` of its nodes ({}: whole maps): one picture per input."""
        n = self._n
        steps = [step for step, _ in plans[0]]
        target = self.targets[layer]
        grads: dict[fx.Node, Signal] = {target: windows[target].crop(signal) if windows else signal}
        with torch.no_grad():
            for i in reversed(range(len(steps))):
                step = steps[i]
                grad = grads.pop(step.node, None)
                if grad is None:
                    continue
                window, footprint = windows.get(step.node), self._footprint(step, [plan[i][1] for plan in plans])
                if window is not None and not window.is_whole and footprint is None:
                    assert isinstance(grad, Tensor)  # windows are of maps
                    grad, window = self._whole(step.node, window.t).place(grad, window), None
                # (rule, first row, last row): consecutive variants that share a rule
                pieces: list[tuple[Rule, int, int]] = []
                for (_, rule), count in zip((plan[i] for plan in plans), counts):
                    start = pieces[-1][2] if pieces else 0
                    if pieces and pieces[-1][0] is rule:
                        pieces[-1] = (rule, pieces[-1][1], start + count)
                    else:
                        pieces.append((rule, start, start + count))
                if all(rule.inplace for rule, _, _ in pieces) and _owned(grad, grads, signal):
                    for rule, a, b in pieces:  # each variant's rows overwritten: nothing to join
                        self._reverse_step(step, rule, grad[a:b], window, n, a, b, inplace=True)
                    out = grad
                elif len(pieces) == 1:  # one call; signals not batch-first (a fallback inside attention) stay whole
                    out = self._reverse_step(step, pieces[0][0], grad, window, n, 0, len(signal))
                else:
                    out = _concat([self._reverse_step(step, rule, _rows(grad, a, b), window, n, a, b) for rule, a, b in pieces])
                for node, g in self._per_input(step, out):
                    if window is not None and footprint is not None and not window.is_whole:
                        assert isinstance(g, Tensor)  # windows are of maps
                        g = windows[node].place(g, window.through(footprint, self._extent[node]))
                    grads[node] = _add(grads[node], g) if node in grads else g
        pictures = []
        for node, shape in zip(self._inputs, self.input_shapes):
            result, window = grads.get(node), windows.get(node)
            if result is None:  # the layer does not depend on this input
                result = signal.new_zeros(len(signal), *shape[1:])
            elif window is not None and not window.is_whole:
                assert isinstance(result, Tensor)  # the inputs are tensors
                result = self._whole(node, window.t).place(result, window)
            pictures.append(cast(Tensor, result))
        return pictures

    def _per_input(self, step: Step, out: Any) -> Iterator[tuple[fx.Node, Signal]]:
        """A reverse's signals paired with the step's inputs. A rule returns one signal per
        tensor input, in order (None: none for it); for a tuple-valued input, one dict or
        one tensor per tensor of the tuple (the fallback, concatenation), made one dict."""
        signals = iter(out if isinstance(out, tuple) else (out,))
        for node in self._tensor_inputs[step.node]:
            g = next(signals, None)
            elements = self._elements.get(node)
            if elements is not None and not isinstance(g, dict):
                parts = zip(elements, [g, *itertools.islice(signals, len(elements) - 1)])
                g = {i: part for i, part in parts if part is not None} or None
            if g is not None and node in self.graph.live:  # none to the model's own tensors
                yield node, g

    def _reverse_step(
        self, step: Step, rule: Rule, grad: Signal, window: Window | None, n: int, a: int, b: int, inplace: bool = False
    ) -> Any:
        """One rule's reverse of rows a:b of the signals at a step, on the step's window
        (with `inplace`, written into `grad`: see Rule.reverse_)."""
        key = _key(step, rule)
        if key not in self._bottleneck:
            raise UsageError(
                f"{rule!r} at {step.where} needs a bottleneck this recording lacks; "
                "record with this variant among `variants`"
            )
        r = self._bottleneck[key]
        # {element: tensor} only at a tuple-valued step, whose rule takes it (the fallback, indexing)
        grad = cast(Tensor, grad)
        try:
            if window is None or window.is_whole:
                r = _tile(r, (b - a) // n, n) if rule.tiled else r
                return rule.reverse_(step.op, grad, r) if inplace else rule.reverse(step.op, grad, r)
            window = window.rows_of(a, b)
            r = crop_bottleneck(r, window, self._extent[step.node], n)
            return rule.reverse_(step.op, grad, r) if inplace else rule.reverse_window(step.op, grad, r, window)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ReversenetError(f"reversing {step.where} failed: {first_line(exc)}") from exc

    def _footprint(self, step: Step, rules: list[Rule]) -> tuple[Footprint, Footprint] | None:
        """How far the step's rules spread a signal on its maps; None where any of them
        mixes all positions or the step is not from maps to maps."""
        if step.node not in self._extent or any(n not in self._extent for n in self._tensor_inputs[step.node]):
            return None
        footprints = {rule.footprint(step.op, self._bottleneck.get(_key(step, rule))) for rule in rules}
        return footprints.pop() if len(footprints) == 1 else None

    def _whole(self, node: fx.Node, t: Tensor) -> Window:
        return Window(Axis.whole(self._extent[node][0]), Axis.whole(self._extent[node][1]), t)

    def _per_signal(self, steps: list[Step], windows: dict[fx.Node, Window]) -> int:
        """The most elements one signal holds at a step of the reverse: a whole output, or
        the part of it in the step's window."""

        def elements(node: fx.Node) -> int:
            window = windows.get(node)
            if window is None or window.is_whole:
                return self._numel.get(node, 0)
            h, w = self._extent[node]
            return -(-self._numel[node] * window.rows.size * window.cols.size // (h * w))

        return max(1, *(elements(node) for node in [*self.graph.input, *(step.node for step in steps)]))

    def _windows(
        self, signal: Tensor, steps: list[Step], plans: list[list[tuple[Step, Rule]]], layer: str
    ) -> dict[fx.Node, Window]:
        """The window of each node that a signal confined to a small box reaches, or {}
        where the reverse is as cheap on whole maps (see reversenet.core.window)."""
        target = self.targets[layer]
        if target not in self._extent or signal.dim() != 4:
            return {}
        t, size = box(signal)
        extent = self._extent[target]
        start = Window(Axis(1, 0, size[0], extent[0]).union(None), Axis(1, 0, size[1], extent[1]).union(None), t)
        if start.is_whole:
            return {}
        windows = {target: start}
        for i in reversed(range(len(steps))):
            step, window = steps[i], windows.get(steps[i].node)
            if window is None:
                continue
            footprint = self._footprint(step, [plan[i][1] for plan in plans])
            for node in self._tensor_inputs[step.node]:
                if node not in self._extent:
                    continue
                arrival = self._whole(node, t) if footprint is None else window.through(footprint, self._extent[node])
                windows[node] = arrival.union(None) if node not in windows else windows[node].union(arrival)
        return windows

    def select(
        self, select: str | Selector = "max", *, variant: VariantSpec = "desalinet", seed: int = 0, layer: str | None = None
    ) -> Tensor:
        """The reversed network's inputs e that a selector makes from `layer`'s activation.

        Parameters
        ----------
        select : str or Selector, default "max"
            A selector (``max``, ``topk:K``, ``channel:C``, ``neuron:C,Y,X``, ...; see
            `reversenet.parse_selector`).
        variant : str, pathlib.Path or Variant, default "desalinet"
            The variant, for selectors that depend on it.
        seed : int, default 0
            For random selectors.
        layer : str, optional
            A recorded layer; may be left out when one layer was recorded.

        Returns
        -------
        torch.Tensor
            Shape (K, N, ...): K signals per image, the activation's shape each.
        """
        layer = layer or self.layer
        reverse = lambda e: _joined(self.reverse(e, variant, layer=layer))
        return parse_selector(select).signals(self.activations[layer], reverse=reverse, seed=seed)

    def visualize(
        self, select: str | Selector = "max", variant: VariantSpec = "desalinet", *, seed: int = 0, layer: str | None = None
    ) -> P:
        """Select, then reverse: the picture of a layer.

        Parameters
        ----------
        select : str or Selector, default "max"
            As in `select`.
        variant : str, pathlib.Path or Variant, default "desalinet"
            One of the recorded variants.
        seed : int, default 0
            For random selectors.
        layer : str, optional
            A recorded layer; may be left out when one layer was recorded.

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            Shape (K, N, C, H, W); for a tuple of inputs, one such tensor per input.
        """
        return self.reverse(self.select(select, variant=variant, seed=seed, layer=layer), variant, layer=layer)

    def visualize_many(
        self, select: str | Selector = "max", variants: Iterable[VariantSpec] = VARIANTS, *, seed: int = 0,
        layer: str | None = None,
    ) -> dict[str, P]:
        """`visualize` for several variants of one recording, in one batched reverse.

        Parameters
        ----------
        select : str or Selector, default "max"
            As in `select`.
        variants : iterable of str, pathlib.Path or Variant, default VARIANTS
            Recorded variants.
        seed : int, default 0
            For random selectors.
        layer : str, optional
            A recorded layer; may be left out when one layer was recorded.

        Returns
        -------
        dict of str to torch.Tensor or to tuple of torch.Tensor
            Variant name to its pictures, (K, N, C, H, W) (one per input for a tuple).
        """
        loaded = [load_variant(v) for v in variants]
        layer = layer or self.layer
        signals = [(v, self.select(select, variant=v, seed=seed, layer=layer)) for v in loaded]
        return {v.name: r for v, r in zip(loaded, self.reverse_many(signals, layer=layer))}


def _checked(inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The inputs, if each is a finite float tensor with the batch first, one batch size."""
    for x in inputs:
        if not isinstance(x, Tensor) or not x.dim() or not x.is_floating_point():
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise UsageError(f"x must be a float tensor (N, ...) or a tuple of them, got {got}")
        if not torch.isfinite(x).all():
            raise UsageError("x has NaN or Inf values")
    if not inputs or len({len(x) for x in inputs}) > 1:
        raise UsageError(f"x must hold tensors of one batch size, got shapes {[tuple(x.shape) for x in inputs]}")
    return tuple(inputs)


def _joined(picture: Tensor | tuple[Tensor, ...]) -> Tensor:
    """(K, N, ...) pictures, of one input or several, as one (K, N, M): flattened per signal
    and image, joined."""
    parts = [p.reshape(*p.shape[:2], -1) for p in ((picture,) if isinstance(picture, Tensor) else picture)]
    return torch.cat(parts, 2) if len(parts) > 1 else parts[0]


def _held(node: fx.Node, value: Any, live: set[fx.Node]) -> Any:
    """An argument for the fallback: a tensor that does not depend on the input as a `Constant`."""
    return Constant(value) if isinstance(value, Tensor) and node not in live else value


def _carries_tensors(value: Any) -> bool:
    """A tensor, or a tuple with tensors (a layer's several outputs)."""
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        return any(isinstance(v, Tensor) for v in value)
    return isinstance(value, Tensor)


def _owned(grad: Signal, grads: dict[fx.Node, Signal], signal: Tensor) -> TypeGuard[Tensor]:
    """Whether a reverse may overwrite `grad`: a dense tensor the engine made (not the
    caller's signal) that no signal still waiting in `grads` shares (an Add passes one
    tensor to both of its inputs)."""
    if not isinstance(grad, Tensor) or not grad.is_contiguous():
        return False
    storage = grad.untyped_storage().data_ptr()
    others = [signal, *tensors_in(list(grads.values()))]
    return all(t.untyped_storage().data_ptr() != storage for t in others)


def _rows(grad: Signal, a: int, b: int) -> Signal:
    """Signals a:b; those of a tuple are {element index: tensor}."""
    return {i: g[a:b] for i, g in grad.items()} if isinstance(grad, dict) else grad[a:b]


def _concat(outs: list[Any]) -> Any:
    """The reverses of consecutive rows of signals, joined: per input, along the batch."""
    if isinstance(outs[0], tuple):
        return tuple(_concat(list(parts)) for parts in zip(*outs))
    if isinstance(outs[0], dict):
        return {i: _concat([o[i] for o in outs]) for i in outs[0]}
    if any(o is None for o in outs):
        if all(o is None for o in outs):
            return None
        raise ReversenetError("variants disagree on which inputs a layer sends signals back to")
    return torch.cat(outs)


def _add(a: Signal, b: Signal) -> Signal:
    """Sum two signals for one node; those of a tuple are {element index: tensor}."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {**a, **b, **{i: a[i] + b[i] for i in a.keys() & b.keys()}}
    assert isinstance(a, Tensor) and isinstance(b, Tensor)  # a node's signals are all of one kind
    return a + b


def reverse(
    model: nn.Module,
    x: Tensor,
    *,
    layer: str,
    variant: VariantSpec = "desalinet",
    select: str | Selector = "max",
    seed: int = 0,
) -> Tensor:
    """Reverse the selected part of a layer's output back to an image.

    Parameters
    ----------
    model : torch.nn.Module
        The network (torch.fx traces it), in eval mode.
    x : torch.Tensor
        The normalised input, float, shape (N, C, H, W).
    layer : str
        A module name as in ``model.named_modules()``, a paper name (``conv5``,
        ``pool5``, ``fc8``), a graph node name or ``"output"``.
    variant : str, pathlib.Path or Variant, default "desalinet"
        One of `reversenet.VARIANTS`, ``NAME+bp``, a YAML file or a ``Variant``.
    select : str or Selector, default "max"
        Which part of the layer's output to reverse (`reversenet.parse_selector`).
    seed : int, default 0
        For random selectors.

    Returns
    -------
    torch.Tensor
        x's shape (N, C, H, W); a selector with K signals per image (``topk:K``) gives
        (K, N, C, H, W), signals first, as everywhere in reversenet.

    Raises
    ------
    reversenet.UsageError
        A bad input, layer, variant or selector (one line that says what and why).

    See Also
    --------
    Recording : one forward pass for many layers, variants and selectors.

    Examples
    --------
    >>> import torch, torchvision, reversenet
    >>> model = torchvision.models.alexnet().eval()  # random weights
    >>> x = torch.randn(2, 3, 224, 224)
    >>> reversenet.reverse(model, x, layer="conv5", variant="desalinet").shape
    torch.Size([2, 3, 224, 224])
    >>> reversenet.reverse(model, x, layer="conv5", select="topk:3").shape
    torch.Size([3, 2, 3, 224, 224])
    """
    selector = parse_selector(select)
    out = Recording(model, x, layer=layer, variants=[variant]).visualize(selector, variant, seed=seed)
    return out if selector.multiple else out[0]
