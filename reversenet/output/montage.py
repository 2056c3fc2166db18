"""What a run draws from its outputs at the end: labelled montages over any two axes.

Axes of a picture: ``model``, ``photo``, ``layer``, ``variant``, ``select``, ``k``, ``render``,
and each layer family a variant sets a rule for (``ReLU``, ``MaxPool2d``, ...), so that the
paper's Fig. 3 is ``rows: MaxPool2d, columns: ReLU``. A montage has the axes it is asked for as
rows and columns; every other axis along which the run's pictures vary makes one montage per
value. A montage is named and titled by what its cells share (model, layer, selector,
renderer) and the values it is split by: ``montages/vgg16_pool5_MaxPool2d-by-ReLU.png``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..core.rules import FAMILIES
from ..errors import unknown
from .files import Output, OutputFolder, slug
from .render import grid

AXES = ("model", "photo", "layer", "variant", "select", "k", "render")
IDENTITY = ("model", "layer", "select", "render")  # named in a montage's file and title when fixed
EMPTY = 235  # the grey of a cell with no picture (a photo that failed)


def check_axes(montages: list[dict]) -> None:
    """Fail on an axis no picture has."""
    known = (*AXES, *FAMILIES)
    for m in montages:
        for axis in (*m["rows"], *m["columns"]):
            if axis not in known:
                raise unknown("montage axis", axis, known)


def value(record: dict, axis: str) -> str:
    """A picture's value on an axis: a rule axis (a layer family) is the variant's rule for it."""
    if axis == "photo":
        return record["photo_id"]
    if axis == "render":
        return record["picture"]
    if axis == "k":
        return "" if record.get("k") is None else f"{record['select']} #{record['k']}"
    if axis in AXES:
        return "" if record.get(axis) is None else str(record[axis])
    return record["variant_rules"].get(axis, "-")


def label(axes: list[str], values: tuple[str, ...]) -> str:
    """'pool5 · max', a rule axis shown as 'ReLU: hybrid' (the grid of `compare` and the
    montages of a run label alike)."""
    return " · ".join(v if a in AXES else f"{a}: {v}" for a, v in zip(axes, values) if v != "")


def _identity(axes: list[str], values: tuple[str, ...]) -> tuple[list[str], tuple[str, ...], str]:
    """What a montage's cells share and what splits it: the axes and values, less empty ones,
    and the file-name part made of them (the defaults, select max and render paper, left out
    as in the pictures' names)."""
    kept = [(a, v) for a, v in zip(axes, values) if v != "" and (a, v) != ("render", "paper")]
    name = "_".join(slug(v) for a, v in kept if (a, v) != ("select", "max"))
    return [a for a, _ in kept], tuple(v for _, v in kept), name


def montages(specs: list[dict], rows: list[dict], photo_order: list[str], folder: OutputFolder) -> list[dict]:
    """Draw a run's montages (``montages/``, written when they changed); their records.
    `photo_order`: the photo ids in the run's order."""
    pictures = [r for r in rows if r["kind"] == "picture"]
    if not pictures:
        return []
    families = [f for f in FAMILIES if any(f in r["variant_rules"] for r in pictures)]
    varying = [a for a in (*AXES, *families) if len({value(r, a) for r in pictures}) > 1]
    lead_pictures = {(r["photo_id"], r["model"], r["picture"]): r for r in rows if r["kind"] == "photo"}
    made = []
    for spec in specs:
        by_rows, by_columns = spec["rows"], spec["columns"]
        used = {*by_rows, *by_columns}
        group = {"variant", *families}
        split = [a for a in varying if a not in used and not (a in group and used & group)]
        fixed_axes = [a for a in IDENTITY if a not in used and a not in split]  # the same for every cell
        allowed = set(photo_order[: spec["max_photos"]])
        chosen = [r for r in pictures if r["photo_id"] in allowed]
        for where in dict.fromkeys(tuple(value(r, a) for a in split) for r in chosen):
            cells = [r for r in chosen if tuple(value(r, a) for a in split) == where]
            axes, identity, named = _identity([*fixed_axes, *split], (*(value(cells[0], a) for a in fixed_axes), *where))
            title = label(axes, identity)
            picture, used_files = _draw(spec, cells, lead_pictures, folder.folder, title)
            name = "_".join(filter(None, [named, f"{'-'.join(by_rows)}-by-{'-'.join(by_columns)}"]))
            extra = {"rows": by_rows, "columns": by_columns, "lead": spec["lead"], "where": dict(zip(axes, identity)),
                     "cells": used_files}  # fmt: skip
            output = Output("montage", extra=extra, name=f"montages/{name}.png")
            made.append(folder.publish(output, _png(picture)) | {"title": title or name})
    return made


def _draw(spec: dict, cells: list[dict], lead_pictures: dict, out: Path, title: str) -> tuple[np.ndarray, list[Any]]:
    """One montage: its picture, and the files of its cells (None: a cell without a picture)."""
    by_rows, by_columns = spec["rows"], spec["columns"]
    group = {"variant", *FAMILIES}
    row_keys = list(dict.fromkeys(tuple(value(r, a) for a in by_rows) for r in cells))
    column_keys = list(dict.fromkeys(tuple(value(r, a) for a in by_columns) for r in cells))
    at = {(tuple(value(r, a) for a in by_rows), tuple(value(r, a) for a in by_columns)): r for r in cells}
    captioned = bool({*by_rows, *by_columns} & group) and "variant" not in {*by_rows, *by_columns}
    tiles, captions, used_files = [], [], []
    for row in row_keys:
        first = next(r for r in cells if tuple(value(r, a) for a in by_rows) == row)
        for what in spec["lead"]:
            lead = lead_pictures.get((first["photo_id"], first["model"], what))
            tiles.append(_tile(out, lead))
            captions.append("")
            used_files.append(lead and lead["file"])
        for column in column_keys:
            cell = at.get((row, column))
            tiles.append(_tile(out, cell))
            captions.append(cell["variant"] if cell and captioned else "")
            used_files.append(cell and cell["file"])
    size = next(t.shape for t in tiles if t is not None)
    picture = grid(
        [_fit(t, size) for t in tiles],
        columns=len(spec["lead"]) + len(column_keys),
        captions=captions,
        column_titles=[*spec["lead"], *(label(by_columns, c) for c in column_keys)],
        row_titles=[label(by_rows, r) for r in row_keys],
        title=title,
    )
    return picture, used_files


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
