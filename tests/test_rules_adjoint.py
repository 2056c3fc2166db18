"""Adjoint (dot-product) tests for every reverse rule that is linear in ŷ.

Each such rule's reverse is the transpose Aᵀ of a linear map A, so for any x and y

    ⟨A x, y⟩ = ⟨x, Aᵀ y⟩                                   (float64, relative 1e-10)

A is always built here WITHOUT the library's helpers:

* Conv2d / Linear: torch's own layer minus its bias;
* AvgPool2d / AdaptiveAvgPool2d / Flatten: torch's own layer;
* MaxPool2d "switches": gather at the argmax of each window, found by brute force in
  Python loops (for the recorded forward input x, whose values are distinct);
* MaxPool2d "center": gather at each window's centre, found by brute force following
  docs/design.md §1 (start = u·stride − padding, centre = start + dilation·(k // 2), moved to
  the nearest tap of the window inside the input when it falls outside);
* Pad (F.pad, nn.ZeroPad2d): zero padding and cropping by slicing;
* LocalResponseNorm "bp": the Jacobian-vector product of F.local_response_norm
  (forward-mode torch.func.jvp), plus a comparison with torch.func.vjp and with a
  central finite difference.

Every test also checks that x̂ has x's shape.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from reversenet.core.rules import FAMILIES

DT = torch.float64
RTOL = 1e-10
HYP = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors are tiny: thread start-up would cost far more than the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def get_rule(family: str, name: str):
    return FAMILIES[family].rules[name]


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=DT)


def assert_adjoint(ax: torch.Tensor, y: torch.Tensor, x: torch.Tensor, aty: torch.Tensor) -> None:
    """⟨A x, y⟩ = ⟨x, Aᵀ y⟩, and Aᵀ y has x's shape."""
    assert aty.shape == x.shape, f"x̂ shape {tuple(aty.shape)} != x shape {tuple(x.shape)}"
    assert ax.shape == y.shape
    assert aty.dtype == DT, f"x̂ dtype {aty.dtype}, expected float64"
    lhs = (ax * y).sum().item()
    rhs = (x * aty).sum().item()
    scale = ax.norm().item() * y.norm().item() + x.norm().item() * aty.norm().item()
    assert abs(lhs - rhs) <= RTOL * max(scale, 1e-300), (
        f"<Ax,y>={lhs!r} <x,Aty>={rhs!r} rel.err={abs(lhs - rhs) / max(scale, 1e-300):.3e}"
    )


def _two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ---------------------------------------------------------------------------------------
# Conv2d "bp": A x = conv(x) − bias
# ---------------------------------------------------------------------------------------


def check_conv(c_in, c_out, kernel, stride, padding, dilation, groups, hw, seed=0, bias=True):
    torch.manual_seed(seed)
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups, bias=bias).to(DT)
    if bias:
        with torch.no_grad():
            conv.bias.copy_(randn(c_out, seed=seed + 7) * 3)  # make sure a kept bias shows
    rule = get_rule("Conv2d", "bp")
    x = randn(2, c_in, *hw, seed=seed)
    y, r = rule.forward(conv, x)
    ax = F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    torch.testing.assert_close(y, conv(x), rtol=0, atol=0)
    yhat = randn(*y.shape, seed=seed + 1)
    with torch.no_grad():
        xhat = rule.reverse(conv, yhat, r)
    assert_adjoint(ax, yhat, x, xhat)


def _conv_grid():
    """Every kernel 1..5 × stride 1..3 × padding 0..2 × dilation 1..3 that fits a 10×11
    input (even height, odd width, so floor division drops rows for some strides)."""
    cases = []
    for i, (k, s, p, d) in enumerate(itertools.product(range(1, 6), range(1, 4), range(3), range(1, 4))):
        if d * (k - 1) + 1 > 10 + 2 * p:
            continue
        g = (1, 2, 4)[i % 3]
        cases.append(pytest.param(k, s, p, d, g, id=f"k{k}-s{s}-p{p}-d{d}-g{g}"))
    return cases


