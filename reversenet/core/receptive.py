"""Receptive-field planning: the window of each node that a signal confined to a box of a
map reaches, from each step's footprint (the windows themselves: reversenet.core.window)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from torch import Tensor, fx

from .graph import Step
from .window import Axis, Footprint, Window, box

# How far a step spreads a signal over a map: a footprint per spatial axis.
Spread = tuple[Footprint, Footprint]


@dataclass(frozen=True)
class Maps:
    """The (N, C, H, W) maps of a recording, which windows are of.

    `extent` holds the (H, W) of each node that outputs such a map, `inputs` the nodes
    each step sends signals back to.
    """

    extent: dict[fx.Node, tuple[int, int]]
    inputs: dict[fx.Node, list[fx.Node]]

    def footprint(self, step: Step, footprints: Iterable[Spread | None]) -> Spread | None:
        """How far a step's rules, of `footprints` each, spread a signal on its maps; None
        where any of them mixes all positions or the step is not from maps to maps. The
        rules' footprints are read only for a step from maps to maps (pass a generator)."""
        if step.node not in self.extent or any(n not in self.extent for n in self.inputs[step.node]):
            return None
        distinct = set(footprints)
        return distinct.pop() if len(distinct) == 1 else None

    def whole(self, node: fx.Node, t: Tensor) -> Window:
        """The whole map of `node`, for signals from box origins t."""
        return Window(Axis.whole(self.extent[node][0]), Axis.whole(self.extent[node][1]), t)

    def windows(
        self, signal: Tensor, target: fx.Node, steps: Sequence[Step], footprint: Callable[[int], Spread | None]
    ) -> dict[fx.Node, Window]:
        """The window of each node that `signal`, at `target`, reaches through `steps` (each
        of `footprint(i)`, `Maps.footprint`), or {} where the reverse is as cheap on whole
        maps (see reversenet.core.window)."""
        if target not in self.extent or signal.dim() != 4:
            return {}
        t, size = box(signal)
        extent = self.extent[target]
        start = Window(Axis(1, 0, size[0], extent[0]).union(None), Axis(1, 0, size[1], extent[1]).union(None), t)
        if start.is_whole:
            return {}
        windows = {target: start}
        for i in reversed(range(len(steps))):
            step, window = steps[i], windows.get(steps[i].node)
            if window is None:
                continue
            spread = footprint(i)
            for node in self.inputs[step.node]:
                if node not in self.extent:
                    continue
                arrival = self.whole(node, t) if spread is None else window.through(spread, self.extent[node])
                windows[node] = arrival.union(None) if node not in windows else windows[node].union(arrival)
        return windows
