"""Receptive-field restriction: reverse a localised signal on windows, not on whole maps.

A signal that is non-zero on a small box of a layer (one neuron) reaches, at each layer
below, only that box's receptive field. Along one spatial axis a layer with kernel k,
stride s, padding p and dilation d sends an output window [o, o + n) back to the input
window [o·s − p, o·s − p + (n − 1)·s + d·(k − 1) + 1); a pointwise layer (ReLU, batch norm)
keeps it. So at every node the window's origin is affine in the origin t of the signal's
box, o = scale·t + offset, with one size for all signals: K neurons of different places
are reversed together, as a batch of equal windows. A window may stick out of its map;
the rules compute there what they would in the padding, and `place` drops it.

An axis with scale 0 is the same for every signal; `Axis.whole` is the whole map. A layer
that mixes all positions (Linear, global pooling, a reshape) has no footprint: the engine
widens the signal to the whole map there and reverses it as usual.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

# (kernel, stride, padding, dilation) along one axis
Footprint = tuple[int, int, int, int]
POINTWISE: tuple[Footprint, Footprint] = ((1, 1, 0, 1), (1, 1, 0, 1))


@dataclass(frozen=True)
class Axis:
    """Positions [scale·t + offset, … + size) of a map `extent` long, t per signal."""

    scale: int
    offset: int
    size: int
    extent: int

    @classmethod
    def whole(cls, extent: int) -> Axis:
        return cls(0, 0, extent, extent)

    @property
    def is_whole(self) -> bool:
        return self.scale == 0 and self.offset == 0 and self.size == self.extent

    def through(self, footprint: Footprint, extent: int) -> Axis:
        """The window of a layer's input that this output window reads."""
        k, s, p, d = footprint
        return Axis(self.scale * s, self.offset * s - p, (self.size - 1) * s + d * (k - 1) + 1, extent)

    def union(self, other: Axis | None) -> Axis:
        """The smallest window holding both (the whole map where they do not move together);
        the whole map, too, where the window would cover 3/4 of it or more: there the
        window's own bookkeeping costs more than the positions it saves."""
        if other is not None and other.scale != self.scale:
            return Axis.whole(self.extent)
        start = self.offset if other is None else min(self.offset, other.offset)
        end = self.offset + self.size if other is None else max(self.offset + self.size, other.offset + other.size)
        if self.scale == 0 or 4 * (end - start) >= 3 * self.extent:
            return Axis.whole(self.extent)
        return Axis(self.scale, start, end - start, self.extent)

    def positions(self, t: Tensor) -> Tensor:
        """(S, size): the map position of each window position, per signal."""
        return (t * self.scale + self.offset)[:, None] + torch.arange(self.size, device=t.device)


@dataclass(frozen=True)
class Window:
    """A window of a (S, C, H, W) map per signal: rows and columns, and the box origins
    t (S, 2) the signals started from."""

    rows: Axis
    cols: Axis
    t: Tensor

    @property
    def is_whole(self) -> bool:
        return self.rows.is_whole and self.cols.is_whole

    def through(self, footprint: tuple[Footprint, Footprint], extent: tuple[int, int]) -> Window:
        return Window(self.rows.through(footprint[0], extent[0]), self.cols.through(footprint[1], extent[1]), self.t)

    def union(self, other: Window | None) -> Window:
        o = (None, None) if other is None else (other.rows, other.cols)
        return Window(self.rows.union(o[0]), self.cols.union(o[1]), self.t)

    def rows_of(self, a: int, b: int) -> Window:
        """The window of signals a:b."""
        return Window(self.rows, self.cols, self.t[a:b])

    def origins(self) -> tuple[Tensor, Tensor]:
        """(S,) rows and (S,) columns of each signal's window origin."""
        return (self.t[:, 0] * self.rows.scale + self.rows.offset, self.t[:, 1] * self.cols.scale + self.cols.offset)

    def crop(self, x: Tensor) -> Tensor:
        """Signal s's window of x[s % N] (x: (N, C, H, W) per image), zeros outside the map."""
        rows, cols = self.rows.positions(self.t[:, 0]), self.cols.positions(self.t[:, 1])
        image = torch.arange(len(self.t), device=x.device) % x.shape[0]
        return _gather(x, image, rows, cols)

    def place(self, x: Tensor, source: Window) -> Tensor:
        """x, laid out on the window `source`, laid out on this window instead: positions
        outside `source` or outside the map are zero."""
        if (source.rows, source.cols) == (self.rows, self.cols):
            return _zero_outside(x, self)
        rows = self.rows.positions(self.t[:, 0]) - source.rows.positions(self.t[:, 0])[:, :1]
        cols = self.cols.positions(self.t[:, 1]) - source.cols.positions(self.t[:, 1])[:, :1]
        inside = _inside(self.rows.positions(self.t[:, 0]), self.rows.extent)
        rows = torch.where(inside, rows, -1)
        inside = _inside(self.cols.positions(self.t[:, 1]), self.cols.extent)
        cols = torch.where(inside, cols, -1)
        return _gather(x, torch.arange(len(x), device=x.device), rows, cols)


def _inside(positions: Tensor, extent: int) -> Tensor:
    return (positions >= 0) & (positions < extent)


def _gather(x: Tensor, image: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """out[s, :, i, j] = x[image[s], :, rows[s, i], cols[s, j]], 0 where an index is outside x."""
    inside = _inside(rows, x.shape[2])[:, :, None] & _inside(cols, x.shape[3])[:, None, :]
    rows, cols = rows.clamp(0, x.shape[2] - 1), cols.clamp(0, x.shape[3] - 1)
    out = x[image[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (S, h, w, C)
    # Contiguous again: convolutions of a permuted tensor take a slow path.
    return torch.where(inside[..., None], out, 0).permute(0, 3, 1, 2).contiguous()


def _zero_outside(x: Tensor, window: Window) -> Tensor:
    """x with the positions of the window that lie outside the map set to zero."""
    rows, cols = window.rows.positions(window.t[:, 0]), window.cols.positions(window.t[:, 1])
    inside = _inside(rows, window.rows.extent)[:, None, :, None] & _inside(cols, window.cols.extent)[:, None, None, :]
    return x if bool(inside.all()) else x * inside


def box(signal: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """The smallest box holding each signal's non-zero values: origins (S, 2) and one
    size (h, w) for all (the largest)."""
    nonzero = signal != 0
    spans = []
    for axis in (2, 3):
        hit = nonzero.any(dim=1).any(dim=4 - axis)  # (S, extent): rows hit, then columns hit
        first = hit.float().argmax(1)
        last = hit.shape[1] - 1 - hit.flip(1).float().argmax(1)
        spans.append((first, (last - first).clamp(min=0) + 1))
    t = torch.stack([spans[0][0], spans[1][0]], 1)
    return t, (int(spans[0][1].max()), int(spans[1][1].max()))


def crop_bottleneck(r: Any, window: Window, extent: tuple[int, int], n: int) -> Any:
    """Every per-image map of the layer's output size in a bottleneck, cropped to `window`."""
    if isinstance(r, Tensor):
        if r.dim() == 4 and r.shape[0] == n and tuple(r.shape[-2:]) == extent:
            return window.crop(r)
        return r
    if isinstance(r, (tuple, list)) and not isinstance(r, torch.Size):
        return type(r)(crop_bottleneck(v, window, extent, n) for v in r)
    if dataclasses.is_dataclass(r) and not isinstance(r, type):  # a packed ReLU mask: its bits
        fields = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
        return dataclasses.replace(r, **{k: crop_bottleneck(v, window, extent, n) for k, v in fields.items()})
    return r
