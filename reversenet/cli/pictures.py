"""`reversenet visualize` and `reversenet compare`: pictures of a layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import (
    force_option,
    images_option,
    model_options,
    out_option,
    photos,
    progress,
    reverse_options,
    spec,
    summary,
)


@click.command()
@model_options
@reverse_options
@click.option("--variant", "-v", "variant_names", multiple=True, default=["desalinet"], show_default=True,
              help="Built-in variant name (NAME+bp: with fallback: bp, for any network), 'all' (the eight), "
                   "or a YAML file; repeat for several (one forward pass).")  # fmt: skip
@images_option
@out_option("Folder for the PNGs and their manifest.jsonl.")
@click.option("--raw", is_flag=True, help="Also save each float result as .npy.")
@force_option
def visualize(layer: str | None, select: str, how: str, variant_names: tuple[str, ...], image_specs: tuple[str, ...],
              out: Path, raw: bool, force: bool, **options: Any) -> None:  # fmt: skip
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
    from ..output import batch
    from ..output.config import load_config

    network = spec(options)
    values = {"images": list(image_specs) or None, "model": network.model, "weights": network.weights,
              "seed": network.seed, "layers": layer and [layer], "variants": list(variant_names), "select": select,
              "render": how, "raw": raw, "device": network.device, "out": str(out), "report": False}  # fmt: skip
    with progress("visualize") as update:
        result = batch.run(load_config(values, source=""), force=force, progress=update)
    summary(result)


@click.command()
@model_options
@reverse_options
@images_option
@out_option("Folder for the grids (named <photo>_<model>_<layer>_compare.png), or a .png file for one grid.")
@click.option("--bp", "fallback", is_flag=True,
              help="The eight variants with fallback: bp (NAME+bp): layers without a rule (SiLU, ...) backpropagated exactly.")
@force_option
def compare(layer: str | None, select: str, how: str, image_specs: tuple[str, ...], out: Path, fallback: bool,
            force: bool, **options: Any) -> None:  # fmt: skip
    """All eight variants of a photo in a labelled 2×4 grid (the paper's Fig. 3), a grid
    per photo and per signal (topk:3 gives three, numbered -1 … -3).

    \b
    Examples:
      reversenet compare --weights random
      reversenet compare -m alexnet -w random -l pool5 -i photo.jpg -o fig3.png
      reversenet compare -w random -i photos/ --select topk:2 -o grids/
      reversenet compare -w random -m efficientnet_b0 --bp
    """
    from ..apps.compare import save_compare

    network = spec(options)
    images = photos(image_specs)
    summary(save_compare(network.load(), images, spec=network, layer=layer, select=select, how=how, out=out,
                         fallback=fallback, force=force))  # fmt: skip
