"""One photo's pictures in memory: the eight variants' grid of `reversenet compare`, and the
bottleneck report of `reversenet inspect`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .engine import Recording, VariantSpec
from .images import load_image, sample_image, save_png, writable_folder
from .models import Network, weights_identity
from .outputs import Manifest, Output, photo_ids, sha256_file, slug, versions
from .render import SUFFIXES, grid, render
from .selectors import Selector, parse_selector
from .variants import BUILTIN


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
) -> np.ndarray:
    """The eight variants of one photo in a labelled 2×4 grid (the paper's Fig. 3),
    from one forward pass."""
    selector = parse_selector(select)
    x, photo = prepare(network, image)
    rec = Recording(network.module, x, layer=layer, variants=BUILTIN, aliases=network.aliases)
    pictures = rec.visualize_many(selector, BUILTIN, seed=seed)
    tiles = [render(pictures[v][0, 0], how, photo)[0][1] for v in BUILTIN]
    return grid(
        tiles,
        columns=4,
        captions=list(BUILTIN),
        column_titles=[f"ReLU: {r}" for r in ("identity", "relu", "bp", "hybrid")],
        row_titles=["pool: switches", "pool: centre"],
        title=f"{image.name} · {network.name} · {layer} · {select}",
    )


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
    force: bool = False,
) -> tuple[Path, bool]:
    """Write `compare`'s grid to `out` (default:
    reversenet-out/<photo>_<model>_<layer>[_<selector>]_compare[-<renderer>].png),
    recorded in that folder's manifest, unless the manifest shows it current.
    Returns the file and whether it was written."""
    layer = layer or network.default_layer
    folder = out.parent if out else Path("reversenet-out")
    writable_folder(folder)
    manifest = Manifest(folder)
    photo = image.resolve()
    photo_id = photo_ids([photo], manifest.photo_ids())[photo]
    tag = "" if select == "max" else "_" + slug(select)
    name = out.name if out else f"{photo_id}_{slug(network.name)}_{slug(layer)}{tag}_compare{SUFFIXES[how][0]}.png"
    params = {"photo": str(photo), "photo_id": photo_id, "photo_sha256": sha256_file(photo), "model": network.name,
              **weights_identity(network.name, weights), "seed": seed, "layer": layer, "variant": list(BUILTIN),
              "select": select, "render": how, **versions()}  # fmt: skip
    output = Output(name, "montage", params)
    if not force and manifest.current(output):
        return folder / name, False
    save_png(compare(network, image, layer=layer, select=select, how=how, seed=seed), folder / name)
    manifest.add(output)
    manifest.merge()
    return folder / name, True


@dataclass
class BottleneckRow:
    layer: str
    kind: str
    rule: str
    bits: float
    activation_bits: float  # the layer's tensor inputs, as float32


@dataclass
class BottleneckReport:
    layer: str
    rows: list[BottleneckRow]

    @property
    def bits(self) -> float:
        return sum(r.bits for r in self.rows)

    @property
    def activation_bits(self) -> float:
        return sum(r.activation_bits for r in self.rows if r.bits)


def bottleneck_report(network: Network, *, layer: str, variant: VariantSpec, image: Path | None = None) -> BottleneckReport:
    """The paper's information bottleneck, measured: per layer on the way to `layer`,
    the rule `variant` applies and its bottleneck in bits, for one image."""
    x, _ = prepare(network, image or sample_image())
    rec = Recording(network.module, x, layer=layer, variants=[variant], aliases=network.aliases)
    shapes = rec.graph.shapes(x)
    rows = [
        BottleneckRow(rec.graph.unique_name(step.node), step.kind, rule.name, bits,
                      32.0 * sum(math.prod(shapes[n.name]) for n in step.inputs if n.name in shapes))
        for step, rule, bits in rec.bottleneck_bits(variant)
    ]  # fmt: skip
    return BottleneckReport(layer, rows)
