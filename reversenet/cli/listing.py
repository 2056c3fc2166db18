"""`reversenet variants`, `reversenet layers` and `reversenet inspect`: what there is to reverse."""

from __future__ import annotations

from typing import Any

import click

from .common import console, model_options, show, spec


@click.command()
def variants() -> None:
    """List the built-in variants and the rule each picks per layer family.

    \b
    Example:
      reversenet variants
    """
    from ..core.variants import table

    listing, single = table()
    show(listing)
    console.print(single)


@click.command()
@model_options(weights="random")
def layers(**options: Any) -> None:
    """List a model's layers: names, aliases and the containers that end there
    (all usable as --layer), types and output shapes. Their names do not depend on the
    weights: random ones are used unless --weights is given.

    \b
    Example:
      reversenet layers --model vgg16
    """
    from ..inputs.models import layer_table

    show(layer_table(spec(options).load()))


@click.command()
@model_options(weights="random")
@click.option("--layer", "-l", default=None, help="Layer to reverse from. Default: the last feature map.")
@click.option("--variant", "-v", "variant_names", multiple=True, default=["desalinet"], show_default=True,
              help="Variant name, 'all' or a YAML file; repeatable (a table each).")
def inspect(layer: str | None, variant_names: tuple[str, ...], **options: Any) -> None:
    """The rule in force at every layer, its bottleneck in bits (information) and in
    bytes (memory held), beside the activation bytes autograd saves there for backward
    (measured; a tensor saved by several layers counts at the first). None of it depends
    on the weights: random ones are used unless --weights is given.

    \b
    Examples:
      reversenet inspect --model vgg16
      reversenet inspect -m resnet50 -l layer4 -v salinet-center -v desalinet
    """
    from ..apps.inspect import bottleneck_report
    from ..core.variants import expand, load_variant

    variants = [load_variant(v) for v in expand(variant_names)]
    network = spec(options).load()
    for variant in variants:
        report = bottleneck_report(network, layer=layer or network.default_layer, variant=variant)
        show(report.table())
        console.print(report.summary())
