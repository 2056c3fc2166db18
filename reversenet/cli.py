"""The `reversenet` command: a thin layer over the Python API."""

from __future__ import annotations

import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import torch
from click.core import ParameterSource
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .apps import evaluation as scoring
from .apps import randomisation, segmentation
from .apps.compare import grids_per_photo, save_compare
from .apps.inspect import bottleneck_report
from .apps.segmentation import METHODS, Seeds
from .core.rules import FAMILIES
from .core.variants import VARIANTS, expand, load_variant
from .diff import diff_paths, verdict
from .errors import ReversenetError, UsageError, first_line
from .inputs import images
from .inputs.models import load_network, pick_device
from .output import batch
from .output.config import RunConfig, load_config, parse_set, parse_shard
from .output.render import RENDERERS

console = Console(stderr=True)


images_option = click.option("--image", "-i", "image_specs", multiple=True,
                             help="Image file, folder or glob; repeatable. Default: the bundled sample photo.")
force_option = click.option("--force", is_flag=True, help="Recompute files that are current (by default they are skipped).")


def model_options(fn: Callable) -> Callable:
    """--model, --weights, --seed, --device."""
    options = [
        click.option("--model", "-m", default="vgg16", show_default=True,
                     help="torchvision model name, or package.module:factory for your own."),
        click.option("--weights", "-w", default="DEFAULT", show_default=True,
                     help="DEFAULT (torchvision's ImageNet weights), random, or a state_dict file."),
        click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**63 - 1),
                     help="Seed for --weights random and random selectors."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def reverse_options(fn: Callable) -> Callable:
    """--layer, --select, --render."""
    options = [
        click.option("--layer", "-l", default=None,
                     help="Module name (features.30, layer4), paper alias (pool5) or graph node. "
                          "Default: the last feature map before global pooling (pool5, layer4)."),
        click.option("--select", "-s", default="max", show_default=True,
                     help="max, neuron:C,Y,X, channel:C, topk:K, random, mixture, noise, full, class:I|NAME."),
        click.option("--render", "how", type=click.Choice(list(RENDERERS)), default="paper", show_default=True,
                     help="paper (footnote 4 sigmoid), gamma, minmax or saliency (heat map + overlay)."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="reversenet")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
def cli(debug: bool) -> None:
    """Reversed architectures of CNNs: DeConvNet, SaliNet, DeSaliNet and the five
    other variants of Mahendran & Vedaldi, "Salient deconvolutional networks"."""


def _show(table: Table) -> None:
    """A table on stdout: drawn by rich on a terminal; piped or redirected, its title as a
    `# ` line, then tab-separated lines with a header, nothing cut (names are what users
    copy into --layer)."""
    out = Console()
    if out.is_terminal:
        out.print(table)
        return
    if table.title:
        click.echo(f"# {table.title}")
    lines = zip(*([column.header, *column.cells] for column in table.columns))
    click.echo("\n".join("\t".join(str(cell) for cell in line) for line in lines))  # cells are plain text


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, disable=not enabled, transient=True)  # fmt: skip


def _run(config: RunConfig, **options: Any) -> batch.Result:
    """Run a config with a progress bar; report stray files and, at the end, failures."""
    with _progress(console.is_terminal) as progress:
        task = progress.add_task("planning", total=None)
        result = batch.run(config, progress=lambda what, done, total: progress.update(task, description=what,
                           completed=done, total=total), **options)  # fmt: skip
    for line in result.stray:
        console.print(f"[yellow]warning:[/] {line}", highlight=False)
    return result


def _summary(result: batch.Result) -> None:
    """One line on what was made; the failures, one line each, then exit 1 if any. A run
    that made nothing fails with its error alone."""
    failed = result.failed
    if failed and not (result.written or result.current):
        first = failed[0]["error"]
        raise ReversenetError(first if len(failed) == 1 else f"all {len(failed)} photos failed; the first: {first}")
    n, files = result.photos_current, result.current
    skipped = f" ({n} photo{'s' * (n != 1)} already done, {files} file{'s' * (files != 1)} current: skipped, --force redoes them)"
    console.print(f"wrote {result.written} file{'s' * (result.written != 1)} to {result.out}/"
                  + (skipped if files else ""), highlight=False)  # fmt: skip
    for failure in failed:
        console.print(f"failed: {failure['photo']} ({failure['model']}): {failure['error']}", highlight=False, soft_wrap=True)
    if failed:
        photos = len({f["photo"] for f in failed})
        raise ReversenetError(f"{photos} photo{'s' * (photos != 1)} failed, the others are done; see {result.out}/manifest.jsonl")


