"""The eight variants of one photo in a labelled grid: `reversenet compare` (the paper's Fig. 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.recording import Recording
from ..core.selectors import Selector, parse_selector
from ..core.variants import ANY, VARIANTS
from ..errors import ReversenetError
from ..inputs.images import load_image, sha256_file
from ..inputs.models import Network, weights_identity
from ..output.files import Manifest, Output, photo_ids, save_png, slug, versions, writable_folder
from ..output.render import SUFFIXES, grid, render


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


