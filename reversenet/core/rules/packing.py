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
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

# Every loop below works on one bit, i.e. channels b, b + 8, b + 16, … (x[:, b::8]): whole
# planes of an (N, C, H, W) map, so the temporaries are an eighth of the map's size.


def pack(x: Tensor, test: Callable[[Tensor], Tensor] = lambda m: m) -> Tensor:
    """The bits of the boolean mask test(x) (x: (N, C, *S)), as uint8 (N, ⌈C/8⌉, *S);
    `test` runs on an eighth of the channels at a time, so the mask is never whole."""
    if x.dim() < 2:
        raise ValueError(f"a mask needs a channel axis (N, C, ...), got shape {tuple(x.shape)}")
    n, c, *spatial = x.shape
    packed = torch.zeros(n, -(-c // 8), *spatial, dtype=torch.uint8, device=x.device)
    for b in range(min(c, 8)):
        bit = test(x[:, b::8]).to(torch.uint8).bitwise_left_shift_(b)
        packed[:, : bit.shape[1]].bitwise_or_(bit)
    return packed


def _bit(packed: Tensor, b: int, channels: int) -> Tensor:
    """Bit b of `packed` as uint8 0 or 1 (a float times uint8 is fast, times bool slow):
    the mask of channels b, b + 8, … < channels."""
    return packed[:, : len(range(b, channels, 8))].bitwise_right_shift(b).bitwise_and_(1)


def unpack(packed: Tensor, channels: int) -> Tensor:
    """The boolean mask (N, channels, *S) that `packed` (N, ⌈channels/8⌉, *S) holds."""
    mask = torch.empty(len(packed), channels, *packed.shape[2:], dtype=torch.bool, device=packed.device)
    for b in range(min(channels, 8)):
        mask[:, b::8] = _bit(packed, b, channels)
    return mask


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
    def of(cls, x: Tensor, test: Callable[[Tensor], Tensor] = lambda m: m) -> PackedMask:
        """The mask test(x); with the default test, x is the boolean mask (see `pack`)."""
        x = x if x.dim() >= 2 else x.reshape(-1, 1)
        return cls(pack(x, test), x.shape[1])

    def unpack(self) -> Tensor:
        return unpack(self.bits, self.channels)

    def numel(self) -> int:
        """The number of mask elements (bits of information)."""
        return self.bits.shape[0] * self.channels * math.prod(self.bits.shape[2:])

    def __rmul__(self, grad: Tensor) -> Tensor:
        return self._apply(grad, grad.new_empty(grad.shape))

    def mask_(self, signal: Tensor) -> Tensor:
        signal = signal.contiguous()
        return self._apply(signal, signal)

    def _apply(self, signal: Tensor, out: Tensor) -> Tensor:
        """out = signal ⊙ mask, bit by bit; signals (K·N, …) as (K, N, …) against (N, …).
        `out` is contiguous: splitting its batch axis is a view."""
        shape = (-1, *self.bits.shape[:1], self.channels, *self.bits.shape[2:])
        signal, viewed = signal.reshape(shape), out.view(shape)
        for b in range(min(self.channels, 8)):
            torch.mul(signal[:, :, b::8], _bit(self.bits, b, self.channels), out=viewed[:, :, b::8])
        return out
