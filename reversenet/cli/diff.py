"""`reversenet diff`: image regression diffs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import console, show


@click.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--tolerance", "-t", default=0, show_default=True, type=click.IntRange(0, 255),
              help="Largest |A − B| (8-bit levels) that still counts as equal.")
@click.option("--share", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Largest share of pixels (0-1) that may differ by more than --tolerance; 0.001 passes "
                   "another CPU's rounding and fails a changed rule.")
@click.option("--threshold", default=0, show_default=True, type=click.IntRange(0, 255),
              help="Pixels differing by more than this are counted in 'over'.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Folder for a heat map of |A − B| per differing pair.")  # fmt: skip
def diff(a: Path, b: Path, tolerance: int, share: float, threshold: int, out: Path | None) -> None:
    """Compare two images, or two folders of images paired by relative path.

    Exit status: 0 when every pair is within --tolerance, 1 when not, 2 on bad input.

    \b
    Examples:
      reversenet diff out/ tests/golden/vgg16 --tolerance 2 --share 0.001 --out diffs/
      reversenet diff a.png b.png
    """
    from ..diff import diff_paths, table, verdict

    results = diff_paths(a, b, threshold=threshold, out=out)
    show(table(results, a, b, tolerance, threshold, share))
    ok, line = verdict(results, tolerance, share)
    console.print(line + (f"; heat maps in {out}/" if out and not ok else ""))
    if not ok:
        sys.exit(1)
