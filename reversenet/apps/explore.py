"""`reversenet explore`, its model side: photos, their recordings, a layer's channel maps and
a neuron's reversed pictures, for the web app (reversenet/apps/explore_web.py).

One recording per photo serves every layer, variant and selector (every layer recorded, the
eight variants' bottleneck); recordings are kept in a cache bounded by bytes, the least
recently used dropped first. A click is one batched reverse of the variants shown, on the
neuron's receptive field only. Photos are the ones given on the command line and those
uploaded (decoded with the command line's checks, kept in a temporary folder); the browser
names them by id, never by path.
"""

from __future__ import annotations

import base64
import io
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..choices import VARIANTS
from ..core.recording import Recording
from ..core.rules.registry import tensors_in
from ..core.selectors import parse_selector
from ..errors import UsageError
from ..inputs.images import load_image
from ..inputs.models import Network
from ..inputs.spec import NetworkSpec
from ..output.files import photo_ids
from ..output.render import render

UPLOAD_BYTES = 20 << 20  # the largest upload
UPLOAD_PIXELS = 40_000_000  # the most pixels an upload may decode to
PAGE = 64  # channel maps per page


def png(array: np.ndarray) -> str:
    """An RGB or grey uint8 array as a PNG data URI."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class Explorer:
    """A network and its photos, recorded on demand.

    Parameters
    ----------
    network : reversenet.Network
        The network.
    spec : reversenet.NetworkSpec
        What made it (for saving pictures as `reversenet visualize` names them).
    photos : list of pathlib.Path
        The photos given.
    cache_bytes : int, default 1 GiB
        The most the recordings kept may hold.
    """

    def __init__(self, network: Network, spec: NetworkSpec, photos: list[Path], cache_bytes: int = 1 << 30):
        self.network, self.spec, self.cache_bytes = network, spec, cache_bytes
        self.graph = network.graph()
        shapes = self.graph.shapes(torch.zeros(1, 3, *network.input_size, device=network.device))
        self.layers = {self.graph.name_of(step.node): shapes[step.node.name]
                       for step in self.graph.path(self.graph.resolve("output")) if step.node.name in shapes}  # fmt: skip
        self.default_layer = network.default_layer
        self._uploads = Path(tempfile.mkdtemp(prefix="reversenet-explore-"))
        self.photos: dict[str, Path] = {}
        self.add(photos)
        self._cache: OrderedDict[str, tuple[Recording, torch.Tensor, int]] = OrderedDict()
        self.lock = threading.Lock()  # one computation at a time: torch's threads are the parallelism
        self.latest = 0  # the newest click's number: an older one still waiting is superseded

    def add(self, paths: list[Path]) -> list[str]:
        """Add photos; their ids."""
        ids = photo_ids([p.resolve() for p in paths], {str(p): i for i, p in self.photos.items()})
        for path, photo in ids.items():
            self.photos[photo] = path
        return list(ids.values())

    def upload(self, data: bytes, name: str = "upload") -> str:
        """Keep an uploaded photo (decoded as the command line decodes photos); its id."""
        if len(data) > UPLOAD_BYTES:
            raise UsageError(f"the upload is {len(data):,} bytes; the most is {UPLOAD_BYTES:,}")
        try:
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > UPLOAD_PIXELS:
                    raise UsageError(f"the upload is {image.width}×{image.height} pixels; the most is {UPLOAD_PIXELS:,}")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise UsageError("the upload is not an image PIL can read") from exc
        stem = "".join(c if c.isalnum() or c in "-." else "-" for c in Path(name).stem)[:40] or "upload"
        path = self._uploads / f"{stem}-{len(self.photos)}.png"
        load_image_bytes(data).save(path)
        return self.add([path])[0]

    def photo(self, photo: str) -> str:
        """The photo as the network sees it, a PNG data URI."""
        _, x = self._recorded(photo)
        return png(self.network.picture(x[0]))

    def _recorded(self, photo: str) -> tuple[Recording, torch.Tensor]:
        if photo not in self.photos:
            raise KeyError(photo)
        if photo in self._cache:
            self._cache.move_to_end(photo)
            rec, x, _ = self._cache[photo]
            return rec, x
        x = self.network.transform(load_image(self.photos[photo]))[None].to(self.network.device)
        rec = Recording(self.graph, x, layer=list(self.layers), variants=VARIANTS)
        size = sum(t.nbytes for t in rec.activations.values()) + sum(t.nbytes for t in tensors_in(rec._forward.bottleneck))
        self._cache[photo] = (rec, x, size)
        while sum(s for _, _, s in self._cache.values()) > self.cache_bytes and len(self._cache) > 1:
            self._cache.popitem(last=False)
        return rec, x

    def _layer(self, layer: str) -> str:
        if layer not in self.layers:
            raise UsageError(f"unknown layer {layer!r}; see /api/state for the layers")
        return layer

    def channels(self, photo: str, layer: str, page: int = 0) -> dict[str, Any]:
        """A layer's channel maps, strongest first (by their largest activation), a page of them."""
        rec, _ = self._recorded(photo)
        y = rec.activations[self._layer(layer)][0].float().cpu()
        maps = y if y.dim() == 3 else y.reshape(-1, 1, 1)
        strength = maps.flatten(1).amax(1)
        order = strength.argsort(descending=True).tolist()
        top = float(strength.max()) if len(strength) else 0.0
        shown = []
        for c in order[page * PAGE : (page + 1) * PAGE]:
            grey = (maps[c].clamp(min=0) / (top or 1.0) * 255).round().to(torch.uint8).numpy()
            y_x = divmod(int(maps[c].argmax()), maps.shape[2])  # its strongest position
            shown.append({"channel": c, "strength": float(strength[c]), "argmax": list(y_x), "map": png(grey)})
        return {"layer": layer, "shape": list(y.shape), "channels": shown, "total": len(order), "page": page,
                "pages": -(-len(order) // PAGE)}  # fmt: skip

    def reverse(self, photo: str, layer: str, select: str, variants: list[str], how: str = "paper") -> dict[str, Any]:
        """The pictures of the selected neuron(s) for each variant, one batched reverse, and
        where they reach on the photo (a box: the receptive field of a neuron)."""
        rec, x = self._recorded(photo)
        layer, selector = self._layer(layer), parse_selector(select)
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown or not variants:
            raise UsageError(f"unknown variant {unknown[0] if unknown else ''!r}; choose from {', '.join(VARIANTS)}")
        shown = self.network.picture(x[0])
        pictures = rec.visualize_many(selector, variants, seed=self.spec.seed, layer=layer)
        out = {v: png(render(pictures[v][0, 0], how, shown)[0][1]) for v in variants}
        reach = rec.visualize_many(selector, ["identity-center"], layer=layer)["identity-center"][0, 0].abs().sum(0)
        rows, cols = torch.nonzero(reach.amax(1)).flatten(), torch.nonzero(reach.amax(0)).flatten()
        box = [int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1] if len(rows) else None
        return {"pictures": out, "box": box, "size": list(shown.shape[:2])}

    def save(self, photo: str, layer: str, select: str, variants: list[str], how: str, out: Path) -> list[str]:
        """Write the pictures as `reversenet visualize` writes them (names, manifest); the files."""
        from ..output.batch import run

        if photo not in self.photos:
            raise KeyError(photo)
        result = run({"images": [str(self.photos[photo])], "model": self.spec.model, "weights": self.spec.weights,
                      "seed": self.spec.seed, "device": self.spec.device, "layers": [self._layer(layer)],
                      "variants": variants, "select": [select], "render": [how], "out": str(out), "report": False})  # fmt: skip
        return [str(out / r["file"]) for r in result if r.get("kind") == "picture"]


def load_image_bytes(data: bytes) -> Image.Image:
    """An uploaded photo decoded as `load_image` decodes a file."""
    with tempfile.NamedTemporaryFile(suffix=".img") as f:
        f.write(data)
        f.flush()
        return load_image(Path(f.name))
