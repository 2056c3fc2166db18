"""Neuron selectivity (the paper's Fig. 4): how much a photo's reversed images depend on the
neuron chosen, per photo (a metric file) and averaged over a run's photos (a table)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .files import csv_text

TITLE = "Neuron selectivity (Fig. 4): correlation between the images of different selectors, mean over photos"


def score(results: dict[str, Tensor]) -> dict[str, Any]:
    """The Pearson correlation of every pair of selectors' images (a selector of K neurons:
    each image), and their mean. `results` maps a selector to one photo's images (K, C, H, W)."""
    images = {
        (name if len(r) == 1 else f"{name}#{k + 1}"): r[k].double().flatten()
        for name, r in results.items() for k in range(len(r))
    }  # fmt: skip
    pairs = {}
    for (a, u), (b, v) in itertools.combinations(images.items(), 2):
        r = torch.corrcoef(torch.stack([u, v]))[0, 1].item()
        pairs[f"{a}~{b}"] = None if math.isnan(r) else r  # NaN: a constant image
    values = [r for r in pairs.values() if r is not None]
    return {"pairs": pairs, "mean": sum(values) / len(values) if values else None}


def tables(rows: list[dict], out: Path) -> list[dict]:
    """Per model, layer and variant, each pair's correlation and their mean, averaged over the
    photos whose metric files `rows` records (in `out`)."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in (r for r in rows if r["kind"] == "metric"):
        groups.setdefault((r["model"], r["layer"], r["variant"]), []).append(json.loads((out / r["file"]).read_text()))
    if not groups:
        return []
    pairs = list(dict.fromkeys(k for scores in groups.values() for s in scores for k in s["pairs"]))
    table_rows = []
    for (model, layer, variant), scores in groups.items():
        means = [_mean([s["pairs"].get(pair) for s in scores]) for pair in pairs]
        table_rows.append([model, layer, variant, len(scores), *means, _mean([s["mean"] for s in scores])])
    columns = ["model", "layer", "variant", "photos", *pairs, "mean"]
    return [{"title": TITLE, "columns": columns, "rows": table_rows, "csv": "tables/selectivity.csv", "name": "selectivity"}]


def csv(table: dict) -> str:
    """A table as CSV, 6 decimals."""
    return csv_text(table["columns"], (dict(zip(table["columns"], row)) for row in table["rows"]), digits=6)


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None