@pytest.mark.parametrize("k, s, p, d, g", _conv_grid())
def test_conv_adjoint_grid(k, s, p, d, g):
    check_conv(4, 2 * g, k, s, p, d, g, (10, 11), seed=k * 100 + s * 10 + p + d)


CONV_EDGE = [
    # c_in, c_out, kernel, stride, padding, dilation, groups, (H, W)
    (4, 4, 1, 1, 0, 1, 1, (5, 5)),
    (4, 8, 3, 2, 1, 1, 1, (7, 7)),  # odd input: exact
    (4, 8, 3, 2, 1, 1, 1, (8, 8)),  # even input: a row dropped
    (4, 4, 2, 2, 0, 1, 2, (5, 5)),  # floor drops the last row/col
    (4, 6, (3, 5), (1, 3), (1, 2), (2, 1), 2, (9, 12)),
    (4, 4, (5, 1), (3, 2), (0, 0), (1, 3), 4, (13, 4)),
    (4, 8, 3, 2, 2, 2, 4, (13, 13)),
    (4, 4, 5, 3, 2, 3, 1, (13, 13)),
    (4, 4, 3, 3, "valid", 1, 1, (10, 10)),
    (4, 4, (2, 4), (3, 1), "valid", (1, 2), 2, (11, 9)),
    (4, 4, 3, 1, "same", 1, 1, (6, 7)),
    (4, 4, 4, 1, "same", 1, 1, (6, 7)),  # even kernel: torch pads the extra at the end
    (4, 4, 2, 1, "same", 3, 2, (5, 8)),  # odd total padding with dilation
    (4, 8, (2, 5), 1, "same", (3, 2), 4, (7, 6)),
    (4, 4, (4, 3), 1, "same", (2, 3), 1, (3, 4)),  # padding larger than the input
    (1, 1, 1, 3, 0, 1, 1, (1, 1)),
    (4, 4, 3, 3, 1, 1, 1, (2, 13)),
]


@pytest.mark.parametrize("c_in, c_out, kernel, stride, padding, dilation, groups, hw", CONV_EDGE)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_adjoint_edge_cases(c_in, c_out, kernel, stride, padding, dilation, groups, hw, bias):
    check_conv(c_in, c_out, kernel, stride, padding, dilation, groups, hw, seed=3, bias=bias)


@st.composite
def conv_params(draw):
    groups = draw(st.sampled_from([1, 2, 4]))
    c_out = groups * draw(st.sampled_from([1, 2]))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    mode = draw(st.sampled_from(["int", "int", "same", "valid"]))
    if mode == "same":
        padding, stride, pads = "same", (1, 1), (0, 0)
        hw = (draw(st.integers(1, 13)), draw(st.integers(1, 13)))
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        pads = (draw(st.integers(0, 2)), draw(st.integers(0, 2))) if mode == "int" else (0, 0)
        padding = pads if mode == "int" else "valid"
        lo = [max(1, dilation[a] * (kernel[a] - 1) + 1 - 2 * pads[a]) for a in (0, 1)]
        if max(lo) > 13:
            dilation = (1, 1)
            lo = [max(1, kernel[a] - 2 * pads[a]) for a in (0, 1)]
        hw = (draw(st.integers(lo[0], 13)), draw(st.integers(lo[1], 13)))
    seed = draw(st.integers(0, 2**16))
    return 4, c_out, kernel, stride, padding, dilation, groups, hw, seed


@HYP
@given(conv_params())
def test_conv_adjoint_random(params):
    check_conv(*params)


def test_conv_reverse_accepts_a_larger_batch_of_signals():
    """The engine repeats r along the batch: x̂ follows ŷ's batch, x's spatial size."""
    conv = nn.Conv2d(4, 6, 3, 2, 1).to(DT)
    rule = get_rule("Conv2d", "bp")
    x = randn(2, 4, 8, 9)
    y, r = rule.forward(conv, x)
    yhat = randn(6, *y.shape[1:], seed=1)
    xhat = rule.reverse(conv, yhat, r)
    assert xhat.shape == (6, 4, 8, 9)
    xs = randn(6, 4, 8, 9, seed=2)
    assert_adjoint(F.conv2d(xs, conv.weight, None, 2, 1), yhat, xs, xhat)


