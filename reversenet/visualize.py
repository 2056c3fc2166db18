"""One photo's pictures in memory: the eight variants' grid of `reversenet compare`, and the
bottleneck report of `reversenet inspect`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, fx

from .engine import Recording, VariantSpec
from .errors import ReversenetError
from .graph import Graph, Step
from .images import load_image, sample_image, save_png, writable_folder
from .models import Network, weights_identity
from .outputs import Manifest, Output, photo_ids, sha256_file, slug, versions
from .render import SUFFIXES, grid, render
from .rules import call
from .selectors import Selector, parse_selector
from .variants import ANY, VARIANTS


def prepare(network: Network, path: Path) -> tuple[Tensor, np.ndarray]:
    """The network input (1, C, H, W) for a photo, and the photo as the network sees it."""
    device = next(network.module.parameters(), torch.empty(0)).device
    x = network.transform(load_image(path))[None].to(device)
    return x, network.picture(x[0])


def compare(
    network: Network,
    image: Path,
    *,
    layer: str,
    select: str | Selector = "max",
    how: str = "paper",
    seed: int = 0,
    fallback: bool = False,
) -> list[np.ndarray]:
    """The eight variants of one photo in a labelled 2×4 grid (the paper's Fig. 3),
    from one forward pass: a grid per signal the selector gives (one for ``max``); with
    `fallback`, their ``NAME+bp`` forms, for networks with layers without a rule."""
    selector = parse_selector(select)
    x, photo = prepare(network, image)
    variants = eight(fallback)
    try:
        rec = Recording(network.module, x, layer=layer, variants=variants, aliases=network.aliases)
    except ReversenetError as exc:
        if fallback or not str(exc).startswith("no reverse rule"):
            raise
        raise ReversenetError(f"{str(exc).split(';')[0]}; draw the eight with fallback: bp (reversenet compare --bp)") from exc
    pictures = rec.visualize_many(selector, variants, seed=seed)
    count = len(pictures[variants[0]])
    return [
        grid(
            [render(pictures[v][k, 0], how, photo)[0][1] for v in variants],
            columns=4,
            captions=variants,
            column_titles=[f"ReLU: {r}" for r in ("identity", "relu", "bp", "hybrid")],
            row_titles=["pool: switches", "pool: centre"],
            title=f"{image.name} · {network.name} · {layer} · {select}" + (f" · {k + 1} of {count}" if count > 1 else ""),
        )
        for k in range(count)
    ]


def eight(fallback: bool) -> list[str]:
    """The eight variants, or with `fallback` their NAME+bp forms."""
    return [f"{v}{ANY}" if fallback else v for v in VARIANTS]


def grids_per_photo(select: str) -> int:
    """How many grids `compare` draws per photo: one per signal, K for topk:K."""
    return getattr(parse_selector(select), "k", 1)


def save_compare(
    network: Network,
    image: Path,
    *,
    weights: str,
    layer: str | None = None,
    select: str = "max",
    how: str = "paper",
    seed: int = 0,
    out: Path | None = None,
    fallback: bool = False,
    force: bool = False,
) -> tuple[list[Path], bool]:
    """Write `compare`'s grids to `out`, a folder (default reversenet-out/, the grid named
    <photo>_<model>_<layer>[_<selector>]_compare[-bp][-<renderer>].png) or a .png file, recorded in
    the folder's manifest, unless the manifest shows them current. A selector of K signals
    gives K grids, numbered -1 … -K. Returns the files and whether they were written."""
    layer = layer or network.default_layer
    file = out if out is not None and out.suffix.lower() == ".png" else None
    folder = file.parent if file else out or Path("reversenet-out")
    writable_folder(folder)
    manifest = Manifest(folder)
    photo = image.resolve()
    photo_id = photo_ids([photo], manifest.photo_ids())[photo]
    tag = "" if select == "max" else "_" + slug(select)
    kind = "compare-bp" if fallback else "compare"
    name = file.name if file else f"{photo_id}_{slug(network.name)}_{slug(layer)}{tag}_{kind}{SUFFIXES[how][0]}.png"
    params = {"photo": str(photo), "photo_id": photo_id, "photo_sha256": sha256_file(photo), "model": network.name,
              **weights_identity(network.name, weights), "seed": seed, "layer": layer, "variant": eight(fallback),
              "select": select, "render": how, **versions()}  # fmt: skip
    count = grids_per_photo(select)
    stem = name.removesuffix(".png")
    names = [name] if count == 1 else [f"{stem}-{k}.png" for k in range(1, count + 1)]
    outputs = [Output(n, "montage", {**params, "signal": k}) for k, n in enumerate(names, 1)]
    if not force and all(manifest.current(o) for o in outputs):
        return [folder / n for n in names], False
    pictures = compare(network, image, layer=layer, select=select, how=how, seed=seed, fallback=fallback)
    for picture, output in zip(pictures, outputs):
        save_png(picture, folder / output.file)
        manifest.add(output)
    manifest.merge()
    return [folder / n for n in names], True


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
        BottleneckRow(rec.graph.unique_name(step.node), step.kind, rule.name, bits, nbytes, saved[step.node])
        for (step, rule, bits), nbytes in zip(rec.bottleneck_bits(variant), held)
    ]
    return BottleneckReport(layer, rows, sum(saved.values()))


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
