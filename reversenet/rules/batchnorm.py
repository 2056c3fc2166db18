"""Batch normalisation in evaluation mode: a per-channel affine map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import Rule, family, rule

BATCHNORM = family("BatchNorm", nn.BatchNorm1d, nn.BatchNorm2d)


@rule(BATCHNORM, "bp")
class BatchNormTranspose(Rule):
    """Evaluation-mode batch norm reversed by its (diagonal) transpose.

    Forward: y_c = γ_c (x_c − μ_c) / sqrt(σ²_c + ε) + β_c with the running μ, σ²
    (whatever the module's training flag; the running statistics are not updated).
    Reverse: x̂_c = ŷ_c γ_c / sqrt(σ²_c + ε). Bottleneck: none.
    """

    pointwise = True

    def forward(self, bn: nn.modules.batchnorm._BatchNorm, x: Tensor) -> tuple[Tensor, None]:
        if bn.running_mean is None:
            raise NotImplementedError(f"{type(bn).__name__} without running statistics")
        y = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)
        return y, None

    def reverse(self, bn: nn.modules.batchnorm._BatchNorm, grad: Tensor, r: None) -> Tensor:
        assert bn.running_var is not None  # forward refuses a layer without running statistics
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        return grad * scale.view(1, -1, *[1] * (grad.dim() - 2)).to(grad)
