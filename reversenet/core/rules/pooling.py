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
_Size = int | tuple[int, int]  # one value for both axes, or (h, w)


def _max_pool(input: Tensor, kernel_size: _Size, stride: _Size | None = None, padding: _Size = 0,
              dilation: _Size = 1, ceil_mode: bool = False,
              return_indices: bool = False) -> nn.MaxPool2d:  # fmt: skip
    if return_indices:
        raise NotImplementedError("F.max_pool2d(..., return_indices=True)")
    return nn.MaxPool2d(kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)


def _avg_pool(input: Tensor, kernel_size: _Size, stride: _Size | None = None, padding: _Size = 0,
              ceil_mode: bool = False, count_include_pad: bool = True,
              divisor_override: int | None = None) -> nn.AvgPool2d:  # fmt: skip
    return nn.AvgPool2d(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


functional(F.max_pool2d, _max_pool)
functional(F.avg_pool2d, _avg_pool)
functional(F.adaptive_avg_pool2d, lambda input, output_size: nn.AdaptiveAvgPool2d(output_size))


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[-1])


def _window(pool: nn.MaxPool2d | nn.AvgPool2d) -> tuple[tuple[int, int], ...]:
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
    Bottleneck: the switches, log2(window size) bits per output, held as each
    argmax's offset within its window (see `decode_switches`): one byte per output
    (two for windows of more than 256 positions), of the pooled output's shape.
    """

    gradient = True

    def forward(self, pool: nn.MaxPool2d, x: Tensor) -> tuple[Tensor, tuple[Tensor, tuple]]:
        kernel, stride, padding, dilation = _window(pool)
        y, index = F.max_pool2d(
            x, kernel, stride, padding, dilation, ceil_mode=pool.ceil_mode, return_indices=True
        )
        return y, (encode_switches(index, pool, x.shape[-1]), tuple(x.shape[-2:]))

    def reverse(self, pool: nn.MaxPool2d, grad: Tensor, r: tuple[Tensor, tuple]) -> Tensor:
        offsets, size = r
        return _scatter_sum(grad, decode_switches(offsets, pool, size[1]), size)

    def bits(self, pool: nn.MaxPool2d, r: tuple[Tensor, tuple]) -> float:
        kernel = _window(pool)[0]
        return r[0].numel() * math.log2(kernel[0] * kernel[1])

    def footprint(self, pool: nn.MaxPool2d, r: Any) -> tuple[Footprint, Footprint]:
        return _footprint(pool)

    def reverse_window(self, pool: nn.MaxPool2d, grad: Tensor, r: tuple[Tensor, tuple], window: Window) -> Tensor:
        """The window's switches index its input window: output (i, j) of the window
        reads input row i·s_h + d_h·a, column j·s_w + d_w·b of it (origin −padding)."""
        padding, size = _window(pool)[2], _input_size(grad, pool)
        return _scatter_sum(grad, decode_switches(r[0], pool, size[1], in_origin=(-padding[0], -padding[1])), size)


def _window_starts(
    pool: nn.MaxPool2d, out_hw: tuple[int, ...], out_origin: tuple[int, int] = (0, 0), device: Any = None
) -> tuple[Tensor, Tensor]:
    """Where the windows of the outputs u = out_origin + (i, j) start in the input:
    u_r·s_h − p_h as a column (H', 1) and u_c·s_w − p_w as a row (W',)."""
    _, stride, padding, _ = _window(pool)
    rows, cols = (
        (torch.arange(out_hw[a], device=device) + out_origin[a]) * stride[a] - padding[a] for a in (0, 1)
    )
    return rows[:, None], cols


def encode_switches(index: Tensor, pool: nn.MaxPool2d, in_width: int) -> Tensor:
    """torch's switches (flat positions row·in_width + col in each input plane, as
    ``F.max_pool2d(..., return_indices=True)`` gives them) as offsets within each
    window: t = a·k_w + b for the tap at row a, column b of the kernel, where
    row = u_r·s_h − p_h + d_h·a and col = u_c·s_w − p_w + d_w·b. uint8 while the
    window has at most 256 positions, else int16 (int32 beyond 32768)."""
    kernel, _, _, dilation = _window(pool)
    row0, col0 = _window_starts(pool, index.shape[-2:], device=index.device)
    a = (index.div(in_width, rounding_mode="floor") - row0).div_(dilation[0], rounding_mode="floor")
    b = (index.remainder(in_width) - col0).div_(dilation[1], rounding_mode="floor")
    size = kernel[0] * kernel[1]
    dtype = torch.uint8 if size <= 2**8 else torch.int16 if size <= 2**15 else torch.int32
    return a.mul_(kernel[1]).add_(b).to(dtype)


def decode_switches(
    offsets: Tensor,
    pool: nn.MaxPool2d,
    in_width: int,
    out_origin: tuple[int, int] = (0, 0),
    in_origin: tuple[int, int] = (0, 0),
) -> Tensor:
    """The input position of each output's maximum, as a flat index within a window
    of the input planes: the inverse of `encode_switches`, for the whole pooled output
    or a crop of it.

    `offsets` (..., H', W') holds the switches of the outputs u = out_origin + (i, j)
    (a plain slice ``offsets[..., r0:r1, c0:c1]`` of the recorded switches has
    out_origin = (r0, c0)); offset t says the maximum is the kernel's tap
    (a, b) = (t // k_w, t mod k_w), at the input position (in the whole input,
    unpadded)

        row = u_r·s_h − p_h + d_h·a,    col = u_c·s_w − p_w + d_w·b.

    The result, int64 of `offsets`' shape, is (row − in_origin_r)·in_width
    + (col − in_origin_c): the flat index within the input window whose top-left
    corner is `in_origin` and whose width is `in_width`. With the defaults and the
    input's width it is exactly torch's ``return_indices``. Positions are not
    checked: the input window must hold the receptive field of the output window.
    """
    kernel, _, _, dilation = _window(pool)
    row0, col0 = _window_starts(pool, offsets.shape[-2:], out_origin, offsets.device)
    start = (row0 - in_origin[0]) * in_width + (col0 - in_origin[1])  # each window's tap (0, 0)
    t = torch.arange(kernel[0] * kernel[1], device=offsets.device)
    shift = dilation[0] * (t // kernel[1]) * in_width + dilation[1] * (t % kernel[1])  # tap t from tap (0, 0)
    # index_select: a vectorised gather, about twice as fast as take on CPU
    return shift.index_select(0, offsets.long().flatten()).view(offsets.shape).add_(start)


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

    def footprint(self, pool: nn.MaxPool2d, r: Any) -> tuple[Footprint, Footprint]:
        return _footprint(pool)

    def reverse_window(self, pool: nn.MaxPool2d, grad: Tensor, size: tuple, window: Window) -> Tensor:
        kernel, stride, padding, dilation = _window(pool)
        centres = []
        for a, axis in enumerate((window.rows, window.cols)):
            every = _centres(size[a], axis.extent, kernel[a], stride[a], padding[a], dilation[a]).to(grad.device)
            centres.append(every[axis.positions(window.t[:, a]).clamp(0, axis.extent - 1)])
        return _scatter_window(grad, centres[0][:, None, :, None], centres[1][:, None, None, :], pool, window)


def _footprint(pool: nn.MaxPool2d | nn.AvgPool2d) -> tuple[Footprint, Footprint]:
    kernel, stride, padding, dilation = _window(pool)
    h, w = ((kernel[a], stride[a], padding[a], dilation[a]) for a in (0, 1))
    return h, w


def _input_size(grad: Tensor, pool: nn.MaxPool2d) -> tuple[int, int]:
    """The size of the input window that an output window of grad's size reads."""
    h, w = ((n - 1) * s + d * (k - 1) + 1 for n, (k, s, _, d) in zip(grad.shape[2:], _footprint(pool)))
    return h, w


