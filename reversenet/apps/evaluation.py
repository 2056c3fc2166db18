"""Scoring masks against ground truth, as the paper's Table 1 (design page §6).

Photos and masks pair by file stem: ``<stem>.png`` or several masks ``<stem>_1.png``,
``<stem>_2.png``. A mask is read as binary: a file whose values are 0 and one other
value (1, 255, ...) is foreground where it is not 0; any other file is read as
foreground where its value is at least half its type's range (128 for 8 bits), and said
so. Per image and method: per-pixel accuracy (PP, % of pixels where the estimated mask
and the truth agree) and IoU of the foreground, in percent, with the estimated mask
resized to the truth's size by nearest neighbour; where a photo has several masks, the
one with the best IoU counts. Means over images and, with classes, over classes of the
per-class means (the paper's averaging).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..choices import EVALUATE_METHODS, GAUSSIAN
from ..errors import ReversenetError, UsageError, first_line
from ..inputs.images import EXTENSIONS, find_images, sha256_file
from ..inputs.models import Network
from ..inputs.spec import DEVICE, MODEL, SEED, WEIGHTS, NetworkSpec, as_network
from ..output.files import Output, OutputFolder, csv_text
from ..tables import Table, plural
from .seeds import Seeds
from .segmentation import Segmenter

RESULTS = ("image", "class", "method", "network", "pp", "iou", "truth")
SUMMARY = ("method", "network", "images", "pp", "iou", "classes", "pp_class", "iou_class")
_FILES = ("results.csv", "summary.csv", "problems.csv", "evaluation.json")


def read_mask(path: Path) -> tuple[np.ndarray, str | None]:
    """A ground-truth mask as booleans, and a note when it was not binary."""
    try:
        with Image.open(path) as image:
            image.load()
            values = np.asarray(image if image.mode in ("1", "L", "P", "I", "I;16") else image.convert("L"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ReversenetError(f"cannot read mask {path}: {first_line(exc)}") from exc
    levels = np.unique(values)
    if len(levels) == 1 or len(levels) == 2 and levels[0] == 0:
        return values != 0, None
    half = 128 if levels[-1] <= 255 else 32768  # 8 or 16 bits
    return values >= half, f"{path.name} is not binary ({len(levels)} values): read as foreground where ≥ {half}"


def scores(estimate: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(PP, IoU) in percent of a boolean mask against the truth, after resizing the
    estimate to the truth's size by nearest neighbour."""
    if estimate.shape != truth.shape:
        estimate = cv2.resize(estimate.astype(np.uint8), truth.shape[::-1], interpolation=cv2.INTER_NEAREST_EXACT) > 0
    union = int(np.count_nonzero(estimate | truth))  # Python numbers in results, not numpy scalars
    iou = 100.0 * int(np.count_nonzero(estimate & truth)) / union if union else 100.0
    return 100.0 * int(np.count_nonzero(estimate == truth)) / truth.size, iou


def pair(photos: Sequence[Path], masks: Sequence[Path]) -> tuple[dict[Path, list[Path]], list[Path]]:
    """Each photo's masks (``stem.*``, ``stem_N.*``), and the masks of no photo."""
    by_stem = {p.stem: p for p in photos}
    found: dict[Path, list[Path]] = {p: [] for p in photos}
    orphans = []
    for mask in masks:
        stem, _, number = mask.stem.rpartition("_")
        owner = by_stem.get(mask.stem) or (by_stem.get(stem) if number.isdigit() else None)
        if owner is None:
            orphans.append(mask)
        else:
            found[owner].append(mask)
    return found, orphans


