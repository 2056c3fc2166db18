"""The reverse pass: signals of one or several variants run back to the input through what a
recording holds, in chunks, one call per layer for the variants that share its rule."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeGuard, TypeVar, cast

import torch
from torch import Tensor, fx

from ..errors import ReversenetError, UsageError, first_line
from .forward import Forward, key
from .graph import Step, evaluation
from .receptive import Maps, Spread
from .rules import Rule
from .rules.fallback import FALLBACK
from .rules.registry import Signal, tensors_in
from .variants import VariantSpec
from .window import Window, crop_bottleneck

# The most a reverse holds in one map of its signals at a time. On the CPU, chunks that
# stay near the caches are faster than one big batch (measured: eight variants of VGG-16 at
# pool5 in 0.78 s with 16 MiB against 1.04 s with 1 GiB; a batch of 4 photos 3.1 s against
# 6.7 s); on a GPU, where a large batch pays, the bound only keeps memory in check.
CHUNK_BYTES = 16 << 20
CHUNK_BYTES_GPU = 1 << 30
# A reverse's result, shaped like the recording's x: one tensor, or a tuple of one per input.
P = TypeVar("P", bound=Tensor | tuple[Tensor, ...])
# A variant's plan: the rule at each step of the path to a layer (Recording.rules).
Plan = list[tuple[Step, Rule]]
# A rule and the rows a:b of the signals it reverses at a step.
Piece = tuple[Rule, int, int]


@dataclass(frozen=True)
class Pictures:
    """What a reverse ends in: the inputs that get pictures (placeholders), their shapes, the
    batch, and whether x was one tensor (one picture) or a tuple (a tuple of them)."""

    nodes: list[fx.Node]
    shapes: list[tuple[int, ...]]
    batch: int
    single: bool


class ReversePass(Generic[P]):
    """`Recording.reverse_many`: (variant, signal) pairs run back to the input together.

    The signals are stacked along the batch and go through in chunks of whole copies of the
    batch (the bottleneck is repeated per copy); at each step, consecutive variants that
    share a rule are reversed in one call. With `restrict`, on the receptive-field windows
    of signals confined to a box (reversenet.core.receptive).
    """

    def __init__(
        self, forward: Forward, plans: list[Plan], target: fx.Node, activation: Tensor, pictures: Pictures,
        signals: Sequence[tuple[VariantSpec, Tensor]], restrict: bool,
    ) -> None:  # fmt: skip
        act = activation.shape
        flat: list[Tensor] = []
        self.counts: list[int] = []
        for _, signal in signals:
            several = signal.dim() == len(act) + 1
            if tuple(signal.shape[several:]) != tuple(act):
                raise UsageError(f"signal shape {tuple(signal.shape)} does not match the layer's {tuple(act)}")
            flat.append(signal.reshape(-1, *act[1:]).to(activation))
            self.counts.append(len(flat[-1]))
        self.forward, self.plans, self.target, self.out = forward, plans, target, pictures
        self.signals, self.layer_shape = signals, act
        self.rows = torch.cat(flat) if len(flat) > 1 else flat[0]
        self.steps = [step for step, _ in self.plans[0]]
        self.maps = Maps(self.forward.extent, self.forward.inputs)
        footprint = lambda i: self._footprint(i, self.plans)
        self.windows = self.maps.windows(self.rows, self.target, self.steps, footprint) if restrict else {}

    def pictures(self) -> list[P]:
        """One result per (variant, signal) pair, as `Recording.reverse` returns it."""
        rows, counts, out = self.rows, self.counts, self.out
        # In chunks of whole copies of the batch (the bottleneck is repeated per copy), so
        # that the widest map (or window) of a chunk's signals stays within the bound.
        n, limit = out.batch, CHUNK_BYTES if rows.device.type == "cpu" else CHUNK_BYTES_GPU
        size = n * max(1, limit // (self._per_signal() * rows.element_size() * n))
        ends = list(itertools.accumulate(counts))
        results = []
        # the fallback runs the model's own layers again: as in the recorded, evaluation-mode forward
        fallback = any(r is FALLBACK for plan in self.plans for _, r in plan)
        with evaluation(self.forward.graph.model) if fallback else nullcontext():
            for a in range(0, len(rows), size):
                b = min(a + size, len(rows))
                share = [(plan, min(b, end) - max(a, end - count)) for plan, count, end in zip(self.plans, counts, ends)]
                share = [(plan, count) for plan, count in share if count > 0]
                chunk = {node: window.rows_of(a, b) for node, window in self.windows.items()}
                results.append(self._chunk(rows[a:b], [p for p, _ in share], [c for _, c in share], chunk))
        # per input, every signal's picture, then split per pair
        split = [(torch.cat(parts) if len(parts) > 1 else parts[0]).split(counts) for parts in zip(*results)]
        pictures = []
        for i, (_, s) in enumerate(self.signals):
            lead = s.shape[: s.dim() - len(self.layer_shape)]
            parts = tuple(per_pair[i].view(*lead, *shape) for per_pair, shape in zip(split, out.shapes))
            pictures.append(cast(P, parts[0] if out.single else parts))
        return pictures

    def _chunk(
        self, signal: Tensor, plans: list[Plan], counts: list[int], windows: dict[fx.Node, Window]
    ) -> list[Tensor]:
        """The reverse of `signal`, whose rows are `counts` signals of each plan in turn, on
        the `windows` of its nodes ({}: whole maps): one picture per input."""
        grads: dict[fx.Node, Signal] = {self.target: windows[self.target].crop(signal) if windows else signal}
        with torch.no_grad():
            for i in reversed(range(len(self.steps))):
                step = self.steps[i]
                grad = grads.pop(step.node, None)
                if grad is None:
                    continue
                window, footprint = windows.get(step.node), self._footprint(i, plans)
                if window is not None and not window.is_whole and footprint is None:
                    assert isinstance(grad, Tensor)  # windows are of maps
                    grad, window = self.maps.whole(step.node, window.t).place(grad, window), None
                # consecutive variants that share a rule
                pieces: list[Piece] = []
                for (_, rule), count in zip((plan[i] for plan in plans), counts):
                    start = pieces[-1][2] if pieces else 0
                    if pieces and pieces[-1][0] is rule:
                        pieces[-1] = (rule, pieces[-1][1], start + count)
                    else:
                        pieces.append((rule, start, start + count))
                if all(rule.inplace for rule, _, _ in pieces) and _owned(grad, grads, signal):
                    for rule, a, b in pieces:  # each variant's rows overwritten: nothing to join
                        self._step(step, (rule, a, b), grad[a:b], window, inplace=True)
                    out = grad
                elif len(pieces) == 1:  # one call; signals not batch-first (a fallback inside attention) stay whole
                    out = self._step(step, pieces[0], grad, window)
                else:
                    out = _concat([self._step(step, (rule, a, b), _rows(grad, a, b), window) for rule, a, b in pieces])
                for node, g in self.forward.per_input(step, out):
                    if window is not None and footprint is not None and not window.is_whole:
                        assert isinstance(g, Tensor)  # windows are of maps
                        g = windows[node].place(g, window.through(footprint, self.maps.extent[node]))
                    grads[node] = _add(grads[node], g) if node in grads else g
        pictures = []
        for node, shape in zip(self.out.nodes, self.out.shapes):
            result, window = grads.get(node), windows.get(node)
            if result is None:  # the layer does not depend on this input
                result = signal.new_zeros(len(signal), *shape[1:])
            elif window is not None and not window.is_whole:
                assert isinstance(result, Tensor)  # the inputs are tensors
                result = self.maps.whole(node, window.t).place(result, window)
            pictures.append(cast(Tensor, result))
        return pictures

    def _step(self, step: Step, piece: Piece, grad: Signal, window: Window | None, inplace: bool = False) -> Any:
        """One rule's reverse of rows a:b of the signals at a step, `piece` = (rule, a, b), on
        the step's window (with `inplace`, written into `grad`: see Rule.reverse_)."""
        rule, a, b = piece
        bottleneck, where, n = self.forward.bottleneck, key(step, rule), self.out.batch
        if where not in bottleneck:
            raise UsageError(
                f"{rule!r} at {step.where} needs a bottleneck this recording lacks; "
                "record with this variant among `variants`"
            )
        r = bottleneck[where]
        # {element: tensor} only at a tuple-valued step, whose rule takes it (the fallback, indexing)
        grad = cast(Tensor, grad)
        try:
            if window is None or window.is_whole:
                r = _tile(r, (b - a) // n, n) if rule.tiled else r
                return rule.reverse_(step.op, grad, r) if inplace else rule.reverse(step.op, grad, r)
            window = window.rows_of(a, b)
            r = crop_bottleneck(r, window, self.maps.extent[step.node], n)
            return rule.reverse_(step.op, grad, r) if inplace else rule.reverse_window(step.op, grad, r, window)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise ReversenetError(f"reversing {step.where} failed: {first_line(exc)}") from exc

    def _footprint(self, i: int, plans: list[Plan]) -> Spread | None:
        """How far the plans' rules at step i spread a signal on its maps (`Maps.footprint`)."""
        step, bottleneck = self.steps[i], self.forward.bottleneck
        rules = (plan[i][1] for plan in plans)
        return self.maps.footprint(step, (rule.footprint(step.op, bottleneck.get(key(step, rule))) for rule in rules))

    def _per_signal(self) -> int:
        """The most elements one signal holds at a step of the reverse: a whole output, or
        the part of it in the step's window."""
        numel = self.forward.numel

        def elements(node: fx.Node) -> int:
            window = self.windows.get(node)
            if window is None or window.is_whole:
                return numel.get(node, 0)
            h, w = self.maps.extent[node]
            return -(-numel[node] * window.rows.size * window.cols.size // (h * w))

        nodes = [*self.forward.graph.input, *(step.node for step in self.steps)]
        return max(1, *(elements(node) for node in nodes))


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


def _owned(grad: Signal, grads: dict[fx.Node, Signal], signal: Tensor) -> TypeGuard[Tensor]:
    """Whether a reverse may overwrite `grad`: a dense tensor the reverse made (not the
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