def _scatter_window(grad: Tensor, rows: Tensor, cols: Tensor, pool: nn.MaxPool2d, window: Window) -> Tensor:
    """x̂ on the input window of `window` (an output window): each ŷ[u] added at input
    (rows[u], cols[u]), absolute map positions (tensors broadcasting to grad's shape)."""
    footprint, size = _footprint(pool), _input_size(grad, pool)
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

    gradient = True

    def forward(self, pool: nn.Module, x: Tensor) -> tuple[Tensor, tuple]:
        return pool(x), tuple(x.shape[-2:])

    def reverse(self, pool: nn.Module, grad: Tensor, size: tuple) -> Tensor:
        p_h, p_w = (self.matrix(pool, size[a], grad.shape[2 + a], a).to(grad) for a in (0, 1))
        return torch.einsum("ncij,ia,jb->ncab", grad, p_h, p_w)

    def reverse_window(self, pool: nn.Module, grad: Tensor, size: tuple, window: Window) -> Tensor:
        """On a window: the rows of P of the window's outputs, the columns of its inputs
        (zero outside the maps), per signal."""
        footprint = self.footprint(pool, size)
        assert footprint is not None  # the engine reverses on windows only through a footprint
        p = []
        for a, (out, (k, s, pad, d)) in enumerate(zip((window.rows, window.cols), footprint)):
            every = self.matrix(pool, size[a], out.extent, a).to(grad)
            u = out.positions(window.t[:, a])  # (S, h) outputs
            v = (u[:, :1] * s - pad) + torch.arange((out.size - 1) * s + d * (k - 1) + 1, device=u.device)
            inside = ((u >= 0) & (u < out.extent))[:, :, None] & ((v >= 0) & (v < size[a]))[:, None, :]
            picked = every[u.clamp(0, out.extent - 1)[:, :, None], v.clamp(0, size[a] - 1)[:, None, :]]
            p.append(torch.where(inside, picked, 0))
        return torch.einsum("scij,sia,sjb->scab", grad, *p)

    def matrix(self, pool: Any, n_in: int, n_out: int, axis: int) -> Tensor:
        raise NotImplementedError


def _window_matrix(start: Tensor, end: Tensor, n_in: int, weight: Tensor) -> Tensor:
    """(n_out, n_in) matrix with `weight[u]` (float64) on positions start[u] <= v < end[u]."""
    v = torch.arange(n_in)
    inside = (v >= start[:, None]) & (v < end[:, None])
    return inside * weight[:, None]


@rule(AVGPOOL, "bp")
class AvgPoolTranspose(AveragePool):
    __doc__ = (AveragePool.__doc__ or "") + """
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
    __doc__ = (AveragePool.__doc__ or "") + """
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

    gradient = True

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
