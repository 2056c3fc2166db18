"""What a run draws from its outputs at the end: labelled montages over any two axes, and the
neuron-selectivity table of the paper's Fig. 4.

Axes of a picture: ``model``, ``photo``, ``layer``, ``variant``, ``select``, ``k``, ``render``,
and each layer family a variant sets a rule for (``ReLU``, ``MaxPool2d``, ...), so that the
paper's Fig. 3 is ``rows: MaxPool2d, columns: ReLU``. A montage has the axes it is asked for as
rows and columns; every other axis along which the run's pictures vary makes one montage per
value.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..core.rules import FAMILIES
from ..errors import unknown
from .files import Manifest, Output, save_bytes, slug, versions
from .render import grid

if TYPE_CHECKING:
    from .batch import Plan

AXES = ("model", "photo", "layer", "variant", "select", "k", "render")
EMPTY = 235  # the grey of a cell with no picture (a photo that failed)


def check_axes(montages: list[dict]) -> None:
    """Fail on an axis no picture has."""
    known = (*AXES, *FAMILIES)
    for m in montages:
        for axis in (*m["rows"], *m["columns"]):
            if axis not in known:
                raise unknown("montage axis", axis, known)


def _value(record: dict, axis: str) -> str:
    if axis == "photo":
        return record["photo_id"]
    if axis == "render":
        return record["picture"]
    if axis in AXES:
        return "" if record.get(axis) is None else str(record[axis])
    return record["variant_rules"].get(axis, "-")


def _label(axes: list[str], values: tuple[str, ...]) -> str:
    """'pool5 · max', with a rule axis shown as 'ReLU: hybrid'."""
    return " · ".join(v if a in AXES else f"{a}: {v}" for a, v in zip(axes, values) if v != "")


def montages(p: Plan, rows: list[dict], manifest: Manifest) -> list[dict]:
    """Draw the run's montages (``montages/``, written when they changed); their records."""
    pictures = [r for r in rows if r["kind"] == "picture"]
    if not pictures:
        return []
    families = [f for f in FAMILIES if any(f in r["variant_rules"] for r in pictures)]
    varying = [a for a in (*AXES, *families) if len({_value(r, a) for r in pictures}) > 1]
    lead_pictures = {(r["photo_id"], r["model"], r["picture"]): r for r in rows if r["kind"] == "photo"}
    photo_order = [p.ids[photo] for photo in p.photos]
    made = []
    for spec in p.config.montages:
        by_rows, by_columns = spec["rows"], spec["columns"]
        used = {*by_rows, *by_columns}
        group = {"variant", *families}
        split = [a for a in varying if a not in used and not (a in group and used & group)]
        allowed = set(photo_order[: spec["max_photos"]])
        chosen = [r for r in pictures if r["photo_id"] in allowed]
        for fixed in dict.fromkeys(tuple(_value(r, a) for a in split) for r in chosen):
            cells = [r for r in chosen if tuple(_value(r, a) for a in split) == fixed]
            row_keys = list(dict.fromkeys(tuple(_value(r, a) for a in by_rows) for r in cells))
            column_keys = list(dict.fromkeys(tuple(_value(r, a) for a in by_columns) for r in cells))
            at = {(tuple(_value(r, a) for a in by_rows), tuple(_value(r, a) for a in by_columns)): r for r in cells}
            tiles, captions, used_files = [], [], []
            for row in row_keys:
                first = next(r for r in cells if tuple(_value(r, a) for a in by_rows) == row)
                for what in spec["lead"]:
                    lead = lead_pictures.get((first["photo_id"], first["model"], what))
                    tiles.append(_tile(p.out, lead))
                    captions.append("")
                    used_files.append(lead and lead["file"])
                for column in column_keys:
                    cell = at.get((row, column))
                    tiles.append(_tile(p.out, cell))
                    captions.append(cell["variant"] if cell and used & group and "variant" not in used else "")
                    used_files.append(cell and cell["file"])
            size = next(t.shape for t in tiles if t is not None)
            picture = grid(
                [_fit(t, size) for t in tiles],
                columns=len(spec["lead"]) + len(column_keys),
                captions=captions,
                column_titles=[*spec["lead"], *(_label(by_columns, c) for c in column_keys)],
                row_titles=[_label(by_rows, r) for r in row_keys],
                title=_label(split, fixed),
            )
            name = "-".join(by_rows) + "-by-" + "-".join(by_columns) + "".join(f"_{slug(v)}" for v in fixed if v)
            params = {"rows": by_rows, "columns": by_columns, "lead": spec["lead"], "where": dict(zip(split, fixed)),
                      "cells": used_files, **versions()}  # fmt: skip
            output = Output(f"montages/{name}.png", "montage", params)
            made.append(publish(p.out, manifest, output, _png(picture)) | {"title": _label(split, fixed) or name})
    return made


def _tile(out: Path, record: dict | None) -> np.ndarray | None:
    if record is None:
        return None
    with Image.open(out / record["file"]) as image:
        return np.asarray(image.convert("RGB"))


def _fit(tile: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if tile is None:
        return np.full(shape, EMPTY, dtype=np.uint8)
    if tile.shape != shape:
        return np.asarray(Image.fromarray(tile).resize((shape[1], shape[0]), Image.Resampling.BILINEAR))
    return tile


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def publish(out: Path, manifest: Manifest, output: Output, data: bytes) -> dict:
    """Write `data` as `output` unless the file already holds it and the manifest says so."""
    path = out / output.file
    if not (manifest.current(output) and path.read_bytes() == data):
        save_bytes(data, path)
        manifest.add(output)
    return manifest.records[output.file]


# ---- the selectivity of Fig. 4 --------------------------------------------------------


def selectivity(results: dict[str, Tensor]) -> dict[str, Any]:
    """How much one photo's reversed images depend on the neuron chosen: the Pearson
    correlation of every pair of selectors' images (a selector of K neurons: each image),
    and their mean. `results` maps a selector to its images (K, C, H, W)."""
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


def tables(p: Plan, rows: list[dict]) -> list[dict]:
    """The run's tables: for ``selectivity``, per model, layer and variant, each pair's
    correlation and their mean, averaged over the photos."""
    metrics = [r for r in rows if r["kind"] == "metric"]
    if "selectivity" not in p.config.tables or not metrics:
        return []
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in metrics:
        groups.setdefault((r["model"], r["layer"], r["variant"]), []).append(json.loads((p.out / r["file"]).read_text()))
    pairs = list(dict.fromkeys(k for scores in groups.values() for s in scores for k in s["pairs"]))
    table_rows = []
    for (model, layer, variant), scores in groups.items():
        means = [_mean([s["pairs"].get(pair) for s in scores]) for pair in pairs]
        table_rows.append([model, layer, variant, len(scores), *means, _mean([s["mean"] for s in scores])])
    return [{
        "title": "Neuron selectivity (Fig. 4): correlation between the images of different selectors, mean over photos",
        "columns": ["model", "layer", "variant", "photos", *pairs, "mean"],
        "rows": table_rows,
        "csv": "tables/selectivity.csv",
        "name": "selectivity",
    }]  # fmt: skip


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def save_table(p: Plan, table: dict, manifest: Manifest) -> dict:
    """Write a table as CSV (6 decimals), recorded in the manifest."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table["columns"])
    for row in table["rows"]:
        writer.writerow("" if v is None else f"{v:.6f}" if isinstance(v, float) else v for v in row)
    output = Output(table["csv"], "table", {"table": table["name"], **versions()})
    return publish(p.out, manifest, output, buffer.getvalue().encode())
