"""Batch normalisation in evaluation mode: a per-channel affine map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import Rule, computed, family, functional, holding, rule

BATCHNORM = family("BatchNorm", nn.BatchNorm1d, nn.BatchNorm2d)


def _batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
                bias: Tensor | None = None, training: bool = False, momentum: float = 0.1,
                eps: float = 1e-5) -> nn.BatchNorm2d:  # fmt: skip
    if training or running_mean is None or running_var is None:
        raise NotImplementedError("batch norm with the batch's statistics")
    if computed(running_mean, running_var, weight, bias):
        raise NotImplementedError("batch norm whose statistics or affine map are computed in the forward")
    bn = nn.BatchNorm2d(len(running_mean), eps=eps, device="meta")
    return holding(bn, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)


functional(F.batch_norm, _batch_norm)  # timm's BatchNormAct2d calls it, then its activation


@rule(BATCHNORM, "bp")
class BatchNormTranspose(Rule):
    """Evaluation-mode batch norm reversed by its (diagonal) transpose.

    Forward: y_c = γ_c (x_c − μ_c) / sqrt(σ²_c + ε) + β_c with the running μ, σ²
    (whatever the module's training flag; the running statistics are not updated).
    Reverse: x̂_c = ŷ_c γ_c / sqrt(σ²_c + ε). Bottleneck: none.
    """

    gradient = True

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