@cli.command()
@model_options
@reverse_options
@click.option("--variant", "-v", "variant_names", multiple=True, default=["desalinet"], show_default=True,
              help="Built-in variant name (NAME+bp: with fallback: bp, for any network), 'all' (the eight), "
                   "or a YAML file; repeat for several (one forward pass).")
@images_option
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("reversenet-out"), show_default=True,
              help="Folder for the PNGs and their manifest.jsonl.")
@click.option("--raw", is_flag=True, help="Also save each float result as .npy.")
@force_option
def visualize(model: str, weights: str, seed: int, device: str, layer: str | None, select: str, how: str,
              variant_names: tuple[str, ...], image_specs: tuple[str, ...], out: Path, raw: bool,
              force: bool) -> None:  # fmt: skip
    """Reverse a layer's activation to an image and save it as PNG.

    A rerun skips the files the manifest shows were made from the same photo with the same
    parameters; a run that stops half way keeps every finished file.

    \b
    Examples:
      reversenet visualize --variant desalinet
      reversenet visualize --weights random -m alexnet -l conv5 -v deconvnet -v salinet
      reversenet visualize -w random -v all -i photos/ -i 'more/*.jpg' --select topk:4 --raw
      reversenet visualize -m resnet18 -w resnet18.pth -l fc --select class:tabby --render saliency
    """
    values = {"images": list(image_specs) or None, "model": model, "weights": weights, "seed": seed,
              "layers": layer and [layer], "variants": list(variant_names), "select": select, "render": how,
              "raw": raw, "device": device, "out": str(out), "report": False}  # fmt: skip
    _summary(_run(load_config(values, source=""), force=force))


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, the value read as YAML: --set weights=random --set 'layers=[conv3, pool5]'.")
@click.option("--dry-run", is_flag=True, help="Print what would be computed, per model, layer, variant and selector.")
@force_option
@click.option("--shard", default=None, metavar="I/N",
              help="Compute the I-th of N shares (I from 0), e.g. in a job array; then run once with --merge.")
@click.option("--merge", is_flag=True, help="Merge the shards' manifests, draw the montages, tables and index.html.")
def run(config: Path, sets: tuple[str, ...], dry_run: bool, force: bool, shard: str | None,
        merge: bool) -> None:  # fmt: skip
    """Run a config: many photos, models, layers, variants and selectors, one forward pass per
    batch; a manifest, montages, tables and an index.html in the output folder.

    Launched by torchrun, each process takes its share of the photos. A rerun skips what is
    current; a killed run loses nothing finished.

    \b
    Examples:
      reversenet run fig3-eight-variants --set weights=random
      reversenet run my.yaml --set images=photos/ --dry-run
      torchrun --nproc_per_node 2 -m reversenet run my.yaml
      reversenet run my.yaml --shard 0/2
      reversenet run my.yaml --shard 1/2
      reversenet run my.yaml --merge
    """
    cfg = load_config(config, parse_set(sets))
    if dry_run:
        counts = batch.dry_run(cfg)
        table = Table("model", "layer", "variant", "select", "files", "current", "to compute",
                      title=f"{config}: {counts.photos} photos")  # fmt: skip
        for row in counts.rows:
            table.add_row(*row[:4], *(f"{v:,}" for v in row[4:]))
        _show(table)
        return
    if shard and merge:
        raise UsageError("--shard and --merge go in separate calls: each shard, then one --merge")
    result = _run(cfg, force=force, shard=parse_shard(shard) if shard else None, merge=merge)
    for t in result.tables:
        rows = [[f"{v:.3f}" if isinstance(v, float) else "" if v is None else str(v) for v in row] for row in t["rows"]]
        table = Table(*t["columns"], title=t["title"], title_justify="left")
        for cells in rows:
            table.add_row(*cells)
        widths = [max(len(c) for c in column) for column in zip(t["columns"], *rows)]
        Console(width=max(Console().width, sum(widths) + 3 * len(widths) + 1)).print(table)  # columns never cut
    if not result.finished:
        console.print(f"shard done; when all are, run: reversenet run {config} --merge", highlight=False)
    elif cfg.report and (result.out / "index.html").exists():
        console.print(f"report: {result.out / 'index.html'}", highlight=False)
    _summary(result)


