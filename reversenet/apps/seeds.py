"""GrabCut's seeds, as quantiles of a saliency map (no torch, no OpenCV here: the command
line's options show their defaults before either is imported)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from ..errors import UsageError


@dataclass(frozen=True)
class Seeds:
    """GrabCut's initial labels, as quantiles of the saliency map (docs/design.md §6).

    Parameters
    ----------
    foreground : float, default 0.90
        Pixels above this quantile of the map are probable foreground.
    background : float, default 0.30
        Pixels below this quantile are probable background.
    sure_foreground : float, default 0.995
        Pixels above this quantile are foreground, fixed.
    sure_background : float, default 0.005
        Pixels below this quantile are background, fixed. The rest are unknown.
    iterations : int, default 5
        Graph cuts in all.

    Raises
    ------
    reversenet.UsageError
        The quantiles are out of order (0 ≤ sure background ≤ background < foreground
        ≤ sure foreground ≤ 1) or `iterations` < 1.

    Examples
    --------
    >>> import reversenet
    >>> reversenet.Seeds(foreground=0.8)
    Seeds(foreground=0.8, background=0.3, sure_foreground=0.995, sure_background=0.005, iterations=5)
    """

    foreground: float = 0.90
    background: float = 0.30
    sure_foreground: float = 0.995
    sure_background: float = 0.005
    iterations: int = 5

    def __post_init__(self) -> None:
        order = (0, self.sure_background, self.background, self.foreground, self.sure_foreground, 1)
        if any(a > b for a, b in pairwise(order)) or self.background >= self.foreground:
            raise UsageError(
                "seed quantiles must satisfy 0 ≤ sure background ≤ background < foreground ≤ sure foreground ≤ 1, "
                f"got {self.sure_background}, {self.background}, {self.foreground}, {self.sure_foreground}"
            )
        if self.iterations < 1:
            raise UsageError(f"GrabCut needs at least 1 iteration, got {self.iterations}")
