"""Try every torchvision classification model: does it trace, does it reverse with the
built-in variants, or only with ``fallback: bp``, and is SaliNet the gradient?

    python benchmarks/zoo.py [--size 224] [--only resnet18,vgg16] [--out zoo.md]

Random weights (seeded), one 224×224 input. The gradient oracle is autograd through
the same torch.fx graph, run by torch.fx's Interpreter; the error is relative (L2).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import click
import torch
from rich.console import Console
from rich.table import Table
from torch.fx import GraphModule, Interpreter

import reversenet
from reversenet.errors import ReversenetError
from reversenet.models import load_network, torchvision_names
from reversenet.variants import parse_variant

SALINET_BP = parse_variant(
    "rules: {ReLU: bp, MaxPool2d: switches, LocalResponseNorm: bp}\nfallback: bp\n", "salinet+bp", "zoo"
)


class _Stop(Exception):
    pass


def gradient(graph, x: torch.Tensor, target, signal: torch.Tensor) -> torch.Tensor:
    """d<signal, layer output>/dx by autograd, running the fx graph up to `target`."""
    captured = {}

    class UpTo(Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n is target:
                captured["y"] = out
                raise _Stop
            return out

    x = x.clone().requires_grad_(True)
    try:
        UpTo(GraphModule(graph.model, graph.fx)).run(x)
    except _Stop:
        pass
    return torch.autograd.grad(captured["y"], x, signal)[0]


def survey(name: str, size: int) -> dict[str, str]:
    row = {"model": name}
    start = time.perf_counter()
    try:
        net = load_network(name, "random", seed=0)
        row["params"] = f"{sum(p.numel() for p in net.module.parameters()) / 1e6:.1f}M"
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        try:
            rec = reversenet.Recording(net.module, x, layer="output", variants=reversenet.VARIANTS)
            row["built-in variants"], variant = "yes", "salinet"
        except ReversenetError as exc:
            row["built-in variants"] = "no: " + str(exc).split(";")[0].removeprefix("no reverse rule for ")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rec = reversenet.Recording(net.module, x, layer="output", variants=[SALINET_BP])
            row["fallback bp layers"] = str(len(caught))
            variant = SALINET_BP
        signal = rec.select("max")[0]
        ours = rec.reverse(signal, variant)
        expected = gradient(rec.graph, x, rec.target, signal)
        if expected.norm() > 0:
            row["salinet vs autograd"] = f"{float((ours - expected).norm() / expected.norm()):.1e}"
        else:  # e.g. ViT's head starts at zero: no gradient to compare
            row["salinet vs autograd"] = "both 0" if ours.norm() == 0 else f"0 vs {float(ours.norm()):.1e}"
    except ReversenetError as exc:
        row.setdefault("built-in variants", "no: " + str(exc))
    except Exception as exc:  # noqa: BLE001  (a survey: report, go on)
        row["built-in variants"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    row["seconds"] = f"{time.perf_counter() - start:.1f}"
    return row


@click.command()
@click.option("--size", default=224, show_default=True)
@click.option("--only", default="", help="Comma-separated model names (default: all).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write a Markdown table.")
def main(size: int, only: str, out: Path | None) -> None:
    warnings.simplefilter("ignore")
    torch.set_grad_enabled(True)
    names = only.split(",") if only else torchvision_names()
    columns = ["model", "params", "built-in variants", "fallback bp layers", "salinet vs autograd", "seconds"]
    rows = []
    console = Console()
    for name in names:
        rows.append(survey(name, size))
        console.print(" | ".join(rows[-1].get(c, "") for c in columns))
    table = Table(*columns, title=f"torchvision classifiers, random weights, 1×3×{size}×{size}")
    for row in rows:
        table.add_row(*(row.get(c, "") for c in columns))
    console.print(table)
    if out:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows]
        out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
