"""An independent oracle: autograd on a copy of the model whose ReLU, max-pooling and
LRN backward passes are replaced as DESIGN.md defines each variant.

Nothing here uses reversenet's engine, graph or rules: the copy is run by its own
forward, and autograd composes the layers.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

RELU_BACKWARD = {
    "identity": lambda g, x: g,
    "relu": lambda g, x: g.clamp(min=0),
    "bp": lambda g, x: g * (x > 0),
    "hybrid": lambda g, x: g.clamp(min=0) * (x > 0),
}

# variant -> (ReLU backward, max-pool backward, LRN backward)
VARIANTS = {
    "identity": ("identity", "switches", "identity"),
    "deconvnet": ("relu", "switches", "identity"),
    "salinet": ("bp", "switches", "bp"),
    "desalinet": ("hybrid", "switches", "identity"),
}
VARIANTS.update({f"{k}-center": (r, "center", lrn) for k, (r, _, lrn) in list(VARIANTS.items())})


class _ReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, mode):
        ctx.save_for_backward(x)
        ctx.mode = mode
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return RELU_BACKWARD[ctx.mode](g, x), None


class _IdentityBackward(torch.autograd.Function):
    """Forward through `fn`, backward as the identity (LRN† = identity)."""

    @staticmethod
    def forward(ctx, x, fn):
        return fn(x)

    @staticmethod
    def backward(ctx, g):
        return g, None


def centre_positions(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> list[int]:
    """Brute force, from DESIGN.md: nominal centre start + d·(k//2), else the nearest
    window position inside the input."""
    out = []
    for u in range(n_out):
        start = u * s - p
        nominal = start + d * (k // 2)
        inside = [start + d * j for j in range(k) if 0 <= start + d * j < n_in]
        out.append(min(inside, key=lambda v: abs(v - nominal)))
    return out


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class _MaxPoolCenter(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, pool):
        y = pool(x)
        k, s, p, d = (_pair(v) for v in (pool.kernel_size, pool.stride or pool.kernel_size, pool.padding, pool.dilation))
        ctx.rows = centre_positions(x.shape[2], y.shape[2], k[0], s[0], p[0], d[0])
        ctx.cols = centre_positions(x.shape[3], y.shape[3], k[1], s[1], p[1], d[1])
        ctx.size = x.shape
        return y

    @staticmethod
    def backward(ctx, g):
        out = g.new_zeros(ctx.size)
        for i in range(g.shape[2]):
            for j in range(g.shape[3]):
                out[:, :, ctx.rows[i], ctx.cols[j]] += g[:, :, i, j]
        return out, None


class _Replaced(nn.Module):
    def __init__(self, inner: nn.Module, kind: str, mode: str):
        super().__init__()
        self.inner, self.kind, self.mode = inner, kind, mode

    def forward(self, x):
        if self.kind == "relu":
            return _ReLU.apply(x, self.mode)
        if self.kind == "pool":
            return _MaxPoolCenter.apply(x, self.inner) if self.mode == "center" else self.inner(x)
        return _IdentityBackward.apply(x, self.inner) if self.mode == "identity" else self.inner(x)


def _replace(model: nn.Module, relu: str, pool: str, lrn: str) -> None:
    for name, child in model.named_children():
        if isinstance(child, nn.ReLU):
            setattr(model, name, _Replaced(child, "relu", relu))
        elif isinstance(child, nn.MaxPool2d):
            setattr(model, name, _Replaced(child, "pool", pool))
        elif isinstance(child, nn.LocalResponseNorm):
            setattr(model, name, _Replaced(child, "lrn", lrn))
        else:
            _replace(child, relu, pool, lrn)


class _Stop(Exception):
    pass


def reference(model: nn.Module, x: torch.Tensor, layer: str, variant: str, signal=None):
    """The reversed image of `signal` (default: one-hot at the most active neuron per
    image) at `layer`, by autograd with the variant's backward passes."""
    copy_ = copy.deepcopy(model).eval()
    _replace(copy_, *VARIANTS[variant])
    captured = {}

    def hook(module, inputs, output):
        captured["y"] = output
        raise _Stop

    copy_.get_submodule(layer).register_forward_hook(hook)
    x = x.detach().clone().requires_grad_(True)
    try:
        copy_(x)
    except _Stop:
        pass
    y = captured["y"]
    if signal is None:
        flat = y.detach().flatten(1)
        signal = torch.zeros_like(flat).scatter_(1, flat.argmax(1, keepdim=True), 1.0).view_as(y)
    (grad,) = torch.autograd.grad(y, x, signal)
    return grad


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def lrn_net() -> nn.Module:
    """A small CaffeNet-like network with LRN, overlapping pooling and a classifier."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 7, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(16, 24, 5, padding=2, groups=2), nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(24, 32, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Dropout(),
        nn.Linear(32 * 9, 10),
    ).eval()  # fmt: skip