def test_conv_reverse_rejects_other_padding_modes():
    conv = nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect").to(DT)
    rule = get_rule("Conv2d", "bp")
    y, r = rule.forward(conv, randn(1, 2, 5, 5))
    with pytest.raises(NotImplementedError):
        rule.reverse(conv, randn(*y.shape), r)


# ---------------------------------------------------------------------------------------
# Linear "bp": A x = W x
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_in, n_out", [(1, 1), (1, 7), (7, 1), (5, 13), (13, 5), (12, 12)])
@pytest.mark.parametrize("lead", [(2,), (2, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_adjoint(n_in, n_out, lead, bias):
    torch.manual_seed(n_in * 31 + n_out)
    lin = nn.Linear(n_in, n_out, bias=bias).to(DT)
    if bias:
        with torch.no_grad():
            lin.bias.fill_(5.0)
    rule = get_rule("Linear", "bp")
    x = randn(*lead, n_in, seed=n_in)
    y, r = rule.forward(lin, x)
    torch.testing.assert_close(y, lin(x), rtol=0, atol=0)
    yhat = randn(*y.shape, seed=n_out + 100)
    xhat = rule.reverse(lin, yhat, r)
    assert_adjoint(F.linear(x, lin.weight), yhat, x, xhat)


# ---------------------------------------------------------------------------------------
# AvgPool2d "bp" and AdaptiveAvgPool2d "bp": A = torch's pooling (already linear)
# ---------------------------------------------------------------------------------------


def check_pool_linear(family, pool, x, seed=0):
    rule = get_rule(family, "bp")
    y, r = rule.forward(pool, x)
    ax = pool(x)
    torch.testing.assert_close(y, ax, rtol=0, atol=0)
    yhat = randn(*y.shape, seed=seed + 1)
    xhat = rule.reverse(pool, yhat, r)
    assert_adjoint(ax, yhat, x, xhat)


def _avg_grid():
    cases = []
    for k in (2, 3, 4):
        for s, p, ceil, cip, div in itertools.product(
            (1, 2, 3), range(k // 2 + 1), (False, True), (True, False), (None, 5)
        ):
            cases.append(
                pytest.param(k, s, p, ceil, cip, div, id=f"k{k}-s{s}-p{p}-ceil{ceil:d}-cip{cip:d}-div{div}")
            )
    return cases


@pytest.mark.parametrize("k, s, p, ceil, cip, div", _avg_grid())
def test_avgpool_adjoint_grid(k, s, p, ceil, cip, div):
    pool = nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)
    check_pool_linear("AvgPool2d", pool, randn(2, 4, 9, 8, seed=k + s), seed=p)


AVG_EDGE = [
    # kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, (H, W)
    (2, None, 0, False, True, None, (5, 5)),  # stride defaults to the kernel
    (3, 2, 1, True, False, None, (6, 6)),
    (3, 2, 1, True, True, None, (6, 6)),  # last window clipped to the padded input
    ((2, 4), (1, 3), (1, 2), True, False, None, (7, 13)),
    ((4, 3), (3, 2), (2, 0), False, True, 3, (13, 6)),
    ((3, 2), (3, 3), (0, 1), True, True, None, (11, 10)),
    (4, 3, 2, True, False, 7, (5, 5)),
    (2, 2, 1, True, True, None, (1, 1)),
    (3, 1, 1, False, False, None, (2, 13)),
]


@pytest.mark.parametrize("kernel, stride, padding, ceil, cip, div, hw", AVG_EDGE)
def test_avgpool_adjoint_edge_cases(kernel, stride, padding, ceil, cip, div, hw):
    pool = nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)
    check_pool_linear("AvgPool2d", pool, randn(2, 4, *hw, seed=11))


@st.composite
def avg_params(draw):
    kernel = (draw(st.integers(2, 4)), draw(st.integers(2, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    hw = tuple(draw(st.integers(max(1, k - 2 * p), 13)) for k, p in zip(kernel, padding))
    ceil = draw(st.booleans())
    cip = draw(st.booleans())
    div = draw(st.sampled_from([None, None, 1, 3, 6]))
    return kernel, stride, padding, ceil, cip, div, hw, draw(st.integers(0, 2**16))


@HYP
@given(avg_params())
def test_avgpool_adjoint_random(params):
    kernel, stride, padding, ceil, cip, div, hw, seed = params
    pool = nn.AvgPool2d(kernel, stride, padding, ceil_mode=ceil, count_include_pad=cip, divisor_override=div)
    check_pool_linear("AvgPool2d", pool, randn(2, 4, *hw, seed=seed), seed=seed)


ADAPTIVE = [
    ((7, 7), (3, 3)),  # smaller, non-divisible
    ((5, 5), (7, 7)),  # larger: windows overlap
    ((6, 6), (6, 6)),  # equal
    ((13, 13), (4, 4)),
    ((12, 12), (4, 4)),  # divisible
    ((7, 5), (3, 7)),
    ((13, 6), (4, None)),  # None keeps the input size
    ((10, 9), (None, 4)),
    ((1, 1), (3, 2)),
    ((9, 10), (1, 1)),  # global average
    ((4, 4), (13, 13)),
    ((3, 8), 5),  # int output size
    ((11, 2), (5, 3)),
]


@pytest.mark.parametrize("hw, out", ADAPTIVE)
def test_adaptive_avgpool_adjoint(hw, out):
    pool = nn.AdaptiveAvgPool2d(out)
    check_pool_linear("AdaptiveAvgPool2d", pool, randn(2, 4, *hw, seed=hw[0] * 13 + hw[1]))


@HYP
@given(
    st.integers(1, 13), st.integers(1, 13), st.integers(1, 13), st.integers(1, 13), st.integers(0, 2**16)
)
def test_adaptive_avgpool_adjoint_random(h, w, oh, ow, seed):
    check_pool_linear("AdaptiveAvgPool2d", nn.AdaptiveAvgPool2d((oh, ow)), randn(2, 4, h, w, seed=seed))


# ---------------------------------------------------------------------------------------
# Flatten "bp": A = flatten (nn.Flatten or torch.flatten)
# ---------------------------------------------------------------------------------------

FLATTENS = [
    pytest.param(nn.Flatten(), (), {}, id="nn.Flatten()"),
    pytest.param(nn.Flatten(2), (), {}, id="nn.Flatten(2)"),
    pytest.param(nn.Flatten(1, 2), (), {}, id="nn.Flatten(1,2)"),
    pytest.param(nn.Flatten(-3, -2), (), {}, id="nn.Flatten(-3,-2)"),
    pytest.param(torch.flatten, (1,), {}, id="torch.flatten(x,1)"),
    pytest.param(torch.flatten, (2,), {}, id="torch.flatten(x,2)"),
    pytest.param(torch.flatten, (1, 2), {}, id="torch.flatten(x,1,2)"),
    pytest.param(torch.flatten, (), {"start_dim": 1}, id="torch.flatten(x,start_dim=1)"),
    pytest.param(
        torch.flatten, (), {"start_dim": 2, "end_dim": -1}, id="torch.flatten(x,start_dim=2,end_dim=-1)"
    ),
]


@pytest.mark.parametrize("op, args, kwargs", FLATTENS)
@pytest.mark.parametrize("shape", [(2, 4, 5, 3), (2, 4, 1, 6), (3, 2, 7, 4, 2)])
def test_flatten_adjoint(op, args, kwargs, shape):
    rule = get_rule("Reshape", "bp")
    x = randn(*shape)
    y, r = rule.forward(op, x, *args, **kwargs)
    ax = torch.flatten(x, *args, **kwargs) if op is torch.flatten else op(x)
    torch.testing.assert_close(y, ax, rtol=0, atol=0)
    yhat = randn(*y.shape, seed=1)
    xhat = rule.reverse(op, yhat, r)
    assert_adjoint(ax, yhat, x, xhat)
    torch.testing.assert_close(rule.reverse(op, y, r), x, rtol=0, atol=0)  # reshape back


def test_flatten_adjoint_torch_flatten_default_start_dim():
    rule = get_rule("Reshape", "bp")
    x = randn(2, 3, 4)
    y, r = rule.forward(torch.flatten, x)
    yhat = randn(*y.shape, seed=1)
    xhat = rule.reverse(torch.flatten, yhat, r)
    assert_adjoint(torch.flatten(x), yhat, x, xhat)


# ---------------------------------------------------------------------------------------
# MaxPool2d "switches" and "center": A = gather at positions, built by brute force
# ---------------------------------------------------------------------------------------


def taps(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> list[list[int]]:
    """For each output u along one axis, the positions of its window inside the input."""
    return [[u * s - p + d * t for t in range(k) if 0 <= u * s - p + d * t < n_in] for u in range(n_out)]


def centres(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> list[int]:
    """docs/design.md §1: centre = start + d·(k // 2), clamped to the nearest window position
    inside the input when it lies outside."""
    out = []
    for u in range(n_out):
        start = u * s - p
        centre = start + d * (k // 2)
        inside = [start + d * t for t in range(k) if 0 <= start + d * t < n_in]
        assert inside, "a window with no position inside the input"
        out.append(min(inside, key=lambda q: abs(q - centre)))
    return out


def brute_switches(x, out_hw, kernel, stride, padding, dilation) -> torch.Tensor:
    """Flat (within the plane) position of each window's maximum, by brute force."""
    n, c, h, w = x.shape
    rows = taps(h, out_hw[0], kernel[0], stride[0], padding[0], dilation[0])
    cols = taps(w, out_hw[1], kernel[1], stride[1], padding[1], dilation[1])
    flat = x.flatten(2)
    idx = torch.empty(n, c, *out_hw, dtype=torch.long)
    for i, rr in enumerate(rows):
        for j, cc in enumerate(cols):
            pos = torch.tensor([a * w + b for a in rr for b in cc])
            idx[:, :, i, j] = pos[flat[:, :, pos].argmax(-1)]
    return idx


def gather(xs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(A xs)[n, c, u] = xs[n, c, idx[n, c, u]] (idx flat positions in the plane)."""
    n, c = xs.shape[:2]
    idx = idx.expand(n, c, *idx.shape[-2:])
    return torch.gather(xs.flatten(2), 2, idx.flatten(2)).view(n, c, *idx.shape[-2:])


def check_maxpool(name, kernel, stride, padding, dilation, ceil, hw, seed=0):
    pool = nn.MaxPool2d(kernel, stride, padding, dilation, ceil_mode=ceil)
    kernel, padding, dilation = _two(kernel), _two(padding), _two(dilation)
    stride = kernel if stride is None else _two(stride)
    rule = get_rule("MaxPool2d", name)
    x = randn(2, 4, *hw, seed=seed)  # distinct values: unique argmax
    y, r = rule.forward(pool, x)
    out_hw = tuple(pool(x).shape[-2:])
    assert y.shape == (2, 4, *out_hw)
    switches = brute_switches(x, out_hw, kernel, stride, padding, dilation)
    if name == "switches":
        idx = switches
    else:
        rows = centres(hw[0], out_hw[0], kernel[0], stride[0], padding[0], dilation[0])
        cols = centres(hw[1], out_hw[1], kernel[1], stride[1], padding[1], dilation[1])
        idx = torch.tensor([[a * hw[1] + b for b in cols] for a in rows])[None, None]
        assert all(0 <= a < hw[0] for a in rows) and all(0 <= b < hw[1] for b in cols)
    # forward: y is the max of each window
    torch.testing.assert_close(y, gather(x, switches), rtol=0, atol=0)
    xs = randn(2, 4, *hw, seed=seed + 1)  # any x', not the recorded x
    yhat = randn(*y.shape, seed=seed + 2)
    xhat = rule.reverse(pool, yhat, r)
    assert_adjoint(gather(xs, idx), yhat, xs, xhat)


def _max_grid():
    cases = []
    for k in (2, 3, 4):
        for s, p, d, ceil in itertools.product((1, 2, 3), range(k // 2 + 1), (1, 2, 3), (False, True)):
            if d * (k - 1) + 1 > 8 + 2 * p:
                continue
            cases.append(pytest.param(k, s, p, d, ceil, id=f"k{k}-s{s}-p{p}-d{d}-ceil{ceil:d}"))
    return cases


@pytest.mark.parametrize("name", ["switches", "center"])
@pytest.mark.parametrize("k, s, p, d, ceil", _max_grid())
def test_maxpool_adjoint_grid(name, k, s, p, d, ceil):
    check_maxpool(name, k, s, p, d, ceil, (9, 8), seed=k * 1000 + s * 100 + p * 10 + d)


MAX_EDGE = [
    # kernel, stride, padding, dilation, ceil_mode, (H, W)
    (2, None, 0, 1, False, (5, 5)),  # stride defaults to the kernel; last row dropped
    (3, 2, 0, 1, False, (13, 13)),  # AlexNet: overlapping windows
    (3, 2, 1, 1, True, (6, 6)),
    (3, 3, 0, 1, True, (4, 7)),  # last window hangs over: centre clamped
    (2, 1, 1, 1, False, (3, 3)),  # padding: two windows share a clamped centre
    (4, 2, 2, 1, False, (4, 4)),
    (3, 4, 0, 2, True, (6, 7)),  # dilation 2, clamped to a tap (not a gap) of the window
    ((2, 4), (1, 3), (1, 2), (3, 1), True, (7, 13)),
    ((4, 3), (3, 2), (2, 0), (1, 2), False, (13, 6)),
    ((3, 2), (2, 3), (0, 1), (2, 3), True, (11, 10)),
    (2, 2, 1, 1, True, (1, 1)),
    (4, 3, 2, 1, True, (5, 5)),
]


@pytest.mark.parametrize("name", ["switches", "center"])
@pytest.mark.parametrize("kernel, stride, padding, dilation, ceil, hw", MAX_EDGE)
def test_maxpool_adjoint_edge_cases(name, kernel, stride, padding, dilation, ceil, hw):
    check_maxpool(name, kernel, stride, padding, dilation, ceil, hw, seed=5)


@st.composite
def max_params(draw):
    kernel = (draw(st.integers(2, 4)), draw(st.integers(2, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    hw = tuple(
        draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 13)) for k, p, d in zip(kernel, padding, dilation)
    )
    # torch accepts windows that lie wholly in the padding (their max is -inf); leave them out
    for a in (0, 1):
        n_out = (hw[a] + 2 * padding[a] - dilation[a] * (kernel[a] - 1) - 1) // stride[a] + 1
        assume(all(taps(hw[a], n_out + 1, kernel[a], stride[a], padding[a], dilation[a])))
    return kernel, stride, padding, dilation, draw(st.booleans()), hw, draw(st.integers(0, 2**16))


@HYP
@given(st.sampled_from(["switches", "center"]), max_params())
def test_maxpool_adjoint_random(name, params):
    kernel, stride, padding, dilation, ceil, hw, seed = params
    check_maxpool(name, kernel, stride, padding, dilation, ceil, hw, seed=seed)


# ---------------------------------------------------------------------------------------
# LocalResponseNorm "bp": A = the Jacobian of F.local_response_norm at the recorded x
# ---------------------------------------------------------------------------------------


def check_lrn(size, alpha, beta, k, shape, seed=0):
    lrn = nn.LocalResponseNorm(size, alpha, beta, k)
    rule = get_rule("LocalResponseNorm", "bp")

    def f(t):
        return F.local_response_norm(t, size, alpha, beta, k)

    x = randn(*shape, seed=seed) * 1.5
    y, r = rule.forward(lrn, x)
    torch.testing.assert_close(y, f(x), rtol=0, atol=0)
    v = randn(*shape, seed=seed + 1)
    yhat = randn(*y.shape, seed=seed + 2)
    xhat = rule.reverse(lrn, yhat, r)
    # adjoint against the forward-mode directional derivative J v
    _, jv = torch.func.jvp(f, (x,), (v,))
    assert_adjoint(jv, yhat, v, xhat)
    # equal to the reverse-mode vector-Jacobian product
    _, vjp_fn = torch.func.vjp(f, x)
    torch.testing.assert_close(xhat, vjp_fn(yhat)[0], rtol=1e-10, atol=1e-12)
    # and to a central finite difference (float64)
    h = 1e-5
    fd = (f(x + h * v) - f(x - h * v)) / (2 * h)
    lhs, rhs = (fd * yhat).sum().item(), (v * xhat).sum().item()
    scale = fd.norm().item() * yhat.norm().item()
    assert abs(lhs - rhs) <= 1e-7 * scale, (lhs, rhs)


LRN_CASES = [
    # size, alpha, beta, k, shape
    (1, 1e-4, 0.75, 1.0, (2, 4, 3, 3)),
    (2, 1.0, 0.75, 1.0, (2, 4, 3, 3)),  # even size: asymmetric window
    (3, 0.5, 1.5, 2.0, (2, 5, 2, 3)),
    (5, 1e-4, 0.75, 2.0, (2, 7, 3, 2)),  # AlexNet's constants
    (5, 2.0, 0.5, 0.5, (2, 3, 2, 2)),  # window wider than the channels
    (4, 1.0, 1.0, 1.0, (2, 6, 4)),  # 3-D input
    (6, 0.3, 0.75, 1.0, (2, 4, 2, 2, 3)),  # 5-D input
    (3, 1.0, 0.75, 1.0, (2, 1, 3, 3)),  # one channel
    (7, 1.0, 2.0, 0.1, (1, 9, 2, 2)),
]


@pytest.mark.parametrize("size, alpha, beta, k, shape", LRN_CASES)
def test_lrn_bp_adjoint(size, alpha, beta, k, shape):
    check_lrn(size, alpha, beta, k, shape, seed=size)


@HYP
@given(
    st.integers(1, 6),
    st.sampled_from([1e-4, 0.1, 1.0, 2.0]),
    st.sampled_from([0.5, 0.75, 1.0, 1.5]),
    st.sampled_from([0.5, 1.0, 2.0]),
    st.integers(1, 8),
    st.integers(0, 2**16),
)
def test_lrn_bp_adjoint_random(size, alpha, beta, k, channels, seed):
    check_lrn(size, alpha, beta, k, (2, channels, 3, 2), seed=seed)


# --------------------------------------------------------------------------- Pad


def zero_pad(x: torch.Tensor, pad: tuple[int, ...]) -> torch.Tensor:
    """Constant zero padding (negative: cropping) of the last len(pad) // 2 axes, by slicing."""
    out = x
    for axis, (before, after) in enumerate(zip(pad[::2], pad[1::2])):
        dim = x.dim() - 1 - axis
        size = out.shape[dim]
        out = out.narrow(dim, max(-before, 0), size - max(-before, 0) - max(-after, 0))
        shape = list(out.shape)
        grown = out.new_zeros(*shape[:dim], shape[dim] + max(before, 0) + max(after, 0), *shape[dim + 1 :])
        grown.narrow(dim, max(before, 0), shape[dim]).copy_(out)
        out = grown
    return out


PADS = [(1, 1), (0, 1, 0, 1), (2, 0, 1, 3), (-1, 2, 1, -2), (1, 1, 1, 1, 1, 1)]


@pytest.mark.parametrize(
    "op, pad",
    [(F.pad, pad) for pad in PADS] + [(nn.ZeroPad2d(pad), pad) for pad in PADS if len(pad) == 4],
    ids=lambda v: getattr(v, "__name__", None) or type(v).__name__ if not isinstance(v, tuple) else str(v),
)
def test_pad_adjoint(op, pad):
    rule = get_rule("Pad", "bp")
    x = randn(2, 3, 5, 6)
    y, r = rule.forward(op, x, *([] if isinstance(op, nn.Module) else [pad]))
    ax = zero_pad(x, pad)
    torch.testing.assert_close(y, ax, rtol=0, atol=0)
    yhat = randn(*y.shape, seed=1)
    assert_adjoint(ax, yhat, x, rule.reverse(op, yhat, r))


def test_pad_modes_other_than_constant_are_not_covered():
    with pytest.raises(NotImplementedError, match="reflect"):
        get_rule("Pad", "bp").forward(F.pad, randn(1, 1, 4, 4), (1, 1, 1, 1), mode="reflect")
