"""The `reversenet` command: a thin layer over the Python API."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import images
from .diff import diff_paths
from .errors import ReversenetError, first_line
from .graph import Graph
from .models import load_network
from .render import RENDERERS
from .rules import FAMILIES
from .selectors import parse_selector
from .variants import BUILTIN, load_variant
from .visualize import Job, bottleneck_report, compare_name
from .visualize import compare as compare_grid

console = Console(stderr=True)


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ReversenetError("--device cuda: no CUDA device is available (use --device cpu)")
    return name


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


@cli.command()
@model_options
@reverse_options
@click.option("--variant", "-v", "variant_names", multiple=True, default=["desalinet"], show_default=True,
              help="Built-in variant name, 'all' (the eight), or a YAML file; repeat for several (one forward pass).")
@click.option("--image", "-i", "image_specs", multiple=True,
              help="Image file, folder or glob; repeatable. Default: the bundled sample photo.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("reversenet-out"), show_default=True,
              help="Folder for the PNGs.")
@click.option("--raw", is_flag=True, help="Also save each float result as .npy.")
@click.option("--force", is_flag=True, help="Redo photos whose files all exist (by default they are skipped).")
def visualize(model, weights, seed, device, layer, select, how, variant_names, image_specs, out, raw, force) -> None:
    """Reverse a layer's activation to an image and save it as PNG.

    A run that stops half way keeps every finished file; run it again to do the rest.

    \b
    Examples:
      reversenet visualize --variant desalinet
      reversenet visualize --weights random -m alexnet -l conv5 -v deconvnet -v salinet
      reversenet visualize -w random -v all -i photos/ -i 'more/*.jpg' --select topk:4 --raw
      reversenet visualize -m vgg16 -w vgg16.pth -l fc8 --select class:tabby --render saliency
    """
    names = [n for name in variant_names for n in (BUILTIN if name == "all" else [name])]
    variants = [load_variant(v) for v in names]
    parse_selector(select)
    paths = images.find_images(image_specs) if image_specs else [images.sample_image()]
    images.writable_folder(out)
    network = load_network(model, weights, seed=seed, device=_device(device))
    job = Job(layer or network.default_layer, tuple(variants), select, how, raw)
    written = skipped = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=len(paths) < 2, transient=True) as progress:  # fmt: skip
        task = progress.add_task("reversing", total=len(paths))
        for path in paths:
            progress.update(task, description=path.name)
            if not force and all((out / n).exists() for n in job.names(network, path)):
                skipped += 1
            else:
                for name, array in job.run(network, path, seed):
                    (images.save_array if name.endswith(".npy") else images.save_png)(array, out / name)
                    written += 1
            progress.advance(task)
    done = f" ({skipped} photo{'s' * (skipped != 1)} already done: skipped, --force redoes them)" if skipped else ""
    console.print(f"wrote {written} file{'s' * (written != 1)} to {out}/{done}")


@cli.command()
@model_options
@reverse_options
@click.option("--image", "-i", "image_spec", default=None, help="Image file. Default: the bundled sample photo.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="PNG file. Default: reversenet-out/<image>_<model>_<layer>_compare.png")
def compare(model, weights, seed, device, layer, select, how, image_spec, out) -> None:
    """All eight variants of one image in a labelled 2×4 grid (the paper's Fig. 3).

    \b
    Examples:
      reversenet compare --weights random
      reversenet compare -m alexnet -w random -l pool5 -i photo.jpg -o fig3.png
    """
    parse_selector(select)
    path = images.find_images([image_spec])[0] if image_spec else images.sample_image()
    network = load_network(model, weights, seed=seed, device=_device(device))
    layer = layer or network.default_layer
    out = out or Path("reversenet-out") / compare_name(network, path, layer)
    images.writable_folder(out.parent)
    images.save_png(compare_grid(network, path, layer=layer, select=select, how=how, seed=seed), out)
    console.print(f"wrote {out}")


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
    for name in BUILTIN:
        v = load_variant(name)
        table.add_row(name, *(v.rules.get(f.name, "-") for f in choice_families), v.description)
    Console().print(table)
    Console().print("Families with a single rule (always used): "
                    + ", ".join(f"{f.name}: {f.default.name}" for f in FAMILIES.values() if f.default))  # fmt: skip


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
    graph = Graph(network.module, network.aliases)
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
    Console().print(table)


@cli.command()
@model_options
@click.option("--layer", "-l", default=None, help="Layer to reverse from. Default: the last feature map.")
@click.option("--variant", "-v", default="desalinet", show_default=True, help="Variant name or YAML file.")
def inspect(model, weights, seed, device, layer, variant) -> None:
    """The rule in force at every layer and the size of its bottleneck in bits,
    beside the size of the activation it stands for (float32).

    \b
    Examples:
      reversenet inspect --model vgg16 --weights random
      reversenet inspect -m resnet50 -w random -l layer4 -v salinet-center
    """
    load_variant(variant)
    network = load_network(model, weights, seed=seed, device=_device(device))
    rows = bottleneck_report(network, layer=layer or network.default_layer, variant=variant)
    table = Table(title=f"{model}, {rows.layer}, {variant}: the information bottleneck per image")
    for column in ("layer", "type", "rule", "bottleneck bits", "input activation bits"):
        table.add_column(column, justify="left" if column in ("layer", "type", "rule") else "right")
    for row in rows.rows:
        table.add_row(row.layer, row.kind, row.rule, f"{row.bits:,.0f}", f"{row.activation_bits:,.0f}")
    table.add_section()
    table.add_row("total", "", "", f"{rows.bits:,.0f}", f"{rows.activation_bits:,.0f}")
    Console().print(table)
    share = rows.bits / rows.activation_bits if rows.activation_bits else 0.0
    Console().print(
        f"bottleneck {rows.bits / 8 / 1024:,.1f} KiB = {share:.2%} "
        f"of the activations it stands for ({rows.activation_bits / 8 / 1024 ** 2:,.1f} MiB)"
    )


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
        verdict = d.problem or ("ok" if d.within(tolerance) else "differs")
        table.add_row(d.name, str(d.max_abs), f"{d.psnr:.1f}", f"{d.over:.2%}", verdict)
    Console().print(table)
    failed = sum(not d.within(tolerance) for d in results)
    if failed:
        where = f"; heat maps in {out}/" if out else ""
        console.print(f"{failed} of {len(results)} differ beyond tolerance {tolerance}{where}")
        sys.exit(1)


def main() -> None:
    """Entry point: errors become one line on stderr and an exit status (2 usage, 1 failure)."""
    args = sys.argv[1:]
    debug = "--debug" in args
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
