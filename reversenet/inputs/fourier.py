"""The Fourier analogy of the paper's Fig. 7 (Sect. 3.4): a photo keeps its structure when its
amplitude spectrum is replaced by a random one and only its phase is kept, as a reversed
network keeps it when only its bottleneck (switches, masks) is kept.

    fourier(x) = F⁻¹[F[x]]                        (the round trip: x itself)
    phase(x)   = Re F⁻¹[|F[n]| · exp(i ∠F[x])]    (n: Gaussian noise, seeded)

per colour channel, as real (C, H, W) images to render like a reversed network's output.
"""

from __future__ import annotations

import torch
from torch import Tensor


def fourier(x: Tensor) -> Tensor:
    """F⁻¹[F[x]] over the last two axes, real part."""
    return torch.fft.ifft2(torch.fft.fft2(x.double())).real


def phase(x: Tensor, seed: int = 0) -> Tensor:
    """x's phase with the amplitude of Gaussian noise's spectrum (seeded), real part."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    amplitude = torch.fft.fft2(noise).abs().to(x.device)
    return torch.fft.ifft2(amplitude * torch.exp(1j * torch.fft.fft2(x.double()).angle())).real
