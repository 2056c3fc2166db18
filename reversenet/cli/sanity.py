"""`reversenet sanity`: the randomisation test of Adebayo et al."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..choices import SANITY_TESTS
from .common import console, force_option, images_option, model_options, out_option, progress, show, spec


@click.command()
@model_options
@click.option("--variant", "-v", "variant_names", multiple=True, default=["all"], show_default=True,
              help="Variant name, 'all' or a YAML file; repeatable. deconvnet-center (no bottleneck) always runs.")
@click.option("--layer", "-l", default=None, help="Layer to reverse from. Default: the network's output (the logits).")
@click.option("--select", "-s", default="max", show_default=True,
              help="Which neuron, chosen on the trained network (a selector of visualize).")
@click.option("--test", "tests", multiple=True, type=click.Choice(SANITY_TESTS), default=SANITY_TESTS,
              show_default=True, help="cascading (top layer down, cumulative) and/or independent (one layer at a time).")
@images_option
@out_option("Folder for sanity.png, sanity.csv (per photo), sanity-summary.csv and sanity.json.")
@force_option
def sanity(variant_names: tuple[str, ...], layer: str | None, select: str, tests: tuple[str, ...],
           image_specs: tuple[str, ...], out: Path, force: bool, **options: Any) -> None:  # fmt: skip
    """Does the picture depend on the weights? The randomisation test of Adebayo et al.

    Re-initialises the layers with parameters from the top down (and one at a time) and
    measures how much each variant's picture changes: Spearman rank correlation of |x|,
    SSIM of the per-pixel maps and the correlation of the sign patterns, against the
    trained network's pictures (1: unchanged). A rerun with the same network, photos and
    options finds the results current and computes nothing again.

    \b
    Examples:
      reversenet sanity -m vgg16 -w random
      reversenet sanity -m alexnet -v salinet -v desalinet --test cascading -i photos/
    """
    from ..apps.randomisation import sanity as randomise

    with progress("sanity") as update:
        result = randomise(spec(options), image_specs or None, variants=variant_names, layer=layer, select=select,
                           tests=tests, out=out, force=force,
                           progress=lambda done, total: update("randomising", done, total))  # fmt: skip
    for test in tests:
        show(result.table(test))
    files = ", ".join(str(out / name) for name in ("sanity.png", "sanity.csv", "sanity-summary.csv"))
    console.print(f"{files} are current: skipped (--force redoes them)" if result.current else f"wrote {files}")