def read_classes(path: Path) -> dict[str, str]:
    """stem -> class from a CSV of ``stem,class`` lines (a header line is allowed)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {first_line(exc)}") from exc
    classes = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or number == 1 and [c.strip().lower() for c in row] == ["stem", "class"]:
            continue
        if len(row) != 2 or not row[0].strip():
            raise UsageError(f"{path}:{number}: write each line as stem,class")
        classes[row[0].strip()] = row[1].strip()
    return classes


@dataclass
class Evaluation:
    """What `evaluate` measured.

    Parameters
    ----------
    network : str
        The network's name.
    methods : list of str
        The methods scored, the Gaussian baseline last.
    rows : list of dict
        One per image and method, as in results.csv: ``image``, ``class``, ``method``,
        ``network``, ``pp`` and ``iou`` (percent), ``truth`` (the mask that counted).
    problems : list of dict
        The photos and masks that could not be scored: ``image``, ``problem``.
    notes : list of str
        How masks were read (a non-binary mask, ...).
    current : bool, default False
        Read back from files a rerun found current, not computed.

    Examples
    --------
    >>> import reversenet
    >>> result = reversenet.Evaluation("alexnet", ["salinet", "gaussian"], rows=[
    ...     {"image": "a.jpg", "class": "cat", "method": "salinet", "network": "alexnet", "pp": 90.0, "iou": 60.0},
    ...     {"image": "b.jpg", "class": "dog", "method": "salinet", "network": "alexnet", "pp": 80.0, "iou": 40.0},
    ...     {"image": "c.jpg", "class": "dog", "method": "salinet", "network": "alexnet", "pp": 70.0, "iou": 20.0}])
    >>> line = result.summary()[0]
    >>> line["iou"], line["iou_class"]  # over images; over classes of the per-class means
    (40.0, 45.0)
    """

    network: str
    methods: list[str]
    rows: list[dict] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    current: bool = False  # read back from files found current, not computed

    def summary(self) -> list[dict]:
        """The table: per method, the mean scores.

        Returns
        -------
        list of dict
            Per method: ``method``, ``network``, ``images``, ``pp`` and ``iou`` (means over
            images); when the images carry classes also ``classes``, ``pp_class`` and
            ``iou_class`` (the mean over classes of the per-class means: the paper's).
        """
        out = []
        for method in self.methods:
            rows = [r for r in self.rows if r["method"] == method]
            line = {"method": method, "network": rows[0]["network"] if rows else "", "images": len(rows),
                    "pp": _mean(r["pp"] for r in rows), "iou": _mean(r["iou"] for r in rows)}  # fmt: skip
            per_class = defaultdict(list)
            for r in rows:
                if r["class"]:
                    per_class[r["class"]].append(r)
            if per_class:
                line["classes"] = len(per_class)
                for key in ("pp", "iou"):
                    line[f"{key}_class"] = _mean(_mean(r[key] for r in group) for group in per_class.values())
            out.append(line)
        return out


    def table(self, title: str) -> Table:
        """The summary as a table: PP and IoU per method, with the class means when the
        images carry classes.

        Parameters
        ----------
        title : str
            What was scored (the masks' folder).

        Returns
        -------
        reversenet.tables.Table
            Cells as text, 2 decimals.
        """
        summary = self.summary()
        by_class = any("classes" in line for line in summary)
        columns = ["method", "network", "PP", "IoU", "images"] + (["PP (class mean)", "IoU (class mean)", "classes"] if by_class else [])
        rows = []
        for line in summary:
            cells = [line["method"], line["network"], f"{line['pp']:.2f}", f"{line['iou']:.2f}", str(line["images"])]
            if by_class:
                cells += [f"{line['pp_class']:.2f}", f"{line['iou_class']:.2f}", str(line["classes"])]
            rows.append(cells)
        return Table(f"{self.network}: {title}", columns, rows, right=tuple(columns[2:]))

    def save(self, out: Path, params: dict) -> None:
        """Write results.csv, summary.csv, problems.csv (when there are problems) and
        evaluation.json (all of it, for a rerun to find current), recorded in the folder's
        manifest.

        Parameters
        ----------
        out : pathlib.Path
            The folder (made if missing).
        params : dict
            What made them (the network, photos, masks and options): a rerun with other
            parameters finds them stale.
        """
        folder = OutputFolder(out)
        data = [csv_text(RESULTS, self.rows), csv_text(SUMMARY, self.summary()),
                csv_text(("image", "problem"), self.problems) if self.problems else None,
                json.dumps(dataclasses.asdict(self), ensure_ascii=False)]  # fmt: skip
        for output, text in zip(_outputs(params), data):
            if text is not None:
                folder.write(output, text)
        if not self.problems:
            (out / "problems.csv").unlink(missing_ok=True)  # a rerun's: no longer true


def _outputs(params: dict) -> list[Output]:
    return [Output("table" if f.endswith("csv") else "metric", extra=params, name=f) for f in _FILES]


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def evaluate(
    images: Path | str,
    masks: Path | str,
    model: str | Network | NetworkSpec = MODEL,
    *,
    out: Path | str | None,
    weights: str = WEIGHTS,
    seed: int = SEED,
    device: str = DEVICE,
    methods: Sequence[str] = EVALUATE_METHODS,
    classes: Path | None = None,
    layer: str | None = None,
    select: str = "objectness",
    size: int = 256,
    seeds: Seeds = Seeds(),
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Segment annotated photos with each method and the Gaussian baseline, and score them.

    The Python side of ``reversenet evaluate`` (the paper's Table 1 protocol,
    docs/design.md §6). Photos and masks pair by file stem (``cat.jpg`` with ``cat.png``,
    or ``cat_1.png``, ``cat_2.png``: the best counts). A photo without a mask, a mask of
    another aspect ratio, an empty mask or a mask of no photo is listed in ``problems``,
    never skipped silently; a non-binary mask is read as foreground where ≥ 128.

    Parameters
    ----------
    images : str or pathlib.Path
        A folder of photos.
    masks : str or pathlib.Path
        A folder of masks (0/255 or 0/1 PNGs).
    model : str, reversenet.Network or NetworkSpec, default "vgg16"
        A torchvision classifier's name, ``package.module:factory``, or a network.
    out : str or pathlib.Path or None
        Where ``results.csv``, ``summary.csv``, ``problems.csv`` and ``evaluation.json``
        go; None writes nothing. A rerun with the same network, photos, masks and options
        finds them current and scores nothing again.
    weights : str, default "DEFAULT"
        As in `reversenet.load_network`.
    seed : int, default 0
        Seeds random weights, random selectors and OpenCV's random numbers.
    device : str, default "auto"
        ``auto`` (CUDA when there is one), ``cpu`` or ``cuda``.
    methods : sequence of str, default ("salinet", "desalinet", "deconvnet")
        Variants; the Gaussian baseline always runs too.
    classes : pathlib.Path, optional
        A ``stem,class`` CSV; default ``classes.csv`` in `images` or `masks` if there is one.
    layer, select, size, seeds
        As in `Segmenter`.
    force : bool, default False
        Score again when the files in `out` are current.
    progress : callable, optional
        Called with (photos done, photos in all) after each photo.

    Returns
    -------
    Evaluation

    Raises
    ------
    reversenet.UsageError
        No such folder, or no photo with a mask.

    Examples
    --------
    >>> import shutil, numpy as np, reversenet
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> for folder in ("photos", "masks"):
    ...     Path(folder).mkdir()
    >>> _ = shutil.copy(reversenet.sample_image(), "photos/cat.jpg")  # 451 x 300
    >>> truth = np.zeros((300, 451), np.uint8)
    >>> truth[40:290, 60:400] = 255
    >>> Image.fromarray(truth).save("masks/cat.png")
    >>> result = reversenet.evaluate("photos", "masks", "alexnet", weights="random", methods=["salinet"], out=None)
    >>> [(line["method"], line["images"]) for line in result.summary()]
    [('salinet', 1), ('gaussian', 1)]
    >>> 0 <= result.rows[0]["iou"] <= 100
    True
    """
    images, masks = Path(images), Path(masks)
    out = None if out is None else Path(out)
    photos = find_images([str(images)])
    if not masks.is_dir():
        raise UsageError(f"no such folder of masks: {masks}")
    truths = [p for p in sorted(masks.iterdir()) if p.suffix.lower() in EXTENSIONS]
    owned, orphans = pair(photos, truths)
    if not any(owned.values()):
        raise UsageError(f"no photo of {images} has a mask in {masks} (masks pair with photos by file stem: "
                         f"{photos[0].stem}.png or {photos[0].stem}_1.png)")  # fmt: skip
    classes = classes or next((f for f in (images / "classes.csv", masks / "classes.csv") if f.is_file()), None)
    labels = read_classes(classes) if classes else {}
    methods = [m for m in dict.fromkeys(methods) if m != GAUSSIAN] + [GAUSSIAN]
    spec = NetworkSpec.of(model, weights, seed, device)
    hashes = lambda paths: {str(p.resolve()): sha256_file(p) for p in paths}
    params = {**spec.identity(), "photos": hashes(photos), "masks": hashes(truths), "classes": classes and hashes([classes]),
              "methods": methods, "layer": layer, "select": select, "size": size, "seeds": vars(seeds)}  # fmt: skip
    current = [o for o in _outputs(params) if o.name != "problems.csv"]
    if out is not None and not force and all(OutputFolder(out).current(o) for o in current):
        data = json.loads((out / _FILES[-1]).read_text(encoding="utf-8"))
        return Evaluation(**{**data, "current": True})
    network = as_network(model, weights, seed=spec.seed, device=device)
    segmenter = Segmenter(network, methods, layer=layer, select=select, size=size, seeds=seeds, seed=spec.seed)
    result = Evaluation(network.name, methods)
    result.problems += [{"image": m.name, "problem": "mask of no photo (no photo with its stem)"} for m in orphans]
    for done, photo in enumerate(photos):
        result.rows += _one(segmenter, photo, owned[photo], labels.get(photo.stem, ""), result)
        if progress:
            progress(done + 1, len(photos))
    if labels:
        unlabelled = sum(1 for p in photos if owned[p] and p.stem not in labels)
        if unlabelled:
            result.notes.append(f"{plural(unlabelled, 'photo has', 'photos have')} no class in {classes}: left out of the class means")
    if out is not None:
        result.save(out, params)
    return result


def _one(segmenter: Segmenter, photo: Path, masks: list[Path], label: str, result: Evaluation) -> list[dict]:
    """The rows of one photo; its problems and notes go to `result`."""
    if not masks:
        result.problems.append({"image": photo.name, "problem": "no mask"})
        return []
    try:
        with Image.open(photo) as image:
            width, height = image.size
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF: shown turned a quarter, as load_image does
                width, height = height, width
        truths = {}
        for mask in masks:
            truth, note = read_mask(mask)
            if note:
                result.notes.append(note)
            h, w = truth.shape
            if abs(h * width / w - height) > 1:
                result.problems.append({"image": photo.name, "problem": f"mask {mask.name} is {w}×{h}, "
                                        f"not the photo's aspect ratio ({width}×{height})"})  # fmt: skip
            elif not truth.any():
                result.problems.append({"image": photo.name, "problem": f"mask {mask.name} is empty (no foreground)"})
            else:
                truths[mask.name] = truth
        if not truths:
            return []
        segmentation = segmenter(photo)
    except (ReversenetError, UnidentifiedImageError, OSError) as exc:
        result.problems.append({"image": photo.name, "problem": first_line(exc)})
        return []
    rows = []
    for method, estimate in segmentation.masks.items():
        best = max(((name, *scores(estimate, truth)) for name, truth in truths.items()), key=lambda s: (s[2], s[1]))
        rows.append({"image": photo.name, "class": label, "method": method,
                     "network": "" if method == GAUSSIAN else segmenter.network.name,
                     "pp": round(best[1], 4), "iou": round(best[2], 4), "truth": best[0]})  # fmt: skip
    return rows
