"""From a photo to pictures: the jobs behind `reversenet visualize` and `compare`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .engine import Recording, VariantSpec
from .errors import ReversenetError
from .images import load_image, sample_image
from .models import Network
from .render import SUFFIXES, grid, render
from .selectors import Selector, parse_selector
from .variants import BUILTIN, Variant

Output = tuple[str, np.ndarray]  # (file name, picture uint8 (H, W, 3) or raw float (C, H, W))


def prepare(network: Network, path: Path) -> tuple[Tensor, np.ndarray]:
    """The network input (1, C, H, W) for a photo, and the photo as the network sees it."""
    device = next(network.module.parameters(), torch.empty(0)).device
    x = network.transform(load_image(path))[None].to(device)
    photo = (network.denormalise(x[0]) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return x, photo


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def _stem(image: Path, network: Network, layer: str, what: str) -> str:
    return "_".join(_slug(s) for s in (image.stem, network.name, layer, what))


def compare_name(network: Network, image: Path, layer: str) -> str:
    """The file `compare` makes by default: <photo>_<model>_<layer>_compare.png"""
    return _stem(image, network, layer, "compare") + ".png"


@dataclass(frozen=True)
class Job:
    """What `reversenet visualize` makes of each photo: every variant's reversed image
    at `layer`, rendered (and with `raw`, saved as floats), from one forward pass."""

    layer: str
    variants: tuple[Variant, ...]
    select: str | Selector = "max"
    how: str = "paper"
    raw: bool = False

    def names(self, network: Network, image: Path) -> list[str]:
        """The files for one photo, in `run`'s order:
        <photo>_<model>_<layer>_<variant>[_<selector>][_<k>][<renderer suffix>].png|.npy"""
        selector = parse_selector(self.select)
        tag = "" if self.select == "max" else "_" + _slug(str(self.select))
        names = []
        for variant in self.variants:
            stem = _stem(image, network, self.layer, variant.name) + tag
            for k in range(selector.k if selector.multiple else 1):
                numbered = f"{stem}_{k + 1}" if selector.multiple else stem
                names += [f"{numbered}{suffix}.png" for suffix in SUFFIXES[self.how]]
                names += [f"{numbered}.npy"] if self.raw else []
        return names

    def run(self, network: Network, image: Path, seed: int = 0) -> list[Output]:
        """The pictures (and raw results) for one photo, named by `names`."""
        selector = parse_selector(self.select)
        x, photo = prepare(network, image)
        rec = Recording(network.module, x, layer=self.layer, variants=self.variants, aliases=network.aliases)
        arrays: list[np.ndarray] = []
        for variant in self.variants:
            images = rec.visualize(selector, variant, seed=seed)[:, 0]
            if not torch.isfinite(images).all():
                raise ReversenetError(f"{variant.name} of {image.name} overflowed: its image has Inf or NaN values")
            for result in images:
                arrays += [picture for _, picture in render(result, self.how, photo)]
                arrays += [result.float().cpu().numpy()] if self.raw else []
        return list(zip(self.names(network, image), arrays, strict=True))


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
    tiles = [render(rec.visualize(selector, v, seed=seed)[0, 0], how, photo)[0][1] for v in BUILTIN]
    return grid(
        tiles,
        columns=4,
        captions=list(BUILTIN),
        column_titles=[f"ReLU: {r}" for r in ("identity", "relu", "bp", "hybrid")],
        row_titles=["pool: switches", "pool: centre"],
        title=f"{image.name} · {network.name} · {layer} · {select}",
    )


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
