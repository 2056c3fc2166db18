"""Side-by-side timings: reversenet against plain autograd, in one run.

    python benchmarks/speed.py [--model vgg16] [--size 224] [--repeats 5] [--device cpu]

Each round runs every contender once, in turn (so load on a shared machine hits
them alike); the table shows medians over rounds and ratios to the autograd
gradient, which computes the same image as SaliNet.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import click
import torch
from rich.console import Console
from rich.table import Table

import reversenet
from reversenet.models import load_network


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def autograd_saliency(model: torch.nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The gradient of the most active neuron of `layer`, by autograd (the baseline)."""
    captured = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: captured.update(y=o))
    x = x.clone().requires_grad_(True)
    try:
        model(x)
    finally:
        handle.remove()
    y = captured["y"]
    flat = y.detach().flatten(1)
    e = torch.zeros_like(flat).scatter_(1, flat.argmax(1, keepdim=True), 1.0).view_as(y)
    return torch.autograd.grad(y, x, e)[0]


@click.command()
@click.option("--model", default="vgg16", show_default=True)
@click.option("--layer", default="features.30", show_default=True)
@click.option("--size", default=224, show_default=True)
@click.option("--repeats", default=5, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def main(model: str, layer: str, size: int, repeats: int, device: str) -> None:
    torch.set_grad_enabled(True)
    net = load_network(model, "random", device=device).module
    x = torch.randn(1, 3, size, size, device=device)
    rec = reversenet.record(net, x, layer=layer)
    signal = rec.select("max")

    contenders: dict[str, Callable[[], object]] = {
        "autograd gradient (forward + backward)": lambda: autograd_saliency(net, x, layer),
        "reversenet.reverse salinet (record + reverse)": lambda: reversenet.reverse(
            net, x, layer=layer, variant="salinet"
        ),
        "record, bottleneck for all 8 variants": lambda: reversenet.record(net, x, layer=layer),
        "reverse only, desalinet (recording reused)": lambda: rec.reverse(signal, "desalinet"),
        "8 variants: one record + 8 reverses": lambda: [
            r.reverse(r.select("max"), v) for r in [reversenet.record(net, x, layer=layer)] for v in reversenet.VARIANTS
        ],
        "8 x autograd gradient": lambda: [autograd_saliency(net, x, layer) for _ in range(8)],
    }
    for fn in contenders.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)

    base = statistics.median(times["autograd gradient (forward + backward)"])
    table = Table(title=f"{model} {layer}, 1×3×{size}×{size}, {device}, {torch.get_num_threads()} threads, "
                        f"median of {repeats}")  # fmt: skip
    for column in ("contender", "median s", "min s", "max s", "÷ autograd"):
        table.add_column(column, justify="left" if column == "contender" else "right")
    for name, samples in times.items():
        median = statistics.median(samples)
        table.add_row(name, f"{median:.3f}", f"{min(samples):.3f}", f"{max(samples):.3f}", f"{median / base:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
