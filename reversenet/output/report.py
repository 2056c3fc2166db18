"""The HTML report of a batch run: index.html and report/page-N.html in the run's folder.

Plain static pages, opened from file:// (no network, no JavaScript): the config, the montages,
the tables, the failures and a paged gallery of every picture with its manifest fields.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import jinja2

from .files import save_text

GALLERY_IMAGES = ("picture", "photo")  # kinds shown as images; the others as links
BESIDE = ("raw", "metric")  # kinds listed beside the picture of the same stem, when there is one
SUMMARY_ORDER = ("picture", "photo", "raw", "metric", "montage")
HASH = re.compile(r"[0-9a-fA-F]{32,}")
SHORT_HASH = 12
PAGE_DIR = "report"
PAGE_NAME = re.compile(r"page-(\d+)\.html")


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reversenet", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a typo in the template fails loudly, not as blank text
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


def write_report(
    out: Path,
    *,
    title: str,
    config_text: str,
    records: list[dict],
    montages: list[dict],
    tables: list[dict],
    page_size: int = 100,
) -> Path:
    """Write the run's HTML report: ``out/index.html`` and ``out/report/page-N.html``.

    Parameters
    ----------
    out
        The run's output folder. Every file path in the arguments is relative to it, POSIX style.
    title
        The run's name, the pages' heading.
    config_text
        The resolved config as YAML text, shown as is.
    records
        The manifest rows, each with ``kind`` and ``file`` (None for kind ``failed``, which has
        ``photo`` and ``error``). Kinds ``picture`` and ``photo`` make the gallery, in the given
        order; ``raw`` and ``metric`` are links beside the picture with the same file stem, or
        items of their own; ``montage`` rows are skipped (see `montages`). Every other field is
        shown as it is; long hashes abbreviated.
    montages
        ``{"file": ..., "title": ...}`` each, shown on the first page.
    tables
        ``{"title": str, "columns": [str], "rows": [[cell]], "csv": file or None}`` each; float
        cells are shown to 3 decimals.
    page_size
        Gallery items per page: page 1 is ``index.html``, page N > 1 is ``report/page-N.html``.

    Returns
    -------
    Path
        ``out / "index.html"``.

    Notes
    -----
    The same arguments give byte-identical files. Pages left by an earlier, larger run are deleted.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, not {page_size}")
    items = _gallery(records)
    failures = [_failure(r) for r in records if r.get("kind") == "failed"]
    pages = max(1, math.ceil(len(items) / page_size))
    first_page = {
        "summary": _summary(records, pages),
        "config_text": config_text,
        "montages": [{"file": m["file"], "title": m.get("title") or m["file"]} for m in montages],
        "tables": [_table(t) for t in tables],
        "failures": failures,
    }
    for page in range(1, pages + 1):
        start = (page - 1) * page_size
        page_items = items[start : start + page_size]
        html = _template().render(
            title=title,
            page=page,
            pages=pages,
            first=start + 1,
            last=start + len(page_items),
            total=len(items),
            items=page_items,
            nav=_nav(page, pages),
            up="" if page == 1 else "../",  # pages 2.. lie in report/, one level down
            url=_url,
            **first_page,
        )
        save_text(html, out / _page_path(page))
    _remove_stale_pages(out / PAGE_DIR, pages)
    return out / "index.html"


def _page_path(page: int) -> str:
    return "index.html" if page == 1 else f"{PAGE_DIR}/page-{page}.html"


def _url(path: str, up: str = "") -> str:
    """A relative URL for a file path: every segment percent-quoted (spaces, #, %, ?, quotes, non-ASCII)."""
    if path.startswith("/"):
        raise ValueError(f"report paths are relative to the run's folder, not {path!r}")
    return up + "/".join(quote(segment, safe="") for segment in path.split("/"))


def _nav(page: int, pages: int) -> dict[str, Any]:
    """First/prev/next/last links and page numbers: all when few, else 1, last and page ± 2."""
    up = "" if page == 1 else "../"

    def href(p: int) -> str:
        return up + _page_path(p)

    shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    if pages <= 11:
        shown = list(range(1, pages + 1))
    numbers: list[dict[str, Any] | None] = []
    for p in shown:
        if numbers and numbers[-1] is not None and p > numbers[-1]["page"] + 1:
            numbers.append(None)  # a gap, shown as an ellipsis
        numbers.append({"page": p, "href": href(p), "current": p == page})
    return {
        "first": href(1) if page > 1 else None,
        "prev": href(page - 1) if page > 1 else None,
        "next": href(page + 1) if page < pages else None,
        "last": href(pages) if page < pages else None,
        "numbers": numbers,
    }


