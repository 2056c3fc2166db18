"""Do saliency maps of a trained CNN find objects? A synthetic test bed with known masks.

    python benchmarks/objectness.py                 # the whole experiment (make objectness)
    python benchmarks/objectness.py train --weights build/objectness.pt [--steps N] [--untrained]
    python benchmarks/objectness.py photos --out build/objectness-photos -n 200 [--seed 1]

The experiment trains the classifier (cached under build/objectness/, keyed by the code that makes
the photos and the weights), draws held-out photos with their masks, and runs `reversenet.evaluate`
on them with the trained and with the untrained (seeded initialisation) network: SaliNet, DeSaliNet
and DeConvNet + GrabCut against the Gaussian baseline, as in the paper's Table 1. It also draws
build/objectness/objectness.png: photos, maps and masks.

Each photo holds one object, a shape (its class: disk, square, triangle or cross; 60-120 px across,
any angle) drawn as concentric bands of that shape in two random colours, placed uniformly at random
and wholly inside, on clutter in a palette of its own: a mosaic of irregular regions of blotches,
with the bands' contrast and about their width, under thin open strokes. The bands give the object
an inside with edges, as objects in photos have (a flat-coloured shape has only its outline, and
that is all DeSaliNet's map of it lights); the clutter is as edge-dense everywhere, so a saliency
map that follows low-level edges (an untrained network's) finds the object no better than chance;
a classifier has to look at its shape. `net()` is a small AlexNet-shaped CNN (no BatchNorm, a
Linear head on a 7x7 map) that the pipeline can turn fully convolutional. Training takes about
4 minutes on 2 CPU cores, the whole experiment about 11.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import inspect
import itertools
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table
from torch import nn

import reversenet
from reversenet.apps.segmentation import GAUSSIAN, Segmenter, overlay, pictures
from reversenet.inputs.models import load_network
from reversenet.output.files import save_png
from reversenet.output.render import grid

CLASSES: tuple[str, ...] = ("disk", "square", "triangle", "cross")
# ImageNet statistics, as torchvision.models.VGG16_Weights.DEFAULT.transforms() normalises photos.
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TRAIN_SIZE = 224
STEPS = 1600  # about 4 minutes on 2 CPU cores; ~98% held-out accuracy
OBJECT_PX = (60, 120)  # the object's extent in pixels, the same in photos and training images
# Separate random streams (numpy SeedSequence entropy (seed, stream, ...)), so that training never
# sees the held-out or the photo images of the same seed.
PHOTOS, TRAINING, HELD_OUT = 0, 1, 2


class _Net(nn.Module):
    """AlexNet-shaped: features (conv, ReLU, max-pool), avgpool to 7x7, classifier (dropout, linear,
    ReLU); forward = classifier(flatten(avgpool(features(x))))."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 96, 128), hidden: int = 128) -> None:
        super().__init__()
        # One stride-2 conv and four pools: 7x7 at 224x224, so avgpool is the identity there.
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 5, stride=2, padding=2), nn.ReLU(inplace=True)]
        for i, (cin, cout) in enumerate(itertools.pairwise(widths)):
            if i != 3:  # no pool between conv4 and conv5, as in AlexNet
                layers.append(nn.MaxPool2d(2))
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers, nn.MaxPool2d(2))
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(widths[-1] * 49, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, len(CLASSES)),
        )
        # He initialisation: without BatchNorm, PyTorch's default one starves the deeper layers.
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        # The first linear layer starts as global average pooling followed by a linear map, the same
        # weights at all 49 positions (objects are anywhere); training is then free to specialise them.
        fc, shared = self.classifier[1], torch.empty(hidden, widths[-1])
        nn.init.kaiming_normal_(shared, nonlinearity="relu")
        with torch.no_grad():
            fc.weight.copy_(shared.repeat_interleave(49, 1) / 49)
            fc.bias.zero_()
        nn.init.normal_(self.classifier[-1].weight, 0, 0.01)  # uniform class scores at first
        nn.init.zeros_(self.classifier[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def net() -> nn.Module:
    """The classifier, freshly (randomly, via torch's global seed) initialised."""
    return _Net()


# -- drawing ---------------------------------------------------------------------------------

def _pair(rng: np.random.Generator, palette: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two colours far apart (at least 120 in RGB distance): random, or from `palette`, jittered
    (the background keeps to its palette). Object and clutter get the same contrast."""
    while True:
        if palette is None:
            a, b = rng.integers(0, 256, (2, 3)).astype(np.float32)
        else:
            i = rng.integers(len(palette))
            j = (i + rng.integers(1, len(palette))) % len(palette)
            a, b = np.clip(palette[[i, j]] + rng.normal(0, 12, (2, 3)), 0, 255)
        if np.linalg.norm(a - b) >= 120:
            return a, b


def _smooth(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Smooth noise with features about `scale` pixels across (float32, mean 0, std ~1)."""
    h, w = shape
    coarse = rng.standard_normal((max(2, round(h / scale)), max(2, round(w / scale))), dtype=np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def _outline(rng: np.random.Generator, label: int, size: tuple[int, int]) -> np.ndarray:
    """The object's outline (float points, x y): the class's shape, random size, angle and position,
    wholly inside."""
    if CLASSES[label] == "disk":
        a = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(a), np.sin(a)], 1)
    elif CLASSES[label] == "square":
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    elif CLASSES[label] == "triangle":
        a = np.pi / 2 + np.array([0, 2, 4]) * np.pi / 3
        pts = np.stack([np.cos(a), np.sin(a)], 1)
    else:  # cross: a plus sign, arms a third of its width
        s = 1 / 3
        pts = np.array([[-s, -1], [s, -1], [s, -s], [1, -s], [1, s], [s, s], [s, 1], [-s, 1],
                        [-s, s], [-1, s], [-1, -s], [-s, -s]], float)
    t = rng.uniform(0, 2 * np.pi)
    pts = pts @ np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    pts -= pts.min(0)
    pts *= rng.uniform(*OBJECT_PX) / pts.max()
    h, w = size
    extent = pts.max(0)
    return pts + [rng.uniform(0, w - 1 - extent[0]), rng.uniform(0, h - 1 - extent[1])]


def _object(rng: np.random.Generator, label: int, image: np.ndarray) -> np.ndarray:
    """Draw the object onto `image`: concentric bands of its shape (shrunk about its centre by a
    random band width, 5-10 px), in its own two colours; return its mask (uint8 0/255)."""
    pts = _outline(rng, label, image.shape[:2])
    centre, extent = pts.mean(0), np.ptp(pts, 0).max()
    colours, band = _pair(rng), rng.uniform(5, 10)
    for k in range(int(extent / 2 / band)):
        shrunk = centre + (pts - centre) * (1 - 2 * k * band / extent)
        cv2.fillPoly(image, [np.round(shrunk).astype(np.int32)], tuple(float(c) for c in colours[k % 2]))
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    return mask


def _strokes(rng: np.random.Generator, image: np.ndarray, palette: np.ndarray, n: int) -> None:
    """Draw `n` thin open strokes (polylines and arcs) in the palette's colours onto `image`."""
    h, w = image.shape[:2]
    for _ in range(n):
        colour, thickness = tuple(float(c) for c in _pair(rng, palette)[0]), int(rng.integers(1, 5))
        if rng.random() < 0.6:
            steps = rng.normal(0, 25, (int(rng.integers(2, 6)), 2)).cumsum(0)
            pts = (steps + rng.uniform(0, [w, h])).astype(np.int32)
            cv2.polylines(image, [pts], False, colour, thickness, cv2.LINE_AA)
        else:
            centre = tuple(int(c) for c in rng.uniform(0, [w, h]))
            axes = tuple(int(a) for a in rng.uniform(8, 50, 2))
            start = rng.uniform(0, 360)
            cv2.ellipse(image, centre, axes, rng.uniform(0, 180), start, start + rng.uniform(60, 240),
                        colour, thickness, cv2.LINE_AA)


def _background(rng: np.random.Generator, size: tuple[int, int], palette: np.ndarray) -> np.ndarray:
    """Clutter in the palette's colours, as edge-dense everywhere as the object's bands: a mosaic
    of irregular regions (about 60 px), each blotches of two of its colours (thresholded smooth
    noise, features 4-10 px across), under thin open strokes."""
    h, w = size
    regions = np.argmax(np.stack([_smooth(rng, size, 60) for _ in range(4)]), 0)
    image = np.empty((h, w, 3), np.float32)
    for k in range(4):
        a, b = _pair(rng, palette)
        pattern = _smooth(rng, size, rng.uniform(4, 10)) > rng.uniform(-0.3, 0.3)
        region = regions == k
        image[region] = b + (a - b) * pattern[region].astype(np.float32)[:, None]
    _strokes(rng, image, palette, int(rng.integers(15, 35)))
    return image


def scene(rng: np.random.Generator, label: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One photo (HxWx3 uint8 RGB) of class `label` and its object's mask (HxW uint8, 0/255)."""
    palette = rng.integers(0, 256, (4, 3)).astype(np.float32)
    image = _background(rng, size, palette)
    mask = _object(rng, label, image)  # drawn last: the strokes pass behind it
    noise = rng.normal(0, 5, image.shape).astype(np.float32)  # sensor-like noise, everywhere alike
    return np.clip(image + noise, 0, 255).astype(np.uint8), mask


# -- data sets and training ------------------------------------------------------------------

def make_photos(folder: Path, n: int, *, seed: int, size: tuple[int, int] = (256, 256)) -> None:
    """Write `n` photos, their masks and classes.csv ("stem,class") under `folder`; classes in turn."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        label = i % len(CLASSES)
        image, mask = scene(np.random.default_rng((seed, PHOTOS, i)), label, size)
        stem = f"{CLASSES[label]}-{i:04d}"
        Image.fromarray(image, "RGB").save(folder / "images" / f"{stem}.png")
        Image.fromarray(mask, "L").save(folder / "masks" / f"{stem}.png")
        rows.append((stem, CLASSES[label]))
    with open(folder / "classes.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)


def _view(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A random side x side window of the image (and mask) that holds the whole object."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    top = rng.integers(max(0, rows[-1] + 1 - side), min(rows[0], len(mask) - side) + 1)
    left = rng.integers(max(0, cols[-1] + 1 - side), min(cols[0], mask.shape[1] - side) + 1)
    window = np.s_[top:top + side, left:left + side]
    return image[window], mask[window]


def batch(rng: np.random.Generator, n: int, view: int = TRAIN_SIZE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`n` normalised training images (n, 3, view, view), their labels and masks (n, view, view) bool:
    224x224 scenes, cropped to a `view` window around the object when smaller."""
    labels = rng.integers(len(CLASSES), size=n)
    scenes = (scene(rng, int(k), (TRAIN_SIZE, TRAIN_SIZE)) for k in labels)
    images, masks = zip(*(_view(rng, image, mask, view) for image, mask in scenes))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return x, torch.from_numpy(labels), torch.from_numpy(np.stack(masks) > 0)


def _save(state: dict, weights: Path) -> None:
    """torch.save to a temporary file beside `weights`, then rename: never a half-written file."""
    weights.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=weights.parent, prefix=f".{weights.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, weights)
    except BaseException:
        os.unlink(tmp)
        raise


def train(weights: Path, *, seed: int = 0, steps: int = STEPS, untrained: bool = False,
          batch_size: int = 32, held_out: int = 512) -> dict[str, float]:
    """Train net() with Adam on freshly drawn images; save its weights (or, untrained, the seeded
    initialisation); {"accuracy": on `held_out` whole 224x224 scenes, "seconds": wall time}."""
    start = time.perf_counter()
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    model = net()
    if not untrained:
        rng = np.random.default_rng((seed, TRAINING))
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
        # Up from zero over the first 150 steps (at full rate from the start, the features die before
        # they find the object among clutter as busy as it), constant, then down to zero over the
        # last fifth.
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: min((step + 1) / 150, 1.0, 5 * (1 - step / steps)))
        model.train()
        for step in range(steps):
            # A curriculum: the view widens from 128x128 around the object (first 40% of the steps)
            # to the whole 224x224 scene (last 30%), by 32 px (whole feature cells). On whole scenes
            # from the start the object is a few percent of the pooled features: the loss stays at
            # chance for longer than this budget.
            view = 128 + 32 * min(3, max(0, int((step / steps - 0.25) / 0.15)))
            if step % 2 == 0:
                x, y, _ = batch(rng, batch_size, view)
            else:  # each batch serves twice, turned a quarter the second time: drawing costs more than a step
                x = torch.rot90(x, 1, (2, 3)).contiguous()
            loss = nn.functional.cross_entropy(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            if step % 100 == 0 or step == steps - 1:
                seconds = time.perf_counter() - start
                print(f"step {step:5d}  view {view}  loss {loss.item():.3f}  {seconds:4.0f} s", flush=True)
    model.eval()
    rng, correct = np.random.default_rng((seed, HELD_OUT)), 0
    with torch.no_grad():
        for i in range(0, held_out, 64):
            x, y, _ = batch(rng, min(64, held_out - i))
            correct += int((model(x).argmax(1) == y).sum())
    _save(model.state_dict(), weights)
    return {"accuracy": correct / held_out, "seconds": time.perf_counter() - start}


# -- the experiment --------------------------------------------------------------------------

FACTORY = "benchmarks.objectness:net"
METHODS = ("salinet", "desalinet", "deconvnet")


def _key(photos: int, seed: int, steps: int) -> str:
    """A hash of the code that makes the photos and the weights, and of the arguments."""
    makers = (MEAN, STD, TRAIN_SIZE, OBJECT_PX, CLASSES, _Net, _pair, _smooth, _outline, _object, _strokes, _background,
              scene, make_photos, _view, batch, train, photos, seed, steps)  # fmt: skip
    text = "".join(inspect.getsource(m) if callable(m) else repr(m) for m in makers)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def experiment(root: Path = Path("build/objectness"), *, photos: int = 200, seed: int = 0,
               steps: int = STEPS) -> dict[str, reversenet.Evaluation]:
    """Train (or reuse) the classifier, draw `photos` held-out photos, and evaluate the trained
    and the untrained network on them; print both tables and draw the figure;
    {"trained": ..., "untrained": ...}. Weights and photos are cached under root/<key>: a
    rerun of the same code reuses them, a change to the code that makes them starts afresh."""
    root = root / _key(photos, seed, steps)
    folder = root / "photos"
    if not (folder / "classes.csv").is_file():  # written last: its presence means the photos are whole
        make_photos(folder, photos, seed=seed + 1)
    results, console = {}, Console()
    for name in ("trained", "untrained"):
        weights = root / f"{name}.pt"
        if not weights.is_file():
            result = train(weights, seed=seed, steps=steps, untrained=name == "untrained")
            console.print(f"{name}: held-out accuracy {result['accuracy']:.1%} ({result['seconds']:.0f} s)")
        results[name] = reversenet.evaluate(folder / "images", folder / "masks", FACTORY, weights=str(weights),
                                            methods=METHODS, classes=folder / "classes.csv", out=root / name)
        table = Table("method", "PP", "IoU", "images", title=f"{name} network, {photos} held-out photos")
        for line in results[name].summary():
            table.add_row(line["method"], f"{line['pp_class']:.2f}", f"{line['iou_class']:.2f}", str(line["images"]))
        console.print(table)
    figure(root / "trained.pt", folder, Path("build/objectness/objectness.png"))
    console.print(f"per-image scores: {root}/trained/results.csv, {root}/untrained/results.csv; "
                  "photos, maps and masks: build/objectness/objectness.png")  # fmt: skip
    return results


def figure(weights: Path, folder: Path, out: Path, stems: tuple[str, ...] = ("disk-0000", "square-0001", "cross-0007")) -> None:
    """Photos (the true object outlined), the SaliNet and DeSaliNet maps of the trained network
    and the masks GrabCut makes of them and of the Gaussian baseline, a row per photo."""
    network = load_network(FACTORY, str(weights))
    segmenter = Segmenter(network, ["salinet", "desalinet", GAUSSIAN])
    tiles = []
    for stem in stems:
        result = segmenter(folder / "images" / f"{stem}.png")
        truth = np.asarray(Image.open(folder / "masks" / f"{stem}.png")) > 0
        tiles.append(overlay(result.photo, truth))
        for method in segmenter.methods:
            shown = pictures(result, method)
            tiles += ([] if method == GAUSSIAN else [shown["saliency"]]) + [shown["overlay"]]
    titles = ["photo, truth", "SaliNet map", "SaliNet mask", "DeSaliNet map", "DeSaliNet mask", "Gaussian mask"]
    save_png(grid(tiles, len(titles), [""] * len(tiles), titles), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    p = commands.add_parser("train", help="train the classifier, save its weights")
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--untrained", action="store_true", help="save the seeded initialisation only")
    p = commands.add_parser("photos", help="write photos, masks and classes.csv")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("-n", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.command is None:
        experiment()
    elif args.command == "train":
        result = train(args.weights, seed=args.seed, steps=args.steps, untrained=args.untrained)
        print(f"held-out accuracy {result['accuracy']:.1%}, {result['seconds']:.0f} s -> {args.weights}")
    else:
        make_photos(args.out, args.n, seed=args.seed)
        print(f"{args.n} photos -> {args.out}")


if __name__ == "__main__":
    main()
