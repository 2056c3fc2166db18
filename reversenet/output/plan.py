"""A batch run planned in full before any work: every photo, model, layer, variant, selector
and renderer checked, every output named (reversenet.output.files). A plan is fixed once made."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..core.graph import Graph
from ..core.selectors import Mixture, Noise, Random, Selector, TopK, parse_selector
from ..core.variants import Variant, expand, load_variant
from ..errors import UsageError
from ..inputs import images
from ..inputs.models import Network
from ..inputs.spec import NetworkSpec
from . import files, montage
from .config import RunConfig
from .files import Manifest, Output, Photo, unique
from .render import SUFFIXES


@dataclass(frozen=True)
class Model:
    """A network loaded and traced once for the whole run, with the layers asked of it."""

    network: Network
    graph: Graph
    layers: tuple[str, ...]
    identity: dict[str, Any]  # model, weights (and weights_sha256 for a file), seed


@dataclass(frozen=True)
class Plan:
    """Everything a run will make, named and checked before any work; fixed once made."""

    config: RunConfig
    out: Path
    photos: dict[Path, Photo]  # resolved -> id and sha256, in the order found
    found: dict[Path, Path]  # each photo as found (relative, as given), for messages
    models: tuple[Model, ...]
    variants: tuple[Variant, ...]
    selectors: dict[str, Selector]
    stray: tuple[str, ...]  # files among the photos that are not photos, and why
    rank: int = 0
    world: int = 1
    lead: tuple[str, ...] = ()  # photo-level pictures: asked for, or by a montage

    def batches(self) -> list[list[Path]]:
        """This rank's batches: fixed chunks of the photo list, dealt round-robin."""
        size, photos = self.config.batch_size, list(self.photos)
        chunks = [photos[i : i + size] for i in range(0, len(photos), size)]
        return chunks[self.rank :: self.world]

    def outputs(self, path: Path, model: Model) -> list[Output]:
        """The files one photo makes with one model, in a fixed order."""
        photo = self.photos[path]
        made = [Output("photo", photo, model.identity, picture=what) for what in self.lead]
        for layer, variant in itertools.product(model.layers, self.variants):
            rules = {"variant_rules": variant.recorded}
            for select, selector in self.selectors.items():
                for k in range(1, selector.k + 1) if isinstance(selector, TopK) else [None]:
                    made += [Output("picture", photo, model.identity, layer, variant.name, select, k, how,
                                    suffix.lstrip("-") or how, rules)
                             for how in self.config.render for suffix in SUFFIXES[how]]  # fmt: skip
                    if self.config.raw:
                        made.append(Output("raw", photo, model.identity, layer, variant.name, select, k, extra=rules))
            if "selectivity" in self.config.tables:
                made.append(Output("metric", photo, model.identity, layer, variant.name, ",".join(self.selectors),
                                   extra=rules))  # fmt: skip
        return made


def plan(config: RunConfig, *, shard: tuple[int, int] | None = None, create: bool = True) -> Plan:
    """Check `config` in full and name every output; no work yet (with `create` False,
    nothing written: not even the output folder)."""
    with config.blame("images"):
        stray: list[str] = []
        specs = config.images or [str(images.sample_image())]
        found: dict[Path, Path] = {}  # resolved -> as found, for messages
        for path in images.find_images(specs, skipped=stray):
            found.setdefault(path.resolve(), path)
    with config.blame("variants"):
        variants = [load_variant(v) for v in expand(config.variants)]
    variants = list({(v.name, repr(v.rules), v.fallback): v for v in variants}.values())  # `all` and a name: once
    selectors = {}
    with config.blame("select"):
        for select in config.select:
            selectors[select] = parse_selector(select)
    with config.blame("tables"):
        _check_tables(config.tables, selectors)
    models = []
    for name in config.model:
        spec = NetworkSpec(name, config.weights, config.seed, config.device)
        with config.blame("model"):
            network = spec.load()
        with config.blame("layers"):
            graph = network.graph()
            layers = tuple(dict.fromkeys(config.layers or [graph.default_layer()]))
            shapes = graph.shapes(torch.zeros(1, 3, *network.input_size, device=network.device))
            nodes = {layer: graph.resolve(layer) for layer in layers}
        with config.blame("select"):
            for layer, (select, selector) in itertools.product(layers, selectors.items()):
                _check(selector, select, layer, shapes.get(nodes[layer].name))
        with config.blame("weights"):
            identity = spec.identity()
        models.append(Model(network, graph, layers, identity))
    with config.blame("montages"):
        montage.check_axes(config.montages)
    out = Path(config.out or f"reversenet-out/{Path(config.source).stem}")
    with config.blame("out"):
        files.writable_folder(out, create=create)
    rank, world = shard or _ranks()
    photos = files.known_photos(found, Manifest(out))
    lead = tuple(dict.fromkeys([*config.lead, *(what for m in config.montages for what in m["lead"])]))
    p = Plan(config, out, photos, found, tuple(models), tuple(variants), selectors, tuple(stray), rank, world, lead)
    unique(o for photo in photos for m in models for o in p.outputs(photo, m))
    return p


def _check(selector: Selector, select: str, layer: str, shape: tuple[int, ...] | None) -> None:
    """Fail now on a selector that does not fit the layer (an index out of range, ...)."""
    if shape is None:
        raise UsageError(f"layer {layer!r} does not output a tensor")
    if not isinstance(selector, (Random, Mixture, Noise)):
        try:
            selector.signals(torch.zeros(1, *shape), reverse=lambda e: e, seed=0)
        except UsageError as exc:
            raise UsageError(f"{select} at {layer}: {exc}") from None


def _check_tables(tables: list[str], selectors: dict[str, Selector]) -> None:
    """Selectivity compares the pictures of several selectors: fail on fewer than two per photo."""
    pictures = sum(getattr(s, "k", 1) for s in selectors.values())
    if "selectivity" in tables and pictures < 2:
        raise UsageError(
            f"selectivity compares the pictures of different neurons, and select ({', '.join(selectors)}) gives one "
            "per photo: name several selectors (max, random, ...) or topk:K"
        )


def _ranks() -> tuple[int, int]:
    """This process's rank and the world size of a torchrun launch; (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