@cli.command()
@model_options
@reverse_options
@images_option
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("reversenet-out"), show_default=True,
              help="Folder for the grids (named <photo>_<model>_<layer>_compare.png), or a .png file for one grid.")
@click.option("--bp", "fallback", is_flag=True,
              help="The eight variants with fallback: bp (NAME+bp): layers without a rule (SiLU, ...) backpropagated exactly.")
@force_option
def compare(model: str, weights: str, seed: int, device: str, layer: str | None, select: str, how: str,
            image_specs: tuple[str, ...], out: Path, fallback: bool, force: bool) -> None:  # fmt: skip
    """All eight variants of a photo in a labelled 2×4 grid (the paper's Fig. 3), a grid
    per photo and per signal (topk:3 gives three, numbered -1 … -3).

    \b
    Examples:
      reversenet compare --weights random
      reversenet compare -m alexnet -w random -l pool5 -i photo.jpg -o fig3.png
      reversenet compare -w random -i photos/ --select topk:2 -o grids/
      reversenet compare -w random -m efficientnet_b0 --bp
    """
    signals = grids_per_photo(select)
    photos = images.find_images(image_specs or [str(images.sample_image())])
    if out.suffix.lower() == ".png" and len(photos) * signals > 1:
        raise UsageError(f"-o {out} names one grid; give a folder for {len(photos)} photos or several signals")
    network = load_network(model, weights, seed=seed, device=pick_device(device))
    for path in photos:
        targets, fresh = save_compare(network, path, weights=weights, layer=layer, select=select, how=how, seed=seed,
                                      out=out, fallback=fallback, force=force)  # fmt: skip
        names = ", ".join(str(t) for t in targets)
        verb = "is" if len(targets) == 1 else "are"
        console.print(f"wrote {names}" if fresh else f"{names} {verb} current: skipped (--force redoes it)", highlight=False)


def seed_options(fn: Callable) -> Callable:
    """--size and GrabCut's seeds."""
    default = Seeds()
    options = [
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


def _seeds(options: dict) -> Seeds:
    return Seeds(*(options[k] for k in ("foreground", "background", "sure_foreground", "sure_background",
                                            "iterations")))  # fmt: skip


_SEGMENT_LAYER = "Layer to reverse from. Default: the network's output (fc8), run fully convolutionally."
_SEGMENT_SELECT = ("What to reverse: objectness (the top class's positive scores, the paper's Sect. 3.5) "
                   "or any selector of visualize.")  # fmt: skip


@cli.command()
@model_options
@click.option("--layer", "-l", default=None, help=_SEGMENT_LAYER)
@click.option("--select", "-s", default="objectness", show_default=True, help=_SEGMENT_SELECT)
@click.option("--variant", "-v", "methods", multiple=True, default=["salinet"], show_default=True,
              help="Variant name, 'all', a YAML file, or 'gaussian' (the fixed baseline map); repeatable.")
@images_option
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("reversenet-out"), show_default=True,
              help="Folder for the masks, saliency maps, overlays and their manifest.jsonl.")
@seed_options
@force_option
def segment(model: str, weights: str, seed: int, device: str, layer: str | None, select: str,
            methods: tuple[str, ...], image_specs: tuple[str, ...], out: Path, force: bool,
            **options: Any) -> None:  # fmt: skip
    """Foreground masks: a reversed network's saliency map seeds GrabCut (the paper's Sect. 3.5).

    Per photo and variant: <photo>_<model>_<layer>_<variant>-mask.png (0/255, the photo's
    size), -saliency.png and -overlay.png (the photo as the network saw it). A rerun
    skips photos whose files are current.

    \b
    Examples:
      reversenet segment --weights random
      reversenet segment -m alexnet -w random -v salinet -v desalinet -v gaussian -i photos/
    """
    photos = images.find_images(image_specs or [str(images.sample_image())])
    with _progress(console.is_terminal) as progress:
        task = progress.add_task("segmenting", total=len(photos))
        rows = segmentation.segment(photos, model, weights=weights, device=pick_device(device), methods=methods, out=out, layer=layer,
                                    select=select, size=options["size"], seeds=_seeds(options), seed=seed, force=force,
                                    progress=lambda done, total: progress.update(task, completed=done))  # fmt: skip
    written = [r for r in rows if r.get("kind") != "failed"]
    failed = [r for r in rows if r.get("kind") == "failed"]
    current = len(photos) - len({r["photo"] for r in rows})
    skipped = f" ({current} photo{'s' * (current != 1)} current: skipped, --force redoes them)" if current else ""
    console.print(f"wrote {len(written)} file{'s' * (len(written) != 1)} to {out}/{skipped}", highlight=False)
    for failure in failed:
        console.print(f"failed: {failure['photo']}: {failure['error']}", highlight=False, soft_wrap=True)
    if failed and not written and not current:
        raise ReversenetError(failed[0]["error"])
    if failed:
        raise ReversenetError(f"{len(failed)} photo{'s' * (len(failed) != 1)} failed, the others are done")