def _gallery(records: list[dict]) -> list[dict[str, Any]]:
    """The gallery items, in the records' order; a raw/metric file joins its picture's item."""
    pictures = {i: _item(r) for i, r in enumerate(records) if r.get("kind") in GALLERY_IMAGES and r.get("file")}
    by_stem: dict[str, dict[str, Any]] = {}
    for item in pictures.values():
        by_stem.setdefault(_stem(item["file"]), item)
    items: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        kind, file = record.get("kind"), record.get("file")
        if i in pictures:
            items.append(pictures[i])
        elif kind in BESIDE and file and _stem(file) in by_stem:
            extra = {"kind": kind, "file": file, "title": _fields_title(record)}
            by_stem[_stem(file)]["extras"].append(extra)
        elif kind not in ("montage", "failed"):  # a lone raw/metric, a kind we do not know
            items.append(_item(record))
    return items


def _stem(file: str) -> str:
    return str(PurePosixPath(file).with_suffix(""))


def _item(record: dict) -> dict[str, Any]:
    file = record.get("file")
    return {
        "file": file,
        "kind": record.get("kind"),
        "image": record.get("kind") in GALLERY_IMAGES and bool(file),  # no file: no <img>
        "fields": _fields(record, skip=("file",)),
        "extras": [],
    }


def _failure(record: dict) -> dict[str, Any]:
    return {
        "photo": _show(record.get("photo")),
        "error": _show(record.get("error")),
        "fields": _fields(record, skip=("kind", "file", "photo", "error")),
    }


def _fields(record: dict, skip: tuple[str, ...]) -> list[dict[str, str | None]]:
    """Every key/value pair, in the record's order, as text; long hashes cut (full text in `full`)."""
    fields: list[dict[str, str | None]] = []
    for key, value in record.items():
        if key in skip:
            continue
        text = _show(value)
        is_hash = isinstance(value, str) and (key.endswith("sha256") or HASH.fullmatch(value))
        if is_hash and len(text) > SHORT_HASH:
            fields.append({"key": str(key), "text": text[:SHORT_HASH] + "…", "full": text})
        else:
            fields.append({"key": str(key), "text": text, "full": None})
    return fields


def _fields_title(record: dict) -> str:
    """A link's tooltip: the record's fields, one per line."""
    return "\n".join(f"{k}: {_show(v)}" for k, v in record.items() if k != "file")


def _show(value: Any) -> str:
    """Text as is; None, numbers, lists and dicts as JSON (null, [12, 3, 4], {"a": 1})."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _cell(value: Any) -> dict[str, Any]:
    if isinstance(value, float):
        return {"text": f"{value:.3f}", "number": True}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"text": str(value), "number": True}
    return {"text": "" if value is None else _show(value), "number": False}


def _table(table: dict) -> dict[str, Any]:
    return {
        "title": table["title"],
        "columns": [str(c) for c in table["columns"]],
        "rows": [[_cell(v) for v in row] for row in table["rows"]],
        "csv": table.get("csv"),
    }


def _summary(records: list[dict], pages: int) -> str:
    """'12 pictures · 1 photo · 2 failures · 1 page': known kinds first, then the others sorted."""
    counts: dict[str, int] = {}
    for record in records:
        kind = str(record.get("kind"))
        counts[kind] = counts.get(kind, 0) + 1
    failures = counts.pop("failed", 0)
    kinds = [k for k in SUMMARY_ORDER if k in counts] + sorted(k for k in counts if k not in SUMMARY_ORDER)
    parts = [_plural(counts[k], k) for k in kinds]
    parts += [_plural(failures, "failure"), _plural(pages, "page")]
    return " · ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _remove_stale_pages(folder: Path, pages: int) -> None:
    """Delete report/page-N.html for N > pages, left by an earlier, larger run."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        match = PAGE_NAME.fullmatch(path.name)
        if match and int(match.group(1)) > pages:
            path.unlink(missing_ok=True)
    if not any(folder.iterdir()):
        folder.rmdir()
