"""Foreground masks from reversed networks: the paper's Sect. 3.5 protocol (design page §6).

A photo is resized so that its shorter side is 256 pixels (bicubic, no crop); the
classifier runs fully convolutionally on it; the reversed network of each variant maps
the ``objectness`` signal of its score map back to the photo, and the saliency map is
the L∞ norm of that over the colour channels. OpenCV's GrabCut, seeded from the map's
quantiles, then cuts the foreground, of which the largest connected component is kept.
The baseline (method ``gaussian``) seeds the same GrabCut from a fixed map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from ..choices import GAUSSIAN, SEGMENT_METHODS
from ..core.recording import Recording
from ..core.selectors import parse_selector
from ..core.variants import expand, load_variant
from ..errors import ReversenetError, UsageError, first_line
from ..inputs.images import load_image
from ..inputs.models import Network
from ..inputs.spec import DEVICE, MODEL, SEED, WEIGHTS, NetworkSpec, as_network
from ..output.files import Output, OutputFolder, Result, known_photos, remove_temporaries, unique
from ..output.render import heat, saliency_map
from .fcn import fully_convolutional
from .seeds import Seeds

_NO_RECT = (0, 0, 0, 0)  # GrabCut reads its rect argument only in GC_INIT_WITH_RECT mode


def gaussian_map(height: int, width: int) -> np.ndarray:
    """The baseline's fixed saliency map: a Gaussian of σ = 24 px on a 125 px square
    support at the centre, minus the same Gaussian at each of the four corners; both
    scaled by the shorter side / 256. Float64, (height, width)."""
    scale = min(height, width) / 256
    sigma, support = 24 * scale, max(1, round(125 * scale)) | 1  # an odd support: a centre pixel
    g = cv2.getGaussianKernel(support, sigma)
    kernel = g @ g.T
    out = np.zeros((height, width))
    for (cy, cx), sign in [((height // 2, width // 2), 1), ((0, 0), -1), ((0, width - 1), -1),
                           ((height - 1, 0), -1), ((height - 1, width - 1), -1)]:  # fmt: skip
        _paste(out, sign * kernel, cy, cx)
    return out


def _paste(canvas: np.ndarray, kernel: np.ndarray, cy: int, cx: int) -> None:
    """Add `kernel`, centred at (cy, cx), to `canvas`, clipped at its borders."""
    r = kernel.shape[0] // 2
    top, left = max(cy - r, 0), max(cx - r, 0)
    bottom, right = min(cy + r + 1, canvas.shape[0]), min(cx + r + 1, canvas.shape[1])
    canvas[top:bottom, left:right] += kernel[top - cy + r : bottom - cy + r, left - cx + r : right - cx + r]


def trimap(saliency: np.ndarray, seeds: Seeds) -> tuple[np.ndarray, np.ndarray]:
    """GrabCut's initial mask (cv2.GC_* labels, the unknown pixels as probable
    background) and where the seeds are (the pixels that train the colour models).

    A tie at the map's bottom (a plateau of zeros) counts as below every quantile that
    falls on it, and one at its top as above; otherwise comparisons are strict."""
    q = np.quantile(saliency, [seeds.sure_background, seeds.background, seeds.foreground, seeds.sure_foreground])
    low, high = saliency.min(), saliency.max()
    below = lambda t: saliency <= t if t == low else saliency < t
    above = lambda t: saliency >= t if t == high else saliency > t
    foreground = above(q[2])
    mask = np.where(foreground, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)  # background and unknown alike
    mask[below(q[0])] = cv2.GC_BGD
    mask[above(q[3])] = cv2.GC_FGD
    return mask, below(q[1]) | foreground


def grabcut(photo: np.ndarray, saliency: np.ndarray, seeds: Seeds = Seeds(), *, seed: int = 0) -> np.ndarray:
    """The foreground mask (H, W) bool of `photo` (H, W, 3) uint8 by OpenCV's GrabCut
    seeded from `saliency` (H, W): its largest 8-connected component.

    The colour models (5 Gaussians per side, OpenCV's) are fitted to the seeds alone, the
    unknown pixels left out; the first cut uses those models as they are, the next ones
    refit them to the current labels. A constant map seeds nothing: the mask is empty."""
    if saliency.shape != photo.shape[:2]:
        raise ValueError(f"saliency map {saliency.shape} and photo {photo.shape[:2]} differ in size")
    if not np.isfinite(saliency).all() or saliency.max() == saliency.min():
        return np.zeros(saliency.shape, bool)
    mask, seeded = trimap(saliency, seeds)
    photo = np.ascontiguousarray(photo)
    cv2.setRNGSeed(seed)  # the colour models start from k-means
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # OpenCV fits the models to every pixel's label: fit them to the seeds only, as a strip.
    strip = np.ascontiguousarray(photo[seeded][None])
    cv2.grabCut(strip, np.ascontiguousarray(mask[seeded][None]), _NO_RECT, background, foreground, 0,
                cv2.GC_INIT_WITH_MASK)  # fmt: skip
    cv2.grabCut(photo, mask, _NO_RECT, background, foreground, 1, cv2.GC_EVAL_FREEZE_MODEL)
    if seeds.iterations > 1:
        cv2.grabCut(photo, mask, _NO_RECT, background, foreground, seeds.iterations - 1, cv2.GC_EVAL)
    return largest_component((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (OpenCV's labelling)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros(mask.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


@dataclass
class Segmentation:
    """One photo's results: the photo as the network saw it (H, W, 3) uint8, and per
    method its saliency map (H, W) float and foreground mask (H, W) bool."""

    photo: np.ndarray
    size: tuple[int, int]  # the original photo's (H, W)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)


class Segmenter:
    """The segmentation protocol, set up once for a network and methods.

    The network is made fully convolutional and traced once; calling the segmenter on a
    photo gives every method's saliency map and GrabCut mask from one forward pass.

    Parameters
    ----------
    network : reversenet.Network
        From `reversenet.load_network`.
    methods : sequence of str, default ("salinet",)
        Variants, and ``gaussian`` for the paper's fixed baseline map.
    layer : str, optional
        The layer whose output is reversed; default the network's output (fc8).
    select : str, default "objectness"
        The selector, as in `reversenet.reverse`; ``objectness`` is the protocol's.
    size : int, default 256
        The shorter side photos are resized to.
    seeds : Seeds, default Seeds()
        GrabCut's seeding.
    seed : int, default 0
        For random selectors, and OpenCV's random numbers (masks are reproducible).

    Raises
    ------
    reversenet.UsageError
        No method, an unknown method, or a size < 1.
    reversenet.ReversenetError
        A head that cannot be made convolutional (the layer named).

    Examples
    --------
    >>> import reversenet
    >>> segmenter = reversenet.Segmenter(reversenet.load_network("alexnet", "random"), ["salinet", "gaussian"])
    >>> result = segmenter(reversenet.sample_image())
    >>> result.photo.shape, result.masks["salinet"].shape, result.masks["salinet"].dtype
    ((256, 384, 3), (256, 384), dtype('bool'))
    """

    def __init__(
        self,
        network: Network,
        methods: Sequence[str] = SEGMENT_METHODS,
        *,
        layer: str | None = None,
        select: str = "objectness",
        size: int = 256,
        seeds: Seeds = Seeds(),
        seed: int = 0,
    ):
        if not methods:
            raise UsageError("name at least one method")
        if size < 1:
            raise UsageError(f"--size must be positive, got {size}")
        self.network, self.size, self.seeds, self.seed = network, size, seeds, seed
        self.methods = expand(methods)
        self.variants = {m: load_variant(m) for m in self.methods if m != GAUSSIAN}
        self.selector = parse_selector(select)
        if self.variants:
            self.module = fully_convolutional(network.module, network.input_size, network.aliases)
            self.graph = network.graph(self.module)  # traced once, for every photo
            self.layer = layer or self.graph.name_of(self.graph.resolve("output"))
            self.graph.resolve(self.layer)
        else:
            self.layer = layer or "output"

    def input(self, path: Path) -> tuple[torch.Tensor, np.ndarray, tuple[int, int]]:
        """A photo as the protocol feeds it to the network.

        Parameters
        ----------
        path : pathlib.Path
            The photo.

        Returns
        -------
        x : torch.Tensor
            The network input, (1, 3, H, W), H or W = `size`.
        photo : numpy.ndarray
            The resized photo, (H, W, 3) uint8.
        size : (int, int)
            The original photo's (H, W).
        """
        image = load_image(path)
        resized = TF.resize(image, self.size, interpolation=InterpolationMode.BICUBIC)
        x = TF.normalize(TF.to_tensor(resized), self.network.transform.mean, self.network.transform.std)
        return x[None].to(self.network.device), np.asarray(resized), (image.height, image.width)

    def maps(self, x: torch.Tensor, photo: np.ndarray) -> dict[str, np.ndarray]:
        """Each method's saliency map of one photo, from one forward pass.

        Parameters
        ----------
        x : torch.Tensor
            The network input, (1, 3, H, W), as `input` makes it.
        photo : numpy.ndarray
            The resized photo, (H, W, 3) uint8 (the Gaussian baseline's size).

        Returns
        -------
        dict of str to numpy.ndarray
            Method to its map, (H, W) float64: the L∞ norm over colour of the reversed
            output.
        """
        out = {}
        if self.variants:
            try:
                rec = Recording(self.graph, x, layer=self.layer, variants=self.variants.values())
            except ReversenetError as exc:
                native = self.network.input_size
                if min(x.shape[-2:]) < min(native):
                    raise ReversenetError(
                        f"{x.shape[-2]}×{x.shape[-1]} pixels after resizing is smaller than the receptive field of "
                        f"{self.network.name}'s classifier (native input {native[0]}×{native[1]}): use a larger --size"
                    ) from exc
                raise
            pictures = rec.visualize_many(self.selector, self.variants.values(), seed=self.seed)
            for method, variant in self.variants.items():  # (K, 1, C, H, W) each
                out[method] = pictures[variant.name].abs().amax(dim=(0, 2))[0].double().cpu().numpy()
        for method in self.methods:
            if method == GAUSSIAN:
                out[method] = gaussian_map(*photo.shape[:2])
        return {m: out[m] for m in self.methods}

    def __call__(self, path: Path) -> Segmentation:
        """Saliency maps and masks of one photo, for every method."""
        x, photo, size = self.input(path)
        result = Segmentation(photo, size, self.maps(x, photo))
        for method, saliency in result.maps.items():
            result.masks[method] = grabcut(photo, saliency, self.seeds, seed=self.seed)
        return result


def overlay(photo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo with the mask's outline drawn on it (and the background dimmed)."""
    out = (photo.astype(np.float64) * np.where(mask, 1.0, 0.45)[..., None]).round().astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    width = max(1, round(min(mask.shape) / 128))
    return cv2.drawContours(np.ascontiguousarray(out), contours, -1, (255, 255, 0), width)


def pictures(result: Segmentation, method: str) -> dict[str, np.ndarray]:
    """The files of one method: the mask at the photo's own size (0/255), the saliency
    map as a heat map and the overlay, both on the photo as the network saw it."""
    mask = result.masks[method].astype(np.uint8) * 255
    full = cv2.resize(mask, result.size[::-1], interpolation=cv2.INTER_NEAREST_EXACT)
    saliency = result.maps[method]
    shown = saliency - saliency.min() if method == GAUSSIAN else saliency  # its corners are negative
    return {
        "mask": full,
        "saliency": heat(saliency_map(torch.from_numpy(shown)[None])),
        "overlay": overlay(result.photo, result.masks[method]),
    }


def segment(
    images: Iterable[Path | str],
    model: str | Network | NetworkSpec = MODEL,
    *,
    out: Path | str,
    weights: str = WEIGHTS,
    seed: int = SEED,
    device: str = DEVICE,
    methods: Sequence[str] = SEGMENT_METHODS,
    layer: str | None = None,
    select: str = "objectness",
    size: int = 256,
    seeds: Seeds = Seeds(),
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Result:
    """Segment photos: a mask, a saliency map and an overlay per photo and method.

    The Python side of ``reversenet segment`` (docs/design.md §6). Files are written to
    `out` as ``<photo>_<model>_<layer>_<method>[_<selector>]-mask.png`` (0/255, the photo's
    own size), ``-saliency.png`` and ``-overlay.png``, and recorded in its manifest; a
    photo whose files are all current is skipped. One forward pass per photo serves
    every method.

    Parameters
    ----------
    images : iterable of str or pathlib.Path
        Photo files.
    model : str, reversenet.Network or NetworkSpec, default "vgg16"
        A torchvision classifier's name, ``package.module:factory``, or a network.
    out : str or pathlib.Path
        The output folder.
    weights : str, default "DEFAULT"
        ``DEFAULT`` (downloaded by torch.hub), ``random`` (seeded by `seed`) or a
        state_dict file, as in `reversenet.load_network`.
    seed : int, default 0
        Seeds random weights, random selectors and OpenCV's random numbers.
    device : str, default "auto"
        ``auto`` (CUDA when there is one), ``cpu`` or ``cuda``.
    methods : sequence of str, default ("salinet",)
        Variants, and ``gaussian`` for the baseline.
    layer, select, size, seeds
        As in `Segmenter`.
    force : bool, default False
        Recompute files that are current.
    progress : callable, optional
        Called with (photos done, photos in all) after each photo.

    Returns
    -------
    reversenet.output.files.Result
        The manifest records of this run's files (a list; a photo that fails is a record
        of kind ``failed`` with its error, not an exception), with ``written``,
        ``current`` and ``failed``.

    Raises
    ------
    reversenet.UsageError
        A bad model, weights, method or option.

    Examples
    --------
    >>> import reversenet
    >>> photo = reversenet.sample_image()
    >>> rows = reversenet.segment([photo], "alexnet", weights="random", methods=["salinet", "gaussian"], out="masks")
    >>> sorted(row["file"] for row in rows if row["file"].endswith("-mask.png"))
    ['..._alexnet_fc8_gaussian-mask.png', '..._alexnet_fc8_salinet-mask.png']
    """
    spec = NetworkSpec.of(model, weights, seed, device)
    network = as_network(model, weights, seed=seed, device=device)
    segmenter = Segmenter(network, methods, layer=layer, select=select, size=size, seeds=seeds, seed=spec.seed)
    folder = OutputFolder(Path(out))
    photos = known_photos([Path(p).resolve() for p in images], folder.manifest)
    identity = spec.identity()
    plans = {
        path: [Output(what, photo, identity, segmenter.layer, m, select,
                      extra={"size": size, "seeds": vars(seeds), "variant_rules": _rules(segmenter, m)})
               for m in segmenter.methods for what in ("mask", "saliency", "overlay")]
        for path, photo in photos.items()
    }  # fmt: skip
    unique(o for plan in plans.values() for o in plan)
    remove_temporaries(folder.folder, [o.file for plan in plans.values() for o in plan])
    result = Result(out=folder.folder)
    for done, (path, plan) in enumerate(plans.items(), 1):
        if not force and all(folder.current(o) for o in plan):
            result.current += len(plan)
            result.photos_current += 1
        else:
            try:
                made = segmenter(path)
            except ReversenetError as exc:
                result.append(folder.fail(photos[path], network.name, first_line(exc)))
                result.failed.append({"photo": str(path), "model": network.name, "error": first_line(exc)})
            else:
                files = {m: pictures(made, m) for m in segmenter.methods}
                result += [folder.write(o, files[str(o.variant)][o.kind]) for o in plan]
                result.written += len(plan)
        if progress:
            progress(done, len(photos))
    folder.manifest.merge()
    return result


def _rules(segmenter: Segmenter, method: str) -> dict | str:
    """What a method is, for the manifest: the variant's rules, or the baseline's name."""
    variant = segmenter.variants.get(method)
    return variant.rules if variant else method