@cli.command()
@model_options
@click.option("--images", "images_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder of photos.")
@click.option("--masks", "masks_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder of ground-truth masks: <stem>.png, or <stem>_1.png, <stem>_2.png, ... (the best counts).")
@click.option("--classes", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CSV of stem,class lines. Default: classes.csv in --images or --masks, if any.")
@click.option("--variant", "-v", "methods", multiple=True, default=list(METHODS), show_default=True,
              help="Variant name, 'all' or a YAML file; repeatable. The Gaussian baseline always runs.")
@click.option("--layer", "-l", default=None, help=_SEGMENT_LAYER)
@click.option("--select", "-s", default="objectness", show_default=True, help=_SEGMENT_SELECT)
@seed_options
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("reversenet-out"), show_default=True,
              help="Folder for results.csv (per image and method), summary.csv and problems.csv.")
def evaluate(model: str, weights: str, seed: int, device: str, images_dir: Path, masks_dir: Path,
             classes: Path | None, methods: tuple[str, ...], layer: str | None, select: str, out: Path,
             **options: Any) -> None:  # fmt: skip
    """Score saliency-seeded GrabCut masks against ground truth, as the paper's Table 1.

    Per-pixel accuracy (PP) and IoU in percent, per method: the variants asked and the
    Gaussian baseline. Photos or masks that cannot be scored are listed and make the
    exit status 1, after the others are scored.

    \b
    Examples:
      reversenet evaluate -w random --images photos/ --masks masks/
      reversenet evaluate -m alexnet --images imagenet/images --masks imagenet/masks -o table1/
    """
    with _progress(console.is_terminal) as progress:
        task = progress.add_task("evaluating", total=None)
        result = scoring.evaluate(images_dir, masks_dir, model, weights=weights, device=pick_device(device), methods=methods, classes=classes, out=out,
                                  layer=layer, select=select, size=options["size"], seeds=_seeds(options), seed=seed,
                                  progress=lambda done, total: progress.update(task, completed=done, total=total))  # fmt: skip
    for note in result.notes[:5]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if len(result.notes) > 5:
        console.print(f"[yellow]note:[/] ... and {len(result.notes) - 5} more", highlight=False)
    summary = result.summary()
    by_class = any("classes" in line for line in summary)
    table = Table("method", "network", "PP", "IoU", "images", title=f"{result.network}: {masks_dir}")
    if by_class:
        for header in ("PP (class mean)", "IoU (class mean)", "classes"):
            table.add_column(header, justify="right")
    for line in summary:
        cells = [line["method"], line["network"], f"{line['pp']:.2f}", f"{line['iou']:.2f}", str(line["images"])]
        if by_class:
            cells += [f"{line['pp_class']:.2f}", f"{line['iou_class']:.2f}", str(line["classes"])]
        table.add_row(*cells)
    _show(table)
    console.print(f"wrote {out / 'results.csv'} and {out / 'summary.csv'}", highlight=False)
    for problem in result.problems[:20]:
        console.print(f"not scored: {problem['image']}: {problem['problem']}", highlight=False, soft_wrap=True)
    if result.problems:
        more = f" ({len(result.problems) - 20} more)" if len(result.problems) > 20 else ""
        raise ReversenetError(f"{len(result.problems)} photos or masks could not be scored{more}, the others are; "
                              f"see {out / 'problems.csv'}")  # fmt: skip


