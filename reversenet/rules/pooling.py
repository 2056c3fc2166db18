"""Pooling: max pooling (the paper's MP†: switches or unpool to centre) and average
pooling (linear, reversed by its exact transpose)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..window import Footprint, Window
from .registry import Rule, family, functional, rule

MAXPOOL = family("MaxPool2d", nn.MaxPool2d)
AVGPOOL = family("AvgPool2d", nn.AvgPool2d)
ADAPTIVE_AVGPOOL = family("AdaptiveAvgPool2d", nn.AdaptiveAvgPool2d)
MEAN = family("Mean", torch.mean, torch.Tensor.mean)


def _max_pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices:
        raise NotImplementedError("F.max_pool2d(..., return_indices=True)")
    return nn.MaxPool2d(kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)


def _avg_pool(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    return nn.AvgPool2d(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


functional(F.max_pool2d, _max_pool)
functional(F.avg_pool2d, _avg_pool)
functional(F.adaptive_avg_pool2d, lambda input, output_size: nn.AdaptiveAvgPool2d(output_size))


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[-1])


def _window(pool: nn.Module) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, padding, dilation) of a pooling module, each as (h, w)."""
    kernel = _pair(pool.kernel_size)
    stride = _pair(pool.stride or pool.kernel_size)
    return kernel, stride, _pair(pool.padding), _pair(getattr(pool, "dilation", 1))


def _scatter_sum(grad: Tensor, index: Tensor, size: tuple[int, int]) -> Tensor:
    """x̂[v] = Σ_{u : index[u] = v} ŷ[u] over each (sample, channel) plane of `size`."""
    n, c = grad.shape[:2]
    out = grad.new_zeros(n, c, size[0] * size[1])
    out.scatter_add_(2, index.expand(n, c, *index.shape[-2:]).flatten(2), grad.flatten(2))
    return out.view(n, c, *size)


@rule(MAXPOOL, "switches")
class MaxPoolSwitches(Rule):
    """Unpool through the pooling switches (backpropagation of max pooling).

    Forward: y[u] = max_{v ∈ window(u)} x[v], switch s(u) = its argmax.
    Reverse: x̂[v] = Σ_{u : s(u) = v} ŷ[u]. A sum, not an assignment: overlapping
    windows (AlexNet's 3×3 stride 2) can pick the same v for several u.
    Bottleneck: the switches, log2(window size) bits per output.
    """

    def forward(self, pool: nn.MaxPool2d, x: Tensor) -> tuple[Tensor, tuple[Tensor, tuple]]:
        kernel, stride, padding, dilation = _window(pool)
        y, switches = F.max_pool2d(
            x, kernel, stride, padding, dilation, ceil_mode=pool.ceil_mode, return_indices=True
        )
        return y, (switches, tuple(x.shape[-2:]))

    def reverse(self, pool: nn.MaxPool2d, grad: Tensor, r: tuple[Tensor, tuple]) -> Tensor:
        switches, size = r
        return _scatter_sum(grad, switches, size)

    def bits(self, pool: nn.MaxPool2d, r: tuple[Tensor, tuple]) -> float:
        kernel = _window(pool)[0]
        return r[0].numel() * math.log2(kernel[0] * kernel[1])

    def footprint(self, pool: nn.Module, r: Any) -> tuple[Footprint, Footprint]:
        return _footprint(pool)

    def reverse_window(self, pool: nn.MaxPool2d, grad: Tensor, r: tuple[Tensor, tuple], window: Window) -> Tensor:
        switches, size = r
        rows, cols = switches.div(size[1], rounding_mode="floor"), switches.remainder(size[1])
        return _scatter_window(grad, rows, cols, pool, window)


