"""`reversenet segment` and `reversenet evaluate`: foreground masks from saliency maps, and
their scores against ground truth (the paper's Sect. 3.5 and Table 1)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..apps.seeds import Seeds
from ..choices import EVALUATE_METHODS, SEGMENT_METHODS
from ..errors import ReversenetError
from ..tables import plural
from .common import (
    console,
    force_option,
    images_option,
    model_options,
    out_option,
    photos,
    progress,
    show,
    spec,
    summary,
)

_LAYER = "Layer to reverse from. Default: the network's output (fc8), run fully convolutionally."
_SELECT = "What to reverse: objectness (the top class's positive scores, the paper's Sect. 3.5) or any selector of visualize."
_KEYS = ("foreground", "background", "sure_foreground", "sure_background", "iterations")


def seed_options(fn: Callable) -> Callable:
    """--layer, --select, --size and GrabCut's seeds."""
    default = Seeds()
    options = [
        click.option("--layer", "-l", default=None, help=_LAYER),
        click.option("--select", "-s", default="objectness", show_default=True, help=_SELECT),
        click.option("--size", default=256, show_default=True, type=click.IntRange(1),
                     help="Resize each photo so that its shorter side is this many pixels (bicubic, no crop)."),
        click.option("--foreground", default=default.foreground, show_default=True, type=click.FloatRange(0, 1),
                     help="Quantile of the saliency map above which pixels seed GrabCut as probable foreground."),
        click.option("--background", default=default.background, show_default=True, type=click.FloatRange(0, 1),
                     help="Quantile below which pixels seed it as probable background."),
        click.option("--sure-foreground", default=default.sure_foreground, show_default=True,
                     type=click.FloatRange(0, 1), help="Quantile above which pixels are fixed as foreground."),
        click.option("--sure-background", default=default.sure_background, show_default=True,
                     type=click.FloatRange(0, 1), help="Quantile below which pixels are fixed as background."),
        click.option("--iterations", default=default.iterations, show_default=True, type=click.IntRange(1),
                     help="GrabCut iterations."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def _segmenting(options: dict[str, Any]) -> dict[str, Any]:
    """The segmentation keywords of a command's options: layer, select, size and the seeds."""
    return {"layer": options.pop("layer"), "select": options.pop("select"), "size": options.pop("size"),
            "seeds": Seeds(*(options.pop(k) for k in _KEYS))}  # fmt: skip


@click.command()
@model_options
@click.option("--variant", "-v", "methods", multiple=True, default=list(SEGMENT_METHODS), show_default=True,
              help="Variant name, 'all', a YAML file, or 'gaussian' (the fixed baseline map); repeatable.")
@images_option
@out_option("Folder for the masks, saliency maps, overlays and their manifest.jsonl.")
@seed_options
@force_option
def segment(methods: tuple[str, ...], image_specs: tuple[str, ...], out: Path, force: bool, **options: Any) -> None:
    """Foreground masks: a reversed network's saliency map seeds GrabCut (the paper's Sect. 3.5).

    Per photo and variant: <photo>_<model>_<layer>_<variant>-mask.png (0/255, the photo's
    size), -saliency.png and -overlay.png (the photo as the network saw it). A rerun
    skips photos whose files are current.

    \b
    Examples:
      reversenet segment --weights random
      reversenet segment -m alexnet -w random -v salinet -v desalinet -v gaussian -i photos/
    """
    from ..apps.segmentation import segment as segment_photos

    network, images = spec(options), photos(image_specs)
    with progress("segment") as update:
        result = segment_photos(images, network, out=out, methods=methods, force=force, **_segmenting(options),
                                progress=lambda done, total: update("segmenting", done, total))  # fmt: skip
    summary(result)


@click.command()
@model_options
@click.option("--image", "-i", "images_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder of photos.")
@click.option("--masks", "masks_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder of ground-truth masks: <stem>.png, or <stem>_1.png, <stem>_2.png, ... (the best counts).")
@click.option("--classes", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CSV of stem,class lines. Default: classes.csv in --image or --masks, if any.")
@click.option("--variant", "-v", "methods", multiple=True, default=list(EVALUATE_METHODS), show_default=True,
              help="Variant name, 'all' or a YAML file; repeatable. The Gaussian baseline always runs.")
@seed_options
@out_option("Folder for results.csv (per image and method), summary.csv, problems.csv and evaluation.json.")
@force_option
def evaluate(images_dir: Path, masks_dir: Path, classes: Path | None, methods: tuple[str, ...], out: Path, force: bool,
             **options: Any) -> None:  # fmt: skip
    """Score saliency-seeded GrabCut masks against ground truth, as the paper's Table 1.

    Per-pixel accuracy (PP) and IoU in percent, per method: the variants asked and the
    Gaussian baseline. Photos or masks that cannot be scored are listed and make the
    exit status 1, after the others are scored. A rerun with the same network, photos,
    masks and options finds the results current and scores nothing again.

    \b
    Examples:
      reversenet evaluate -w random -i photos/ --masks masks/
      reversenet evaluate -m alexnet -i imagenet/images --masks imagenet/masks -o table1/
    """
    from ..apps.evaluation import evaluate as score

    network = spec(options)
    with progress("evaluate") as update:
        result = score(images_dir, masks_dir, network, out=out, methods=methods, classes=classes, force=force,
                       **_segmenting(options), progress=lambda done, total: update("evaluating", done, total))  # fmt: skip
    for note in result.notes[:5]:
        console.print(f"[yellow]note:[/] {note}")
    if len(result.notes) > 5:
        console.print(f"[yellow]note:[/] ... and {len(result.notes) - 5} more")
    show(result.table(str(masks_dir)))
    files = f"{out / 'results.csv'} and {out / 'summary.csv'}"
    console.print(f"{files} are current: skipped (--force redoes them)" if result.current else f"wrote {files}")
    for problem in result.problems[:20]:
        console.print(f"not scored: {problem['image']}: {problem['problem']}")
    if result.problems:
        more = f" ({len(result.problems) - 20} more)" if len(result.problems) > 20 else ""
        raise ReversenetError(f"{plural(len(result.problems), 'photo or mask', 'photos or masks')} could not be scored{more}, the others are; "
                              f"see {out / 'problems.csv'}")  # fmt: skip
