"""The eight variants of one photo in a labelled grid: `reversenet compare` (the paper's Fig. 3)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from ..core.recording import Recording
from ..core.selectors import Selector, parse_selector
from ..core.variants import ANY, VARIANTS, load_variant
from ..errors import ReversenetError, UsageError
from ..inputs.images import load_image
from ..inputs.models import Network
from ..inputs.spec import NetworkSpec
from ..output.files import MANIFEST, Output, OutputFolder, Result, known_photos, save_png, writable_folder
from ..output.montage import label
from ..output.render import grid, render
from ..tables import plural


def prepare(network: Network, path: Path) -> tuple[Tensor, np.ndarray]:
    """The network input (1, C, H, W) for a photo, and the photo as the network sees it."""
    x = network.transform(load_image(path))[None].to(network.device)
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
            column_titles=[label(["ReLU"], (load_variant(v).rules["ReLU"],)) for v in variants[:4]],
            row_titles=[label(["MaxPool2d"], (load_variant(v).rules["MaxPool2d"],)) for v in variants[::4]],
            title=f"{image.name} · {network.name} · {layer} · {select}" + (f" · {k + 1} of {count}" if count > 1 else ""),
        )
        for k in range(count)
    ]


def save_compare(
    network: Network,
    images: Sequence[Path],
    *,
    spec: NetworkSpec,
    layer: str | None = None,
    select: str = "max",
    how: str = "paper",
    out: Path | None = None,
    fallback: bool = False,
    force: bool = False,
) -> Result:
    """Write `compare`'s grids of `images` to `out`: a folder (default reversenet-out/), each
    grid named as reversenet.output.files states and recorded in the folder's manifest unless
    the manifest shows it current; or a .png file for one grid, recorded likewise in an output
    folder (one with a manifest), else written alone (one file was asked for). A selector of K
    signals gives K grids, numbered -1 … -K. `spec` is what made `network` (the manifest
    records it)."""
    layer = layer or network.default_layer
    count = grids_per_photo(select)
    file = out if out is not None and out.suffix.lower() == ".png" else None
    if file and len(images) * count > 1:
        raise UsageError(f"-o {out} names one grid; give a folder for {plural(len(images), 'photo')} or several signals")
    if file and not (file.parent / MANIFEST).is_file():  # one file asked for, in no output folder: alone
        writable_folder(file.parent)
        save_png(compare(network, images[0], layer=layer, select=select, how=how, seed=spec.seed, fallback=fallback)[0], file)
        return Result(written=1, out=file, named=True)
    folder = OutputFolder(file.parent if file else out or Path("reversenet-out"))
    photos = known_photos([image.resolve() for image in images], folder.manifest)
    rows, written, current = [], 0, 0
    for image, photo in zip(images, photos.values()):
        outputs = [Output("compare", photo, spec.identity(), layer, eight(fallback), select, k if count > 1 else None,
                          how, "compare-bp" if fallback else "compare", name=file.name if file else None)
                   for k in range(1, count + 1)]  # fmt: skip
        if not force and all(folder.current(o) for o in outputs):
            current += len(outputs)
            rows += [folder.manifest.records[o.file] for o in outputs]
            continue
        grids = compare(network, image, layer=layer, select=select, how=how, seed=spec.seed, fallback=fallback)
        rows += [folder.write(o, picture) for picture, o in zip(grids, outputs)]
        written += len(outputs)
    folder.manifest.merge()
    return Result(rows, written=written, current=current, photos_current=current // count, out=folder.folder, named=True)


def eight(fallback: bool) -> list[str]:
    """The eight variants, or with `fallback` their NAME+bp forms."""
    return [f"{v}{ANY}" if fallback else v for v in VARIANTS]


def grids_per_photo(select: str) -> int:
    """How many grids `compare` draws per photo: one per signal, K for topk:K."""
    return getattr(parse_selector(select), "k", 1)
