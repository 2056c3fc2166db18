"""The information bottleneck measured along a path: `reversenet inspect`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, fx

from ..core.graph import Graph, Step
from ..core.recording import Recording
from ..core.rules import call
from ..core.variants import VariantSpec, load_variant
from ..inputs.images import sample_image
from ..inputs.models import Network
from ..tables import Table
from .compare import prepare


@dataclass
class BottleneckRow:
    layer: str
    kind: str
    rule: str
    bits: float  # information content of the bottleneck
    bytes: float  # memory the bottleneck takes as held (Rule.nbytes)
    autograd_bytes: float  # what autograd saves for backward at this layer, measured


@dataclass
class BottleneckReport:
    """Per image, along the path to `layer`."""

    layer: str
    rows: list[BottleneckRow]
    autograd_bytes: float  # all that autograd saves for backward, each storage once
    network: str = ""
    variant: str = ""

    def table(self) -> Table:
        """The rule in force at every layer and its bottleneck, with the total."""
        numbers = lambda r: [f"{v:,.0f}" for v in (r.bits, r.bytes, r.autograd_bytes)]  # a row, or the total
        return Table(f"{self.network}, {self.layer}, {self.variant}: the information bottleneck per image",
                     ["layer", "type", "rule", "bottleneck bits", "bytes held", "autograd bytes"],
                     [[row.layer, row.kind, row.rule, *numbers(row)] for row in self.rows],
                     right=("bottleneck bits", "bytes held", "autograd bytes"), total=["total", "", "", *numbers(self)])  # fmt: skip

    def summary(self) -> str:
        """One line: the bottleneck held against what autograd saves."""
        share = self.bytes / self.autograd_bytes if self.autograd_bytes else 0.0
        return (f"{self.variant}: bottleneck held in {self.bytes / 1024:,.1f} KiB = {share:.2%} of the "
                f"{self.autograd_bytes / 1024**2:,.1f} MiB autograd saves for backward "
                f"(information: {self.bits / 8 / 1024:,.1f} KiB)")  # fmt: skip

    @property
    def bits(self) -> float:
        return sum(r.bits for r in self.rows)

    @property
    def bytes(self) -> float:
        return sum(r.bytes for r in self.rows)


def bottleneck_report(network: Network, *, layer: str, variant: VariantSpec, image: Path | None = None) -> BottleneckReport:
    """The paper's information bottleneck, measured: per layer on the way to `layer`,
    the rule `variant` applies, its bottleneck in bits and the bytes it takes as held,
    beside the activation bytes autograd saves there for backward, for one image."""
    x, _ = prepare(network, image or sample_image())
    rec = Recording(network.module, x, layer=layer, variants=[variant], aliases=network.aliases)
    saved = autograd_saved_bytes(rec.graph, x, rec.steps)
    held = [size for _, _, size in rec.bottleneck_bytes(variant)]
    rows = [
        BottleneckRow(rec.graph.name_of(step.node), step.kind, rule.name, bits, nbytes, saved[step.node])
        for (step, rule, bits), nbytes in zip(rec.bottleneck_bits(variant), held)
    ]
    name = rec.graph.name_of(rec.targets[layer])  # as the rows name it
    return BottleneckReport(name, rows, sum(saved.values()), network.name, load_variant(variant).name)


def autograd_saved_bytes(graph: Graph, x: Tensor, steps: list[Step]) -> dict[fx.Node, float]:
    """The bytes autograd saves for backward at each step of one forward pass of `x`
    along `steps`, per image, measured with ``saved_tensors_hooks``: x requires grad,
    the parameters do not. A storage counts once, whole, at the first step that saves
    it (an in-place ReLU's output, saved again as the next convolution's input, counts
    at the ReLU); the model's own parameters and buffers are not activations and
    count 0."""
    model = graph.model
    seen = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    saved = dict.fromkeys((s.node for s in steps), 0)
    at: list[fx.Node] = []  # the step running

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            saved[at[-1]] += storage.nbytes()
        return t

    requires_grad = {p: p.requires_grad for p in model.parameters()}
    # a non-leaf input, so that a first layer working in place is allowed
    values: dict[fx.Node, Any] = {graph.input[0]: x.detach().requires_grad_().clone()}
    try:
        for p in requires_grad:
            p.requires_grad_(False)
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            for step in steps:
                at.append(step.node)
                args, kwargs = fx.node.map_arg((step.args, step.kwargs), values.__getitem__)
                values[step.node] = step.op if step.node.op == "get_attr" else call(step.op, args, kwargs)
    finally:
        for p, flag in requires_grad.items():
            p.requires_grad_(flag)
    return {node: size / x.shape[0] for node, size in saved.items()}