@rule(MAXPOOL, "center")
class MaxPoolCenter(Rule):
    """Unpool to the centre of each window: no bottleneck at all.

    Reverse: x̂[v] = Σ_{u : c(u) = v} ŷ[u], where along each axis the window of
    output u starts at a = u·stride − padding and c(u) = a + dilation·(k // 2) (for
    even k the later of the two middle positions). A centre outside the input
    (padding, ceil_mode) is moved to the nearest window position inside it.
    Bottleneck: x's size only.
    """

    def forward(self, pool: nn.MaxPool2d, x: Tensor) -> tuple[Tensor, tuple]:
        return pool(x), tuple(x.shape[-2:])

    def reverse(self, pool: nn.MaxPool2d, grad: Tensor, size: tuple) -> Tensor:
        kernel, stride, padding, dilation = _window(pool)
        rows, cols = (
            _centres(size[a], grad.shape[2 + a], kernel[a], stride[a], padding[a], dilation[a])
            for a in (0, 1)
        )
        index = (rows[:, None] * size[1] + cols[None, :]).to(grad.device)
        return _scatter_sum(grad, index, size)

    def footprint(self, pool: nn.Module, r: Any) -> tuple[Footprint, Footprint]:
        return _footprint(pool)

    def reverse_window(self, pool: nn.MaxPool2d, grad: Tensor, size: tuple, window: Window) -> Tensor:
        kernel, stride, padding, dilation = _window(pool)
        centres = []
        for a, axis in enumerate((window.rows, window.cols)):
            every = _centres(size[a], axis.extent, kernel[a], stride[a], padding[a], dilation[a]).to(grad.device)
            centres.append(every[axis.positions(window.t[:, a]).clamp(0, axis.extent - 1)])
        return _scatter_window(grad, centres[0][:, None, :, None], centres[1][:, None, None, :], pool, window)


def _footprint(pool: nn.Module) -> tuple[Footprint, Footprint]:
    kernel, stride, padding, dilation = _window(pool)
    return tuple((kernel[a], stride[a], padding[a], dilation[a]) for a in (0, 1))


def _scatter_window(grad: Tensor, rows: Tensor, cols: Tensor, pool: nn.Module, window: Window) -> Tensor:
    """x̂ on the input window of `window` (an output window): each ŷ[u] added at input
    (rows[u], cols[u]), absolute map positions (tensors broadcasting to grad's shape)."""
    footprint = _footprint(pool)
    size = tuple((n - 1) * s + d * (k - 1) + 1 for n, (k, s, _, d) in zip(grad.shape[2:], footprint))
    top, left = (o * s - p for o, (_, s, p, _) in zip(window.origins(), footprint))
    rows = (rows - top.view(-1, 1, 1, 1)).clamp(0, size[0] - 1)  # outside the map ŷ is 0: any index
    cols = (cols - left.view(-1, 1, 1, 1)).clamp(0, size[1] - 1)
    return _scatter_sum(grad, rows * size[1] + cols, size)