@cli.command()
@model_options
@click.option("--variant", "-v", "variant_names", multiple=True, default=["all"], show_default=True,
              help="Variant name, 'all' or a YAML file; repeatable. deconvnet-center (no bottleneck) always runs.")
@click.option("--layer", "-l", default=None, help="Layer to reverse from. Default: the network's output (the logits).")
@click.option("--select", "-s", default="max", show_default=True,
              help="Which neuron, chosen on the trained network (a selector of visualize).")
@click.option("--test", "tests", multiple=True, type=click.Choice(randomisation.TESTS), default=randomisation.TESTS,
              show_default=True, help="cascading (top layer down, cumulative) and/or independent (one layer at a time).")
@images_option
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("reversenet-out"), show_default=True,
              help="Folder for sanity.png, sanity.csv (per photo) and sanity-summary.csv.")
def sanity(model: str, weights: str, seed: int, device: str, variant_names: tuple[str, ...],
           layer: str | None, select: str, tests: tuple[str, ...], image_specs: tuple[str, ...],
           out: Path) -> None:  # fmt: skip
    """Does the picture depend on the weights? The randomisation test of Adebayo et al.

    Re-initialises the layers with parameters from the top down (and one at a time) and
    measures how much each variant's picture changes: Spearman rank correlation of |x|,
    SSIM of the per-pixel maps and the correlation of the sign patterns, against the
    trained network's pictures (1: unchanged).

    \b
    Examples:
      reversenet sanity -m vgg16 -w random
      reversenet sanity -m alexnet -v salinet -v desalinet --test cascading -i photos/
    """
    with _progress(console.is_terminal) as progress:
        task = progress.add_task("randomising", total=None)
        result = randomisation.sanity(model, image_specs or None, weights=weights, variants=variant_names, layer=layer,
                                      select=select, tests=tests, seed=seed, device=pick_device(device),
                                      progress=lambda done, total: progress.update(task, completed=done, total=total))  # fmt: skip
    written = result.save(out)
    for test in tests:
        headers, rows = result.table(test)
        table = Table(title=f"{result.network}, {test} randomisation: Spearman rank correlation with the trained "
                            "network's pictures")  # fmt: skip
        for header in headers:
            table.add_column(header, overflow="fold")  # layer and variant names are never cut
        for row in rows:
            table.add_row(*row)
        _show(table)
    console.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False)


@cli.command()
def variants() -> None:
    """List the built-in variants and the rule each picks per layer family.

    \b
    Example:
      reversenet variants
    """
    choice_families = [f for f in FAMILIES.values() if len(f.rules) > 1]
    table = Table()
    for header in ["variant", *(f"{f.name}†" for f in choice_families)]:
        table.add_column(header, no_wrap=True)
    table.add_column("what it is")
    for name in VARIANTS:
        v = load_variant(name)
        table.add_row(name, *(v.rules.get(f.name, "-") for f in choice_families), v.description)
    _show(table)
    console.print("Families with a single rule (always used): "
                  + ", ".join(f"{f.name}: {f.default.name}" for f in FAMILIES.values() if f.default), highlight=False)  # fmt: skip


@cli.command()
@click.option("--model", "-m", default="vgg16", show_default=True,
              help="torchvision model name, or package.module:factory.")  # fmt: skip
def layers(model: str) -> None:
    """List a model's layers: names, aliases and the containers that end there
    (all usable as --layer), types and output shapes.

    \b
    Example:
      reversenet layers --model vgg16
    """
    network = load_network(model, "random")
    graph = network.graph()
    size = network.input_size
    shapes = graph.shapes(torch.zeros(1, 3, *size))
    alias_of = {v: k for k, v in network.aliases.items()}
    table = Table("layer", "also", "type", "output shape", title=f"{model}, input 3×{size[0]}×{size[1]}")
    for step in graph.path(graph.resolve("output")):
        name = graph.unique_name(step.node)
        also = [alias_of[name]] if name in alias_of else []
        also += [c for c in graph.containers_ending_at(step.node) if c != name]
        shape = "×".join(map(str, shapes.get(step.node.name, ())))
        table.add_row(name, ", ".join(also), step.kind, shape)
    _show(table)


@cli.command()
@model_options
@click.option("--layer", "-l", default=None, help="Layer to reverse from. Default: the last feature map.")
@click.option("--variant", "-v", "variant_names", multiple=True, default=["desalinet"], show_default=True,
              help="Variant name, 'all' or a YAML file; repeatable (a table each).")
