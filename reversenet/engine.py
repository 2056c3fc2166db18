"""The reversed network: one forward pass records the bottleneck, reverses reuse it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, fx, nn

from .errors import ReversenetError, UsageError
from .graph import Graph, Step
from .rules import FAMILIES, Rule
from .selectors import Selector, parse_selector
from .variants import BUILTIN, Variant, load_variant

VariantSpec = str | Path | Variant


def _key(step: Step, rule: Rule) -> tuple[fx.Node, Any]:
    """Rules that share a forward share its bottleneck (ReLU bp and hybrid: the mask)."""
    return step.node, type(rule).forward


def _tile(r: Any, k: int) -> Any:
    """Repeat the per-sample tensors of a bottleneck for k signals per sample."""
    if k == 1 or r is None:
        return r
    if isinstance(r, Tensor):
        return r.repeat(k, *[1] * (r.dim() - 1))
    if isinstance(r, tuple) and not isinstance(r, torch.Size):
        return tuple(_tile(v, k) for v in r)
    return r


class Recording:
    """The forward pass of `model` on `x` up to `layer`, and its bottleneck.

    ``activation`` is the layer's output. ``reverse`` runs any signal of that
    shape back to the input through the reversed network of a variant, reusing the
    recorded bottleneck (ReLU masks, pooling switches, ...).
    """

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        *,
        layer: str,
        variants: Iterable[VariantSpec] = BUILTIN,
        aliases: dict[str, str] | None = None,
    ):
        if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise UsageError(f"x must be a float tensor (N, C, H, W), got {got}")
        self.layer = layer
        self.graph = Graph(model, aliases)
        self.target = self.graph.resolve(layer)
        self.steps = self.graph.path(self.target)
        for step in self.steps:
            if step.family is None:
                raise ReversenetError(
                    f"no reverse rule for {step.where}; layer families with rules: "
                    f"{', '.join(FAMILIES)}"
                )
        variants = [load_variant(v) for v in variants]
        if not variants:
            raise UsageError("record at least one variant")
        self._bottleneck: dict[tuple[fx.Node, Any], Any] = {}
        self.activation = self._forward(x, variants)
        self.input_shape = tuple(x.shape)

    def _forward(self, x: Tensor, variants: list[Variant]) -> Tensor:
        last_use = {n: i for i, step in enumerate(self.steps) for n in step.inputs}
        values: dict[fx.Node, Any] = {self.graph.input: x}
        with torch.no_grad():
            for i, step in enumerate(self.steps):
                args, kwargs = fx.node.map_arg((step.node.args, step.node.kwargs), values.get)
                rules = {_key(step, r): r for r in (v.rule(step.family, step.where) for v in variants)}
                for key, rule in rules.items():
                    try:
                        y, self._bottleneck[key] = rule.forward(step.op, *args, **kwargs)
                    except RuntimeError as exc:
                        raise ReversenetError(f"{step.where} failed: {_first_line(exc)}") from exc
                values[step.node] = y
                for node in step.inputs:
                    if last_use[node] == i:
                        del values[node]
        out = values[self.target]
        if not isinstance(out, Tensor):
            raise UsageError(f"layer {self.layer!r} outputs {type(out).__name__}, not a tensor")
        return out

    def rules(self, variant: VariantSpec) -> list[tuple[Step, Rule]]:
        """The rule that `variant` applies at each step of the path, input first."""
        variant = load_variant(variant)
        return [(step, variant.rule(step.family, step.where)) for step in self.steps]

    def reverse(self, signal: Tensor, variant: VariantSpec = "desalinet") -> Tensor:
        """Run `signal` back to the input through the reversed network of `variant`.

        `signal` has the activation's shape (N, ...) or carries K signals per image,
        (K, N, ...); the result is (N, C, H, W) or (K, N, C, H, W) accordingly.
        """
        act = self.activation.shape
        several = signal.dim() == len(act) + 1
        if tuple(signal.shape[several:]) != tuple(act):
            raise UsageError(f"signal shape {tuple(signal.shape)} does not match the layer's {tuple(act)}")
        k = signal.shape[0] if several else 1
        grads = {self.target: signal.reshape(-1, *act[1:]).to(self.activation)}
        plan = self.rules(variant)
        with torch.no_grad():
            for step, rule in reversed(plan):
                grad = grads.pop(step.node, None)
                if grad is None:
                    continue
                key = _key(step, rule)
                if key not in self._bottleneck:
                    raise UsageError(
                        f"{rule!r} at {step.where} needs a bottleneck this recording lacks; "
                        "record with this variant among `variants`"
                    )
                out = rule.reverse(step.op, grad, _tile(self._bottleneck[key], k))
                for node, g in zip(step.inputs, out if isinstance(out, tuple) else (out,)):
                    grads[node] = grads[node] + g if node in grads else g
        result = grads.get(self.graph.input)
        if result is None:  # the layer does not depend on the input
            result = signal.new_zeros(k * act[0], *self.input_shape[1:])
        return result.view(k, *self.input_shape) if several else result

    def select(self, select: str | Selector = "max", *, variant: VariantSpec = "desalinet", seed: int = 0) -> Tensor:
        """The signals `select` makes from the activation, shape (K, N, ...)."""
        selector = parse_selector(select)
        return selector.signals(self.activation, reverse=lambda e: self.reverse(e, variant), seed=seed)

    def visualize(self, select: str | Selector = "max", variant: VariantSpec = "desalinet", *, seed: int = 0) -> Tensor:
        """Select, then reverse: (K, N, C, H, W)."""
        return self.reverse(self.select(select, variant=variant, seed=seed), variant)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def record(
    model: nn.Module,
    x: Tensor,
    *,
    layer: str,
    variants: Iterable[VariantSpec] = BUILTIN,
    aliases: dict[str, str] | None = None,
) -> Recording:
    """Run `model` on `x` once, up to `layer`, recording what `variants` need."""
    return Recording(model, x, layer=layer, variants=variants, aliases=aliases)


def reverse(
    model: nn.Module,
    x: Tensor,
    *,
    layer: str,
    variant: VariantSpec = "desalinet",
    select: str | Selector = "max",
    seed: int = 0,
) -> Tensor:
    """Reverse the `select`ed part of `layer`'s output back to an image.

    `x` is a normalised float tensor (N, C, H, W); `layer` a module name as in
    ``model.named_modules()`` (or a graph node name). The result has x's shape; a
    selector with several signals per image (``topk:K``) gives (N, K, C, H, W).
    """
    selector = parse_selector(select)
    out = Recording(model, x, layer=layer, variants=[variant]).visualize(selector, variant, seed=seed)
    return out.transpose(0, 1) if selector.multiple else out[0]