def _centres(n_in: int, n_out: int, k: int, stride: int, pad: int, dil: int) -> Tensor:
    """Input position of each output's window centre along one axis."""
    start = torch.arange(n_out) * stride - pad
    first = (-start).clamp(min=0).add(dil - 1).div(dil, rounding_mode="floor")
    last = (n_in - 1 - start).div(dil, rounding_mode="floor").clamp(max=k - 1)
    tap = torch.full_like(start, k // 2).clamp(min=first).clamp(max=last)
    return start + dil * tap


class AveragePool(Rule):
    """Average pooling reversed by its exact transpose.

    Average pooling is separable: y = P_h x P_wᵀ per channel, where row u of P
    holds 1/(window size) on the input positions of u's window. Reverse:
    x̂ = P_hᵀ ŷ P_w. Bottleneck: x's size only.
    """

    def forward(self, pool: nn.Module, x: Tensor) -> tuple[Tensor, tuple]:
        return pool(x), tuple(x.shape[-2:])

    def reverse(self, pool: nn.Module, grad: Tensor, size: tuple) -> Tensor:
        p_h, p_w = (self.matrix(pool, size[a], grad.shape[2 + a], a).to(grad) for a in (0, 1))
        return torch.einsum("ncij,ia,jb->ncab", grad, p_h, p_w)

    def reverse_window(self, pool: nn.Module, grad: Tensor, size: tuple, window: Window) -> Tensor:
        """On a window: the rows of P of the window's outputs, the columns of its inputs
        (zero outside the maps), per signal."""
        p = []
        for a, (out, (k, s, pad, d)) in enumerate(zip((window.rows, window.cols), _footprint(pool))):
            every = self.matrix(pool, size[a], out.extent, a).to(grad)
            u = out.positions(window.t[:, a])  # (S, h) outputs
            v = (u[:, :1] * s - pad) + torch.arange((out.size - 1) * s + d * (k - 1) + 1, device=u.device)
            inside = ((u >= 0) & (u < out.extent))[:, :, None] & ((v >= 0) & (v < size[a]))[:, None, :]
            picked = every[u.clamp(0, out.extent - 1)[:, :, None], v.clamp(0, size[a] - 1)[:, None, :]]
            p.append(torch.where(inside, picked, 0))
        return torch.einsum("scij,sia,sjb->scab", grad, *p)

    def matrix(self, pool: nn.Module, n_in: int, n_out: int, axis: int) -> Tensor:
        raise NotImplementedError


def _window_matrix(start: Tensor, end: Tensor, n_in: int, weight: Tensor) -> Tensor:
    """(n_out, n_in) matrix with `weight[u]` (float64) on positions start[u] <= v < end[u]."""
    v = torch.arange(n_in)
    inside = (v >= start[:, None]) & (v < end[:, None])
    return inside * weight[:, None]


@rule(AVGPOOL, "bp")
class AvgPoolTranspose(AveragePool):
    __doc__ = AveragePool.__doc__ + """
    Window sizes follow torch: clipped to the padded input (ceil_mode), counting the
    padding unless count_include_pad=False; divisor_override replaces the product.
    """

    def footprint(self, pool: nn.AvgPool2d, size: tuple) -> tuple[Footprint, Footprint]:
        return _footprint(pool)

    def matrix(self, pool: nn.AvgPool2d, n_in: int, n_out: int, axis: int) -> Tensor:
        kernel, stride, padding, _ = _window(pool)
        k, s, p = kernel[axis], stride[axis], padding[axis]
        start = torch.arange(n_out) * s - p
        end = (start + k).clamp(max=n_in + p)
        padded_size = end - start
        start, end = start.clamp(min=0), end.clamp(max=n_in)
        if pool.divisor_override:  # one axis carries the whole constant divisor
            weight = torch.full((n_out,), 1.0 / pool.divisor_override if axis == 0 else 1.0, dtype=torch.float64)
        else:
            weight = 1.0 / (padded_size if pool.count_include_pad else end - start).double()
        return _window_matrix(start, end, n_in, weight)


@rule(ADAPTIVE_AVGPOOL, "bp")
class AdaptiveAvgPoolTranspose(AveragePool):
    __doc__ = AveragePool.__doc__ + """
    Output u's window is [floor(u·n/m), ceil((u+1)·n/m)) for n inputs, m outputs.
    """

    def matrix(self, pool: nn.AdaptiveAvgPool2d, n_in: int, n_out: int, axis: int) -> Tensor:
        u = torch.arange(n_out)
        start = (u * n_in).div(n_out, rounding_mode="floor")
        end = torch.tensor([math.ceil((i + 1) * n_in / n_out) for i in range(n_out)])
        return _window_matrix(start, end, n_in, 1.0 / (end - start).double())


@rule(MEAN, "bp")
class MeanTranspose(Rule):
    """A mean over axes (MNASNet's global pooling ``x.mean([2, 3])``), reversed by its
    transpose: x̂ = ŷ spread evenly, ŷ / (number of averaged elements), over the
    averaged axes. The batch axis must not be averaged. Bottleneck: x's shape."""

    def forward(self, op: Any, x: Tensor, dim: Any = None, keepdim: bool = False, **kwargs: Any) -> tuple[Tensor, tuple]:
        dims = tuple(range(x.dim())) if dim is None else (dim,) if isinstance(dim, int) else tuple(dim)
        dims = tuple(sorted(d % x.dim() for d in dims))
        if 0 in dims:
            raise NotImplementedError("a mean over the batch axis")
        return x.mean(dims, keepdim=keepdim, **kwargs), (x.shape[1:], dims, keepdim)

    def reverse(self, op: Any, grad: Tensor, r: tuple) -> Tensor:
        shape, dims, keepdim = r
        if not keepdim:
            for d in dims:
                grad = grad.unsqueeze(d)
        count = math.prod(shape[d - 1] for d in dims)
        return grad.expand(grad.shape[0], *shape) / count
