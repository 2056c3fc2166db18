"""An independent oracle: autograd through the model's own forward, with the backward
of ReLU (and ReLU6), max pooling and LRN replaced as docs/design.md defines each variant.

Nothing here uses reversenet's engine, graph or rules. The replacement is a
TorchFunctionMode, so it catches modules (nn.ReLU calls F.relu) and functional
calls (GoogLeNet's F.relu, Inception's F.max_pool2d) alike; the model is not copied
or changed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

RELU_BACKWARD = {
    "identity": lambda g, mask: g,
    "relu": lambda g, mask: g.clamp(min=0),
    "bp": lambda g, mask: g * mask,
    "hybrid": lambda g, mask: g.clamp(min=0) * mask,
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
    """min(max(x, 0), top) forward; the variant's backward with mask [0 < x < top]."""

    @staticmethod
    def forward(ctx, x, mode, top):
        ctx.mode = mode
        ctx.save_for_backward((x > 0) & (x < top) if top is not None else x > 0)
        return x.clamp(min=0, max=top)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return RELU_BACKWARD[ctx.mode](g, mask), None, None


class _IdentityBackward(torch.autograd.Function):
    """Forward through `fn`, backward as the identity (LRN† = identity)."""

    @staticmethod
    def forward(ctx, x, fn):
        return fn(x)

    @staticmethod
    def backward(ctx, g):
        return g, None


def centre_positions(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> list[int]:
    """Brute force, from docs/design.md §1: nominal centre start + d·(k//2), else the nearest
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
    def forward(ctx, x, kernel, stride, padding, dilation, ceil_mode):
        y = F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=ceil_mode)
        k, s, p, d = (_pair(v) for v in (kernel, stride or kernel, padding, dilation))
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
        return out, None, None, None, None, None


def _max_pool_args(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    assert not return_indices
    return input, kernel_size, stride, padding, dilation, ceil_mode


def _hardtanh_limits(input, min_val=-1.0, max_val=1.0, inplace=False):
    return min_val, max_val


class Replaced(TorchFunctionMode):
    """Within this context, ReLU/ReLU6, max pooling and LRN backpropagate as `variant`."""

    def __init__(self, variant: str):
        super().__init__()
        self.relu, self.pool, self.lrn = VARIANTS[variant]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (F.relu, torch.relu, torch.Tensor.relu):
            return _ReLU.apply(args[0], self.relu, None)
        if func is F.relu6 or func is F.hardtanh and _hardtanh_limits(*args, **kwargs) == (0.0, 6.0):
            return _ReLU.apply(args[0], self.relu, 6.0)  # F.relu6, nn.ReLU6
        if func is F.max_pool2d and self.pool == "center":
            return _MaxPoolCenter.apply(*_max_pool_args(*args, **kwargs))
        if func is F.local_response_norm and self.lrn == "identity":
            return _IdentityBackward.apply(args[0], lambda t: func(t, *args[1:], **kwargs))
        return func(*args, **kwargs)


class _Stop(Exception):
    pass


def reference(model: nn.Module, x: torch.Tensor, layer: str, variant: str, signal=None):
    """The reversed image of `signal` (default: one-hot at the most active neuron per
    image) at the output of module `layer` ("" for the model's output), by autograd
    with the variant's backward."""
    captured = {}

    def hook(module, inputs, output):
        captured["y"] = output
        raise _Stop

    handle = model.get_submodule(layer).register_forward_hook(hook)
    x = x.detach().clone().requires_grad_(True)
    try:
        with Replaced(variant):
            model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    y = captured["y"]
    if signal is None:
        flat = y.detach().flatten(1)
        signal = torch.zeros_like(flat).scatter_(1, flat.argmax(1, keepdim=True), 1.0).view_as(y)
    (grad,) = torch.autograd.grad(y, x, signal)
    return grad


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()  # float32 norms overflow on the identity variants' huge values
    return float((a - b).norm() / b.norm().clamp(min=1e-300))


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
