"""The paper's Table 1 on the dataset of Guillaumin et al. (4,276 ImageNet images with
foreground masks), with torchvision's pretrained AlexNet and VGG-16, beside the paper's
numbers. Needs the weights (downloaded once by torch.hub) and the dataset on disk:

    python benchmarks/table1.py --images DATA/images --masks DATA/masks [--device cuda]

Photos and masks pair by file stem (n01443537_10007.JPEG with n01443537_10007.png). The
class of a photo is its ImageNet synset, the stem before '_', unless a classes.csv says
otherwise; the means are over classes of the per-class means, as in the paper.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

import reversenet
from reversenet.choices import EVALUATE_METHODS as METHODS
from reversenet.choices import GAUSSIAN
from reversenet.inputs.images import find_images
from reversenet.output.files import save_text

# Table 1 of Mahendran & Vedaldi (ECCV 2016): (method, network) -> (PP, IoU)
PAPER = {
    ("salinet", "alexnet"): (82.82, 57.07), ("desalinet", "alexnet"): (82.31, 55.57),
    ("deconvnet", "alexnet"): (75.85, 48.26), ("salinet", "vgg16"): (82.45, 56.33),
    ("desalinet", "vgg16"): (83.29, 56.25), ("deconvnet", "vgg16"): (76.52, 48.16),
    (GAUSSIAN, ""): (78.97, 46.27),
}  # fmt: skip


def synsets(images: Path, out: Path) -> Path:
    """A classes.csv of each photo's ImageNet synset (its stem before the first '_')."""
    lines = [f"{p.stem},{p.stem.split('_')[0]}\n" for p in find_images([str(images)])]
    save_text("stem,class\n" + "".join(lines), out / "classes.csv")
    return out / "classes.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--masks", type=Path, required=True)
    parser.add_argument("--classes", type=Path, default=None, help="Default: the synset of each stem.")
    parser.add_argument("--models", nargs="+", default=["alexnet", "vgg16"])
    parser.add_argument("--weights", default="DEFAULT")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("reversenet-out/table1"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    classes = args.classes or synsets(args.images, args.out)
    lines = {}
    for model in args.models:
        result = reversenet.evaluate(args.images, args.masks, model, weights=args.weights, device=args.device,
                                     methods=METHODS, classes=classes, out=args.out / model)  # fmt: skip
        for line in result.summary():
            lines[(line["method"], line["network"])] = line
        if result.problems:
            Console(stderr=True).print(f"{model}: {len(result.problems)} not scored, see {args.out / model}/problems.csv")
    table = Table("method", "CNN", "PP", "IoU", "paper PP", "paper IoU", "images", "classes",
                  title="Table 1: mean over classes of the per-class means")  # fmt: skip
    for (method, network), line in lines.items():
        paper = PAPER.get((method, network), (float("nan"),) * 2)
        table.add_row(method, network or "-", f"{line['pp_class']:.2f}", f"{line['iou_class']:.2f}",
                      f"{paper[0]:.2f}", f"{paper[1]:.2f}", str(line["images"]), str(line["classes"]))  # fmt: skip
    table.add_row("Guillaumin et al.", "-", "", "", "84.40", "57.30", "", "")
    Console().print(table)


if __name__ == "__main__":
    main()
