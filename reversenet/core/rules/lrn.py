"""Local response normalisation (AlexNet/CaffeNet), reversed as the identity or by
its exact vector-Jacobian product."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .registry import Rule, family, functional, rule

LRN = family("LocalResponseNorm", nn.LocalResponseNorm)
functional(
    F.local_response_norm,
    lambda input, size, alpha=1e-4, beta=0.75, k=1.0: nn.LocalResponseNorm(size, alpha, beta, k),
)


@rule(LRN, "identity")
class LrnIdentity(Rule):
    """x̂ = ŷ, as in DeConvNet (the paper's default outside SaliNet). Bottleneck: none."""

    pointwise = True  # it mixes channels, not positions

    def forward(self, lrn: nn.LocalResponseNorm, x: Tensor) -> tuple[Tensor, None]:
        return lrn(x), None

    def reverse(self, lrn: nn.LocalResponseNorm, grad: Tensor, r: None) -> Tensor:
        return grad


@rule(LRN, "bp")
class LrnBP(Rule):
    """The exact vector-Jacobian product of LRN. Bottleneck: the input x.

    Forward (torch's definition, n = size): y_c = x_c · d_c^(−β) with
    d_c = k + (α/n) Σ_{j ∈ W(c)} x_j²,  W(c) = [c − ⌊n/2⌋, c + ⌊(n−1)/2⌋].
    Reverse: x̂_i = ŷ_i d_i^(−β) − (2αβ/n) x_i Σ_{c : i ∈ W(c)} ŷ_c x_c d_c^(−β−1),
    where i ∈ W(c) ⇔ c ∈ [i − ⌊(n−1)/2⌋, i + ⌊n/2⌋].
    """

    gradient = True

    pointwise = True

    def forward(self, lrn: nn.LocalResponseNorm, x: Tensor) -> tuple[Tensor, Tensor]:
        return lrn(x), x

    def reverse(self, lrn: nn.LocalResponseNorm, grad: Tensor, x: Tensor) -> Tensor:
        n, alpha, beta = lrn.size, lrn.alpha, lrn.beta
        d = lrn.k + alpha / n * _channel_sum(x * x, n // 2, (n - 1) // 2)
        back = _channel_sum(grad * x * d.pow(-beta - 1), (n - 1) // 2, n // 2)
        return grad * d.pow(-beta) - (2 * alpha * beta / n) * x * back

    def bits(self, lrn: nn.LocalResponseNorm, x: Tensor) -> float:
        return float(x.numel() * x.element_size() * 8)


def _channel_sum(t: Tensor, before: int, after: int) -> Tensor:
    """s_c = Σ t_j for j in [c − before, c + after] (zero outside the channels)."""
    padded = F.pad(t, (0, 0) * (t.dim() - 2) + (before, after))
    return padded.unfold(1, before + after + 1, 1).sum(-1)
