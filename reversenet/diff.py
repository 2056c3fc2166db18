"""Image regression diffs: two images, or two folders paired by relative path.

The Python side of ``reversenet diff``, for a test suite's golden images:

>>> import numpy as np, reversenet
>>> from pathlib import Path
>>> from PIL import Image
>>> for folder, value in (("golden", 100), ("out", 101)):
...     Path(folder).mkdir()
...     Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(f"{folder}/picture.png")
>>> [d.max_abs for d in reversenet.diff.assert_images_match("out", "golden", tolerance=2)]
[1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .errors import ReversenetError, UsageError
from .inputs.images import EXTENSIONS, load_image
from .output.files import save_png
from .output.render import heat
from .tables import Table


@dataclass(frozen=True)
class Difference:
    """How one pair of images differs, in 8-bit levels (0-255).

    Parameters
    ----------
    name : str
        The pair's relative path.
    max_abs : int, default 0
        The largest difference of a channel.
    psnr : float, default inf
        Peak signal-to-noise ratio in dB; inf when identical.
    over : float, default 0.0
        The share of pixels with a channel differing by more than the threshold.
    problem : str, default ""
        Why the pair has no numbers (``only in A``, ``size 224×224 vs 112×112``).
    heat_map : pathlib.Path, optional
        Where the heat map of the difference was written.

    Examples
    --------
    >>> from reversenet.diff import Difference
    >>> Difference("a.png", max_abs=3, psnr=48.2, over=0.01).row(tolerance=2)
    ['a.png', '3', '48.2', '1.00%', 'differs']
    """

    name: str
    max_abs: int = 0
    psnr: float = math.inf
    over: float = 0.0
    problem: str = ""
    heat_map: Path | None = None

    def within(self, tolerance: int) -> bool:
        """Whether the pair exists, has one size, and differs by at most `tolerance`.

        Parameters
        ----------
        tolerance : int
            The largest difference allowed, in levels.

        Returns
        -------
        bool
        """
        return not self.problem and self.max_abs <= tolerance

    def row(self, tolerance: int) -> list[str]:
        """The pair as a table row.

        Parameters
        ----------
        tolerance : int
            For the verdict.

        Returns
        -------
        list of str
            Name, max abs(A − B), PSNR, share over the threshold, verdict (``ok``,
            ``differs``); a file without a pair, or of another size, has no numbers.
        """
        if self.problem:
            return [self.name, "—", "—", "—", self.problem]
        verdict = "ok" if self.within(tolerance) else "differs"
        return [self.name, str(self.max_abs), f"{self.psnr:.1f}", f"{self.over:.2%}", verdict]


def table(results: list[Difference], a: str | Path, b: str | Path, tolerance: int, threshold: int) -> Table:
    """The pairs as a table, a row each (see `Difference.row`).

    Parameters
    ----------
    results : list of Difference
        From `diff_paths`.
    a, b : str or pathlib.Path
        What was compared, for the title.
    tolerance : int
        For the verdicts.
    threshold : int
        The threshold the share over it was counted with.

    Returns
    -------
    reversenet.tables.Table
    """
    return Table(f"{a} vs {b}", ["image", "max |A−B|", "PSNR dB", f"share > {threshold}", ""],
                 [d.row(tolerance) for d in results], right=("max |A−B|", "PSNR dB", f"share > {threshold}"))  # fmt: skip


def verdict(results: list[Difference], tolerance: int) -> tuple[bool, str]:
    """Whether every pair is within `tolerance`, and one line that says so.

    Parameters
    ----------
    results : list of Difference
        From `diff_paths`.
    tolerance : int
        The largest difference allowed, in levels.

    Returns
    -------
    ok : bool
    line : str
        Pairs that differ, files without a pair and pairs of different sizes counted apart.

    Examples
    --------
    >>> from reversenet.diff import Difference, verdict
    >>> verdict([Difference("a.png", max_abs=1), Difference("b.png", problem="only in out")], tolerance=2)
    (False, '0 of 1 pair differ beyond tolerance 2, 1 file without a pair')
    """
    unpaired = sum(d.problem.startswith("only in") for d in results)
    sizes = sum(bool(d.problem) for d in results) - unpaired
    paired = len(results) - unpaired
    differ = sum(not d.problem and not d.within(tolerance) for d in results)
    if not (unpaired or sizes or differ):
        return True, f"all {paired} pair{'s' * (paired != 1)} match within tolerance {tolerance}"
    parts = [f"{differ} of {paired} pair{'s' * (paired != 1)} differ beyond tolerance {tolerance}"]
    parts += [f"{sizes} differ in size"] if sizes else []
    parts += [f"{unpaired} file{'s' * (unpaired != 1)} without a pair"] if unpaired else []
    return False, ", ".join(parts)


def _compare(a: np.ndarray, b: np.ndarray, name: str, threshold: int) -> tuple[Difference, np.ndarray | None]:
    """The difference of two RGB uint8 arrays, and per pixel the largest |A − B| over
    the channels (None when their sizes differ)."""
    if a.shape != b.shape:
        size = [f"{u.shape[1]}×{u.shape[0]}" for u in (a, b)]  # width × height, as everywhere
        return Difference(name, problem=f"size {size[0]} vs {size[1]}"), None
    delta = np.abs(a.astype(np.int16) - b.astype(np.int16))
    mse = float((delta.astype(np.float64) ** 2).mean())
    psnr = math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
    per_pixel = delta.max(axis=2)
    return Difference(name, int(delta.max()), psnr, float((per_pixel > threshold).mean())), per_pixel


def _images(folder: Path) -> dict[str, Path]:
    return {
        p.relative_to(folder).as_posix(): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix.lower() in EXTENSIONS
    }


def diff_paths(a: str | Path, b: str | Path, *, threshold: int = 0, out: str | Path | None = None) -> list[Difference]:
    """Compare two images, or two folders paired by relative path.

    Parameters
    ----------
    a, b : str or pathlib.Path
        Two image files or two folders.
    threshold : int, default 0
        A pixel counts in `Difference.over` when a channel differs by more.
    out : str or pathlib.Path, optional
        Where a heat map of abs(A − B) is written for every pair that differs.

    Returns
    -------
    list of Difference
        One per pair, and per file without a pair.

    Raises
    ------
    reversenet.UsageError
        A path that does not exist, an image and a folder, no images, an unreadable image.

    Examples
    --------
    >>> import numpy as np
    >>> from PIL import Image
    >>> from reversenet.diff import diff_paths
    >>> Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save("a.png")
    >>> Image.fromarray(np.full((4, 4, 3), 5, np.uint8)).save("b.png")
    >>> [(d.name, d.max_abs, d.heat_map) for d in diff_paths("a.png", "b.png", out="heat")]
    [('a.png', 5, PosixPath('heat/a.png.diff.png'))]
    """
    a, b = Path(a), Path(b)
    for path in (a, b):
        if not path.exists():
            raise UsageError(f"no such file or folder: {path}")
    if a.is_dir() != b.is_dir():
        raise UsageError(f"compare two images or two folders, not {a} and {b}")
    pairs = _images(a), _images(b)
    if not a.is_dir():
        pairs = {a.name: a}, {a.name: b}
    elif not pairs[0] and not pairs[1]:
        raise UsageError(f"no images in {a} or {b}")
    results = []
    for name in sorted(pairs[0].keys() | pairs[1].keys()):
        if name not in pairs[1]:
            results.append(Difference(name, problem=f"only in {a}"))
            continue
        if name not in pairs[0]:
            results.append(Difference(name, problem=f"only in {b}"))
            continue
        try:
            pa, pb = (np.asarray(load_image(p[name])) for p in pairs)
        except ReversenetError as exc:  # for diff, an unreadable image is bad input
            raise UsageError(str(exc)) from exc
        found, per_pixel = _compare(pa, pb, name, threshold)
        if out is not None and per_pixel is not None and found.max_abs > 0:
            target = Path(out) / f"{name}.diff.png"
            save_png(heat(torch.from_numpy(per_pixel / found.max_abs)), target)
            found = replace(found, heat_map=target)
        results.append(found)
    return results


def assert_images_match(
    a: str | Path, b: str | Path, *, tolerance: int = 0, threshold: int = 0, out: str | Path | None = None
) -> list[Difference]:
    """For tests: compare like `diff_paths`, and fail on any pair beyond `tolerance`.

    Parameters
    ----------
    a, b : str or pathlib.Path
        Two image files or two folders (`b` the golden one).
    tolerance : int, default 0
        The largest difference allowed, in levels.
    threshold : int, default 0
        As in `diff_paths`.
    out : str or pathlib.Path, optional
        Where heat maps of the pairs that differ go.

    Returns
    -------
    list of Difference

    Raises
    ------
    AssertionError
        Naming every pair beyond `tolerance` or without a pair, and where the heat maps are.

    Examples
    --------
    >>> import numpy as np
    >>> from PIL import Image
    >>> from reversenet.diff import assert_images_match
    >>> Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save("new.png")
    >>> Image.fromarray(np.full((4, 4, 3), 9, np.uint8)).save("golden.png")
    >>> assert_images_match("new.png", "golden.png", tolerance=2)
    Traceback (most recent call last):
    AssertionError: 1 of 1 images differ from golden.png:
    new.png: max |A-B| 9, PSNR 29.0 dB
    """
    results = diff_paths(a, b, threshold=threshold, out=out)
    failed = [d for d in results if not d.within(tolerance)]
    if failed:
        lines = [f"{d.name}: {d.problem or f'max |A-B| {d.max_abs}, PSNR {d.psnr:.1f} dB'}" for d in failed]
        where = f"; heat maps in {Path(out).resolve()}" if out is not None else ""
        raise AssertionError(f"{len(failed)} of {len(results)} images differ from {b}{where}:\n" + "\n".join(lines))
    return results
