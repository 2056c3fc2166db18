"""Image regression diffs: two images, or two folders paired by relative path.

The Python side of ``reversenet diff``, for a test suite's golden images. A pair matches when
at most `share` of the pixels it shows (those not at its ground colour) differ by more than
`tolerance` levels (8-bit) in a channel; with share 0 (the default), when no channel differs
by more than `tolerance`. Another CPU's float kernels or thread count move a reversed picture
by a few levels on a few pixels (at most 2 pixels of VGG-16's 50,176 by more than 2 levels,
measured); a changed rule moves a quarter of them or more by up to 255 (docs/design.md §11).
`TOLERANCE` and `SHARE` (0.1%) pass the first and fail the second by far:

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
from dataclasses import dataclass, field, replace
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
    exceed : tuple of float, optional
        For each level t from 0 to 255, the share of the pixels the pictures show (not at
        their ground colour) with a channel differing by more than t (`within` reads it
        for a share above 0).

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
    exceed: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def within(self, tolerance: int, share: float = 0.0) -> bool:
        """Whether the pair exists, has one size, and at most `share` of the pixels it shows
        differ by more than `tolerance`.

        Parameters
        ----------
        tolerance : int
            The largest difference of a pixel that leaves it unchanged, in levels.
        share : float, default 0.0
            The largest share of changed pixels (0: none may change).

        Returns
        -------
        bool
        """
        if self.problem:
            return False
        return self.max_abs <= tolerance or bool(self.exceed) and self.exceed[tolerance] <= share

    def changed(self, tolerance: int) -> float:
        """The share of the pixels shown that differ by more than `tolerance` levels.

        Parameters
        ----------
        tolerance : int
            In levels.

        Returns
        -------
        float
        """
        return self.exceed[tolerance] if self.exceed else float(self.max_abs > tolerance)

    def row(self, tolerance: int, share: float = 0.0) -> list[str]:
        """The pair as a table row.

        Parameters
        ----------
        tolerance : int
            For the verdict.
        share : float, default 0.0
            For the verdict.

        Returns
        -------
        list of str
            Name, max abs(A − B), PSNR, share over the threshold, verdict (``ok``,
            ``differs``); a file without a pair, or of another size, has no numbers.
        """
        if self.problem:
            return [self.name, "—", "—", "—", self.problem]
        verdict = "ok" if self.within(tolerance, share) else "differs"
        return [self.name, str(self.max_abs), f"{self.psnr:.1f}", f"{self.over:.2%}", verdict]


def table(results: list[Difference], a: str | Path, b: str | Path, tolerance: int, threshold: int, share: float = 0.0) -> Table:
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
    share : float, default 0.0
        For the verdicts.

    Returns
    -------
    reversenet.tables.Table
    """
    return Table(f"{a} vs {b}", ["image", "max |A−B|", "PSNR dB", f"share > {threshold}", ""],
                 [d.row(tolerance, share) for d in results], right=("max |A−B|", "PSNR dB", f"share > {threshold}"))  # fmt: skip


def verdict(results: list[Difference], tolerance: int, share: float = 0.0) -> tuple[bool, str]:
    """Whether every pair is within `tolerance`, and one line that says so.

    Parameters
    ----------
    results : list of Difference
        From `diff_paths`.
    tolerance : int
        The largest difference of an unchanged pixel, in levels.
    share : float, default 0.0
        The largest share of changed pixels.

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
    differ = sum(not d.problem and not d.within(tolerance, share) for d in results)
    within = f"tolerance {tolerance}" + (f" on all but {share:.2%} of the pixels" if share else "")
    if not (unpaired or sizes or differ):
        return True, f"all {paired} pair{'s' * (paired != 1)} match within {within}"
    parts = [f"{differ} of {paired} pair{'s' * (paired != 1)} differ beyond {within}"]
    parts += [f"{sizes} differ in size"] if sizes else []
    parts += [f"{unpaired} file{'s' * (unpaired != 1)} without a pair"] if unpaired else []
    return False, ", ".join(parts)


def compare_arrays(a: np.ndarray, b: np.ndarray, name: str, threshold: int = 0) -> tuple[Difference, np.ndarray | None]:
    """The difference of two RGB uint8 arrays, and per pixel the largest |A − B| over
    the channels (None when their sizes differ). `Difference.exceed` counts changed pixels
    among those the pictures show: not at their ground (each one's most common colour) in
    either, or changed, so that a neuron's small picture on a plain ground changes as much
    as a whole one would."""
    if a.shape != b.shape:
        size = [f"{u.shape[1]}×{u.shape[0]}" for u in (a, b)]  # width × height, as everywhere
        return Difference(name, problem=f"size {size[0]} vs {size[1]}"), None
    delta = np.abs(a.astype(np.int16) - b.astype(np.int16))
    mse = float((delta.astype(np.float64) ** 2).mean())
    psnr = math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
    per_pixel = delta.max(axis=2)
    shown = int((_foreground(a) | _foreground(b) | (per_pixel > 0)).sum()) or per_pixel.size  # changed ones count as shown
    counts = np.bincount(per_pixel.ravel(), minlength=256)
    exceed = tuple(float(v) for v in (counts.sum() - np.cumsum(counts)) / shown)  # > t, for each t
    return Difference(name, int(delta.max()), psnr, float((per_pixel > threshold).mean()), exceed=exceed), per_pixel


def heat_map(per_pixel: np.ndarray) -> np.ndarray:
    """|A − B| per pixel (from `compare_arrays`, not all 0) as a heat map scaled to its maximum."""
    return heat(torch.from_numpy(per_pixel / per_pixel.max()))


def _foreground(rgb: np.ndarray) -> np.ndarray:
    """The pixels not of the picture's most common colour (its ground)."""
    packed = rgb[..., 0].astype(np.int32) << 16 | rgb[..., 1].astype(np.int32) << 8 | rgb[..., 2]
    values, counts = np.unique(packed, return_counts=True)
    return packed != values[counts.argmax()]


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
        found, per_pixel = compare_arrays(pa, pb, name, threshold)
        if out is not None and per_pixel is not None and found.max_abs > 0:
            target = Path(out) / f"{name}.diff.png"
            save_png(heat_map(per_pixel), target)
            found = replace(found, heat_map=target)
        results.append(found)
    return results


def assert_images_match(
    a: str | Path, b: str | Path, *, tolerance: int = 0, share: float = 0.0, threshold: int = 0,
    out: str | Path | None = None,
) -> list[Difference]:
    """For tests: compare like `diff_paths`, and fail on any pair beyond `tolerance`.

    Parameters
    ----------
    a, b : str or pathlib.Path
        Two image files or two folders (`b` the golden one).
    tolerance : int, default 0
        The largest difference of an unchanged pixel, in levels.
    share : float, default 0.0
        The largest share of changed pixels a matching pair may have (`TOLERANCE` and
        `SHARE` pass another machine's rounding and fail a changed rule).
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
    new.png: max |A-B| 9, PSNR 29.0 dB, 100.00% changed
    """
    results = diff_paths(a, b, threshold=threshold, out=out)
    failed = [d for d in results if not d.within(tolerance, share)]
    if failed:
        lines = [f"{d.name}: {d.problem or f'max |A-B| {d.max_abs}, PSNR {d.psnr:.1f} dB, {d.changed(tolerance):.2%} changed'}"
                 for d in failed]  # fmt: skip
        where = f"; heat maps in {Path(out).resolve()}" if out is not None else ""
        raise AssertionError(f"{len(failed)} of {len(results)} images differ from {b}{where}:\n" + "\n".join(lines))
    return results
