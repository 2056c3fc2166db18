"""Boolean masks kept as bits, 8 to a byte, packed along the channel axis.

A mask m of shape (N, C, *S) (S: the spatial axes, possibly none, as for a Linear
layer's (N, C)) is stored as the uint8 tensor p of shape (N, ⌈C/8⌉, *S):

    p[n, g, s] = Σ_{b=0}^{7} m[n, 8g + b, s] · 2^b        (m[n, c, s] = 0 for c ≥ C)
    m[n, c, s] = (p[n, ⌊c/8⌋, s] >> (c mod 8)) & 1

Why the channel axis: each byte holds 8 channels of one sample at one spatial
position, so any spatial window of p is a plain slice, p[..., r0:r1, c0:c1], and it
unpacks to m[..., r0:r1, c0:c1] (a crop of the bottleneck for a restricted reverse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def _shifts(like: Tensor) -> Tensor:
    """0 … 7 as uint8, shaped to broadcast along the bit axis of (N, G, 8, *S)."""
    return torch.arange(8, dtype=torch.uint8, device=like.device).view(8, *[1] * (like.dim() - 2))


def pack(mask: Tensor) -> Tensor:
    """The bits of a boolean mask (N, C, *S), as uint8 (N, ⌈C/8⌉, *S)."""
    if mask.dim() < 2:
        raise ValueError(f"a mask needs a channel axis (N, C, ...), got shape {tuple(mask.shape)}")
    n, c, *spatial = mask.shape
    groups = -(-c // 8)
    padded = mask.new_zeros(n, 8 * groups, *spatial, dtype=torch.uint8)
    padded[:, :c] = mask
    return (padded.view(n, groups, 8, *spatial) << _shifts(mask)).sum(2, dtype=torch.uint8)


def unpack(packed: Tensor, channels: int) -> Tensor:
    """The boolean mask (N, channels, *S) that `packed` (N, ⌈channels/8⌉, *S) holds."""
    return _ones(packed, channels).view(torch.bool)  # 0 or 1: valid bools


def _ones(packed: Tensor, channels: int) -> Tensor:
    """The mask as uint8 0 or 1: it multiplies a float tensor faster than a bool one."""
    n, groups, *spatial = packed.shape
    bits = (packed.unsqueeze(2) >> _shifts(packed)).bitwise_and_(1)
    return bits.reshape(n, 8 * groups, *spatial)[:, :channels]  # a copy only for odd strides (1×1 crops)


@dataclass(frozen=True)
class PackedMask:
    """A ReLU mask as bits (see the module's docstring), unpacked on the fly:
    ``grad * mask`` masks a signal as the boolean mask would; ``mask.mask_(signal)``
    does it in place, in a signal the caller owns (one float tensor fewer).

    A signal may carry K signals per sample (batch K·N, sample i of copy k at
    k·N + i, as the engine repeats a bottleneck): the mask is broadcast, not copied.
    A mask without a channel axis, (N,), is kept as (N, 1).
    A spatial crop is ``PackedMask(mask.bits[..., r0:r1, c0:c1], mask.channels)``.
    """

    bits: Tensor  # uint8 (N, ⌈channels/8⌉, *S)
    channels: int

    @classmethod
    def of(cls, mask: Tensor) -> PackedMask:
        mask = mask if mask.dim() >= 2 else mask.reshape(-1, 1)
        return cls(pack(mask), mask.shape[1])

    def unpack(self) -> Tensor:
        return unpack(self.bits, self.channels)

    def numel(self) -> int:
        """The number of mask elements (bits of information)."""
        return self.bits.shape[0] * self.channels * math.prod(self.bits.shape[2:])

    def __rmul__(self, grad: Tensor) -> Tensor:
        ones = _ones(self.bits, self.channels)
        return (grad.reshape(-1, *ones.shape) * ones).reshape(grad.shape)  # (K, N, ...) against (N, ...)

    def mask_(self, signal: Tensor) -> Tensor:
        ones = _ones(self.bits, self.channels)
        signal = signal.contiguous()  # then splitting the batch axis is a view
        signal.view(-1, *ones.shape).mul_(ones)
        return signal