def inspect(model: str, weights: str, seed: int, device: str, layer: str | None,
            variant_names: tuple[str, ...]) -> None:  # fmt: skip
    """The rule in force at every layer, its bottleneck in bits (information) and in
    bytes (memory held), beside the activation bytes autograd saves there for backward
    (measured; a tensor saved by several layers counts at the first). None of it depends
    on the weights: random ones are used unless --weights is given.

    \b
    Examples:
      reversenet inspect --model vgg16
      reversenet inspect -m resnet50 -l layer4 -v salinet-center -v desalinet
    """
    if click.get_current_context().get_parameter_source("weights") is ParameterSource.DEFAULT:
        weights = "random"  # sizes only: no download needed
    variants = [load_variant(v) for v in expand(variant_names)]
    network = load_network(model, weights, seed=seed, device=pick_device(device))
    for variant in variants:
        rows = bottleneck_report(network, layer=layer or network.default_layer, variant=variant)
        table = Table(title=f"{model}, {rows.layer}, {variant.name}: the information bottleneck per image")
        for column in ("layer", "type", "rule", "bottleneck bits", "bytes held", "autograd bytes"):
            table.add_column(column, justify="left" if column in ("layer", "type", "rule") else "right")
        numbers = lambda r: [f"{v:,.0f}" for v in (r.bits, r.bytes, r.autograd_bytes)]  # a row, or the total
        for row in rows.rows:
            table.add_row(row.layer, row.kind, row.rule, *numbers(row))
        table.add_section()
        table.add_row("total", "", "", *numbers(rows))
        _show(table)
        share = rows.bytes / rows.autograd_bytes if rows.autograd_bytes else 0.0
        console.print(
            f"{variant.name}: bottleneck held in {rows.bytes / 1024:,.1f} KiB = {share:.2%} of the "
            f"{rows.autograd_bytes / 1024**2:,.1f} MiB autograd saves for backward "
            f"(information: {rows.bits / 8 / 1024:,.1f} KiB)", highlight=False,
        )  # fmt: skip


@cli.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--tolerance", "-t", default=0, show_default=True, type=click.IntRange(0, 255),
              help="Largest |A − B| (8-bit levels) that still counts as equal.")
@click.option("--threshold", default=0, show_default=True, type=click.IntRange(0, 255),
              help="Pixels differing by more than this are counted in 'over'.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Folder for a heat map of |A − B| per differing pair.")
def diff(a: Path, b: Path, tolerance: int, threshold: int, out: Path | None) -> None:
    """Compare two images, or two folders of images paired by relative path.

    Exit status: 0 when every pair is within --tolerance, 1 when not, 2 on bad input.

    \b
    Examples:
      reversenet diff out/ tests/golden/vgg16 --tolerance 2 --out diffs/
      reversenet diff a.png b.png
    """
    results = diff_paths(a, b, threshold=threshold, out=out)
    table = Table("image", "max |A−B|", "PSNR dB", f"share > {threshold}", "", title=f"{a} vs {b}")
    for d in results:
        table.add_row(*d.row(tolerance))
    _show(table)
    ok, line = verdict(results, tolerance)
    console.print(line + (f"; heat maps in {out}/" if out and not ok else ""), highlight=False)
    if not ok:
        sys.exit(1)


def main() -> None:
    """Entry point: errors become one line on stderr and an exit status (2 usage, 1 failure)."""
    args = sys.argv[1:]
    debug = "--debug" in args
    # SIGTERM (a scheduler's stop) unwinds like Ctrl-C: the file being written is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if not debug:  # a warning is one line, without the source line Python adds
        warnings.showwarning = lambda message, *rest: print(f"warning: {message}", file=sys.stderr)
    try:  # --debug is taken anywhere on the line, not only before the command
        cli.main(args=[a for a in args if a != "--debug"], prog_name="reversenet", standalone_mode=False)
    except click.exceptions.Abort:
        console.print("aborted")
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare `reversenet`: its help
        print(exc.ctx.get_help() if exc.ctx else exc.format_message())
        sys.exit(0)
    except click.ClickException as exc:
        if debug:
            raise
        print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(2)
    except ReversenetError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug or an unforeseen failure: still one line
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {first_line(exc)} (rerun with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
