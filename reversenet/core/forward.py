"""The forward pass of a recording: each step run once, keeping the bottleneck of every
rule the variants use, each rule checked by the guard where it is new to the trace."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, fx

from ..errors import ReversenetError, first_line
from . import guard
from .graph import Graph, Step
from .rules import Rule
from .rules.fallback import FALLBACK, Constant
from .rules.registry import Signal
from .variants import Variant


def key(step: Step, rule: Rule) -> tuple[fx.Node, Any]:
    """Where a rule's bottleneck is kept: rules that share a forward share it (ReLU bp and
    hybrid: the mask)."""
    return step.node, type(rule).forward


class Forward:
    """One forward pass along the steps of a traced graph, and what its reverses need.

    Attributes
    ----------
    bottleneck : dict
        What each rule's forward kept, by `key` (step, rule).
    inputs : dict of torch.fx.Node to list of torch.fx.Node
        Per step, the nodes it takes tensors from: the ones signals go back to.
    elements : dict of torch.fx.Node to list of int
        Per tuple-valued step, the positions of its tensors.
    extent : dict of torch.fx.Node to (int, int)
        The (H, W) of each (N, C, H, W) map: receptive-field windows are of such maps only.
    numel : dict of torch.fx.Node to int
        The elements per image of each step's output.
    uncovered : dict of torch.fx.Node to str
        The steps whose rule refused their case (or the guard the rule): why.
    fallbacks : dict of (str, str) to dict of str to None
        (variant, layer type): where the fallback stands in for a rule, in order.
    """

    def __init__(self, graph: Graph, feed: dict[fx.Node, Any]) -> None:
        self.graph = graph
        self.checks = guard.checks(graph)
        self.uncovered = {n: self.checks.unfaithful[n.name] for n in graph.nodes if n.name in self.checks.unfaithful}
        tensors = {node: v for node, v in feed.items() if isinstance(v, Tensor) and v.dim()}
        self.extent = {node: (v.shape[-2], v.shape[-1]) for node, v in tensors.items() if v.dim() == 4}
        self.numel = {node: v[0].numel() for node, v in tensors.items()}
        self.bottleneck: dict[tuple[fx.Node, Any], Any] = {}
        self.inputs: dict[fx.Node, list[fx.Node]] = {}
        self.elements: dict[fx.Node, list[int]] = {}
        self.fallbacks: dict[tuple[str, str], dict[str, None]] = {}

    def run(
        self, feed: dict[fx.Node, Any], steps: list[Step], keep: set[fx.Node], variants: list[Variant]
    ) -> dict[fx.Node, Any]:
        """The outputs of the `keep` steps, running `steps` from the placeholders' values in
        `feed`; other values are dropped at their last use."""
        last_use = {n: i for i, step in enumerate(steps) for n in step.inputs}
        values = dict(feed)
        kept: dict[fx.Node, Any] = {}
        with torch.no_grad():
            for i, step in enumerate(steps):
                values[step.node] = self._step(step, values, variants)
                if step.node in keep:
                    kept[step.node] = values[step.node]
                for node in step.inputs:
                    if last_use[node] == i:
                        values.pop(node, None)
        return kept

    def rule(self, step: Step, variant: Variant, warn: bool = False) -> Rule:
        """The variant's rule for a step; the fallback where no rule covers it."""
        reason = self.uncovered.get(step.node)
        where = f"{step.where}, {reason}" if reason else step.where
        rule = variant.rule(None if reason or step.family is None else step.family, where)
        if warn and rule is FALLBACK:
            self.fallbacks.setdefault((variant.name, step.kind), {})[where] = None  # a step retried: once
        return rule

    def per_input(self, step: Step, out: Any) -> Iterator[tuple[fx.Node, Signal]]:
        """A reverse's signals paired with the step's inputs. A rule returns one signal per
        tensor input, in order (None: none for it); for a tuple-valued input, one dict or
        one tensor per tensor of the tuple (the fallback, concatenation), made one dict."""
        signals = iter(out if isinstance(out, tuple) else (out,))
        for node in self.inputs[step.node]:
            g = next(signals, None)
            elements = self.elements.get(node)
            if elements is not None and not isinstance(g, dict):
                parts = zip(elements, [g, *itertools.islice(signals, len(elements) - 1)])
                g = {i: part for i, part in parts if part is not None} or None
            if g is not None and node in self.graph.live:  # none to the model's own tensors
                yield node, g

    def _step(self, step: Step, values: dict[fx.Node, Any], variants: list[Variant]) -> Any:
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
            self.inputs[step.node] = [n for n in step.inputs if _carries_tensors(values[n])]
            rules = {key(step, r): r for r in (self.rule(step, v, warn=True) for v in variants)}
            for kept, rule in rules.items():
                if rule is FALLBACK:  # no signal into the model's own tensors (weights)
                    args, kwargs = fx.node.map_arg((step.args, step.kwargs), lambda n: _held(n, values[n], self.graph.live))
                try:
                    y, self.bottleneck[kept] = rule.forward(step.op, *args, **kwargs)
                    unfaithful = self._check(step, rule, y, self.bottleneck[kept], values)
                except NotImplementedError as exc:  # a case the rule does not cover
                    unfaithful = first_line(exc)
                if unfaithful:
                    self.uncovered[step.node] = unfaithful
                    return self._step(step, values, variants)  # again, with the fallback
        except (RuntimeError, TypeError, ValueError, IndexError) as exc:
            raise ReversenetError(f"{step.where} failed: {first_line(exc)}") from exc
        if isinstance(y, (tuple, list)):
            self.elements[step.node] = [i for i, v in enumerate(y) if isinstance(v, Tensor)]
        if isinstance(y, Tensor) and y.dim() == 4:
            h, w = y.shape[-2:]
            self.extent[step.node] = (h, w)
        if isinstance(y, Tensor) and y.dim():
            self.numel[step.node] = y[0].numel()
        return y

    def _check(self, step: Step, rule: Rule, y: Any, r: Any, values: dict[fx.Node, Any]) -> str | None:
        """The guard at one step, once per model, trace and rule: why the rule does not
        compute the model's operation there (reversenet.core.guard), or None."""
        checked = (step.node.name, type(rule))
        if rule is FALLBACK or checked in self.checks.passed:
            return None
        live = [n for n in self.inputs[step.node] if n in self.graph.live]

        def reverse(signal: Tensor) -> dict[guard.Leaf, Tensor]:
            summed: dict[guard.Leaf, Tensor] = {}
            for node, g in self.per_input(step, rule.reverse(step.op, signal, r)):
                for leaf, part in (((node, i), p) for i, p in g.items()) if isinstance(g, dict) else [((node, None), g)]:
                    summed[leaf] = summed[leaf] + part if leaf in summed else part
            return summed

        why = guard.step_differs(self.graph, step.node, y, values, live, reverse if rule.gradient and live else None)
        if why is None:
            self.checks.passed.add(checked)
            return None
        self.checks.unfaithful[step.node.name] = why = f"{why}, so it has no rule"
        return why


def _held(node: fx.Node, value: Any, live: set[fx.Node]) -> Any:
    """An argument for the fallback: a tensor that does not depend on the input as a `Constant`."""
    return Constant(value) if isinstance(value, Tensor) and node not in live else value


def _carries_tensors(value: Any) -> bool:
    """A tensor, or a tuple with tensors (a layer's several outputs)."""
    if isinstance(value, (tuple, list)) and not isinstance(value, torch.Size):
        return any(isinstance(v, Tensor) for v in value)
    return isinstance(value, Tensor)
