"""The compact bottleneck: ReLU masks packed 8 bits to a byte along the channel axis,
max-pooling switches as offsets within their window, and the sizes reported.

Oracles: literal cases worked out by hand, torch's own ``return_indices`` and
autograd (the reverses of ReLU bp and max-pool switches are backpropagation).
"""

from __future__ import annotations

import itertools
import math
import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reversenet.apps.inspect import autograd_saved_bytes, bottleneck_report
from reversenet.core.graph import Graph
from reversenet.core.rules import FAMILIES, Rule
from reversenet.core.rules.packing import PackedMask, pack, unpack
from reversenet.core.rules.pooling import decode_switches
from reversenet.inputs.models import load_network

DT = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_mask(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=gen(seed)) > 0.5


# ---------------------------------------------------------------------------------------
# ReLU masks as bits
# ---------------------------------------------------------------------------------------


def test_pack_literal():
    # channels 0..8 at one position: bits 0, 2, 3 of byte 0 (1 + 4 + 8), bit 0 of byte 1
    mask = torch.tensor([[1, 0, 1, 1, 0, 0, 0, 0, 1]], dtype=torch.bool)
    packed = pack(mask)
    assert packed.dtype == torch.uint8
    assert packed.tolist() == [[13, 1]]


@pytest.mark.parametrize(
    "shape", [(3, 1), (2, 13), (2, 8), (1, 5, 4, 6), (2, 20, 3, 7), (2, 64, 5, 5), (2, 9, 4)]
)
def test_pack_unpack_round_trip(shape):
    mask = random_mask(*shape, seed=sum(shape))
    packed = pack(mask)
    assert packed.shape == (shape[0], math.ceil(shape[1] / 8), *shape[2:])
    assert torch.equal(unpack(packed, shape[1]), mask)


@pytest.mark.parametrize(
    "rows, cols", [(slice(1, 4), slice(2, 6)), (slice(0, 1), slice(5, 7)), (slice(3, 5), slice(0, 7))]
)
def test_a_spatial_window_of_the_packed_mask_is_a_plain_slice(rows, cols):
    mask = random_mask(2, 21, 5, 7, seed=4)
    window = pack(mask)[..., rows, cols]
    assert torch.equal(window, pack(mask[..., rows, cols]))
    assert torch.equal(unpack(window, 21), mask[..., rows, cols])


def test_packed_mask_bytes_and_bits():
    mask = PackedMask.of(random_mask(2, 13, 5, 7))
    rule = FAMILIES["ReLU"].rules["hybrid"]
    assert rule.nbytes(nn.ReLU(), mask) == 2 * 2 * 5 * 7  # ⌈13/8⌉ bytes per position
    assert rule.bits(nn.ReLU(), mask) == 2 * 13 * 5 * 7


RELU_BACKWARD = {"bp": lambda g: g, "hybrid": lambda g: g.clamp(min=0)}  # applied before the ReLU's own


@pytest.mark.parametrize("name", list(RELU_BACKWARD))
@pytest.mark.parametrize("shape", [(2, 13), (2, 20, 3, 5), (3,)])
@pytest.mark.parametrize("relu", [nn.ReLU(), nn.ReLU6()], ids=["relu", "relu6"])
def test_relu_reverse_equals_autograd(name, shape, relu):
    rule = FAMILIES["ReLU"].rules[name]
    x = (torch.randn(*shape, generator=gen(1), dtype=DT) * 5).requires_grad_()
    g = torch.randn(*shape, generator=gen(2), dtype=DT)
    _, r = rule.forward(relu, x.detach())
    (expected,) = torch.autograd.grad(relu(x), x, RELU_BACKWARD[name](g))
    before = g.clone()
    assert torch.equal(rule.reverse(relu, g, r), expected)
    assert torch.equal(g, before)  # the caller's signal is not written into


def test_relu_reverse_of_several_signals_per_image():
    """K signals per image, batch K·N (copy k of sample i at k·N + i): the packed
    mask is broadcast over the copies."""
    rule = FAMILIES["ReLU"].rules["hybrid"]
    x = torch.randn(2, 11, 3, 4, generator=gen(1))
    _, r = rule.forward(nn.ReLU(), x)
    g = torch.randn(3 * 2, 11, 3, 4, generator=gen(2))
    expected = g.clamp(min=0) * (x > 0).repeat(3, 1, 1, 1)
    assert torch.equal(rule.reverse(nn.ReLU(), g, r), expected)


# ---------------------------------------------------------------------------------------
# Max-pooling switches as offsets within the window
# ---------------------------------------------------------------------------------------


def switches(pool: nn.MaxPool2d, x: torch.Tensor) -> torch.Tensor:
    return FAMILIES["MaxPool2d"].rules["switches"].forward(pool, x)[1][0]


def test_switch_offsets_literal_overlapping_windows():
    """Kernel 3, stride 2 on 5×5 (windows start at rows/cols 0 and 2); offset
    t = a·3 + b for the tap at row a, column b of the window.
    9 at (1,2): tap (1,2) of window (0,0), t = 5, and tap (1,0) of window (0,1), t = 3;
    8 at (4,0): tap (2,0) of window (1,0), t = 6; 7 at (3,4): tap (1,2) of (1,1), t = 5."""
    x = torch.arange(25, dtype=DT).view(1, 1, 5, 5) / 100
    x[0, 0, 1, 2], x[0, 0, 4, 0], x[0, 0, 3, 4] = 9.0, 8.0, 7.0
    offsets = switches(nn.MaxPool2d(3, 2), x)
    assert offsets.dtype == torch.uint8
    assert offsets.tolist() == [[[[5, 3], [6, 5]]]]


def test_switch_offsets_literal_padding_and_dilation():
    """Kernel 2, stride 1, padding 1, dilation 2 on x = 0 … 8 (3×3): the window of
    output u has taps at u − 1 and u + 1 on each axis, and the largest tap inside
    the input wins. Output (0,0): only (1,1) inside, tap (1,1), t = 3; (0,2): cols 1, 3,
    rows −1, 1: (1,1) is tap (1,0), t = 2; (2,2): rows 1, 3, cols 1, 3: tap (0,0), t = 0."""
    x = torch.arange(9, dtype=DT).view(1, 1, 3, 3)
    offsets = switches(nn.MaxPool2d(2, 1, padding=1, dilation=2), x)
    assert offsets.tolist() == [[[[3, 3, 2], [3, 3, 2], [1, 1, 0]]]]


def _pool_grid():
    cases = []
    for k, s, p, d, ceil in itertools.product(
        (2, 3, (2, 3), (3, 2)), (1, 2, 3, (1, 2)), (0, 1), (1, 2), (False, True)
    ):
        pool = nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
        cases.append(pytest.param(pool, id=f"k{k}-s{s}-p{p}-d{d}-ceil{ceil:d}".replace(" ", "")))
    return cases


@pytest.mark.parametrize("hw", [(9, 8), (7, 12)])
@pytest.mark.parametrize("pool", _pool_grid())
def test_switches_decode_to_torchs_indices(pool, hw):
    x = torch.randn(2, 3, *hw, generator=gen(hw[0]))
    y, index = F.max_pool2d(
        x, pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode, True
    )
    offsets = switches(pool, x)
    kernel = nn.modules.utils._pair(pool.kernel_size)
    assert offsets.dtype == torch.uint8 and offsets.shape == y.shape
    assert int(offsets.max()) < kernel[0] * kernel[1]
    assert torch.equal(decode_switches(offsets, pool, hw[1]), index)


@pytest.mark.parametrize("pool", _pool_grid()[::3])
def test_switches_decode_relative_to_windows(pool):
    """A crop of the switches, outputs [r0, r1) × [c0, c1), decoded into the input
    window with top-left corner (a0, b0) and width w: (row − a0)·w + (col − b0), where
    (row, col) is torch's argmax."""
    x = torch.randn(1, 2, 12, 11, generator=gen(3))
    _, index = F.max_pool2d(
        x, pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode, True
    )
    offsets = switches(pool, x)
    r0, c0 = 1, 2
    crop = offsets[..., r0 : r0 + 2, c0 : c0 + 3]
    rows, cols = (
        index[..., r0 : r0 + 2, c0 : c0 + 3].div(11, rounding_mode="floor"),
        index[..., r0 : r0 + 2, c0 : c0 + 3] % 11,
    )
    for (a0, b0), width in [((0, 0), 11), ((1, 2), 9), ((2, 1), 20)]:
        got = decode_switches(crop, pool, width, out_origin=(r0, c0), in_origin=(a0, b0))
        assert torch.equal(got, (rows - a0) * width + (cols - b0))


def test_switches_of_windows_over_256_positions_are_int16():
    pool = nn.MaxPool2d((17, 16), 3)
    x = torch.randn(1, 2, 23, 22, generator=gen(5))
    _, index = F.max_pool2d(x, (17, 16), 3, return_indices=True)
    offsets = switches(pool, x)
    assert offsets.dtype == torch.int16
    assert torch.equal(decode_switches(offsets, pool, 22), index)
    assert FAMILIES["MaxPool2d"].rules["switches"].nbytes(pool, (offsets, (23, 22))) == 2 * offsets.numel()


POOLS = [
    nn.MaxPool2d(2),
    nn.MaxPool2d(3, 2),  # AlexNet: overlapping windows
    nn.MaxPool2d(3, 1),  # heavily overlapping
    nn.MaxPool2d(3, 2, ceil_mode=True),
    nn.MaxPool2d(2, 2, padding=1),
    nn.MaxPool2d(3, 2, padding=1, dilation=2, ceil_mode=True),
    nn.MaxPool2d((2, 3), (1, 2), padding=(1, 0), dilation=(2, 1)),
]


@pytest.mark.parametrize("pool", POOLS, ids=repr)
def test_switches_reverse_equals_autograd(pool):
    """ŷ with integer values: the sums over overlapping windows are exact in any order."""
    rule = FAMILIES["MaxPool2d"].rules["switches"]
    x = torch.randn(2, 3, 11, 10, generator=gen(7), dtype=DT).requires_grad_()
    y, r = rule.forward(pool, x.detach())
    g = torch.randint(-9, 10, y.shape, generator=gen(8)).to(DT)
    (expected,) = torch.autograd.grad(pool(x), x, g)
    before = g.clone()
    assert torch.equal(rule.reverse(pool, g, r), expected)
    assert torch.equal(g, before)


# ---------------------------------------------------------------------------------------
# Sizes: Rule.nbytes, and what autograd saves
# ---------------------------------------------------------------------------------------


def test_nbytes_counts_each_storage_once_and_whole():
    t = torch.zeros(4, 5)  # 80 bytes
    r = {"a": (t, t[:, :1]), "b": [torch.Size([4, 5]), 3.0, torch.zeros(2, dtype=torch.uint8)]}
    assert Rule().nbytes(None, r) == 80 + 2


@pytest.mark.parametrize(
    "family, op, constant_first",
    [("Mul", operator.mul, False), ("Mul", operator.mul, True), ("Div", operator.truediv, False)],
    ids=["x*2", "2*x", "x/2"],
)
def test_a_product_with_a_constant_keeps_no_tensor(family, op, constant_first):
    """x·c, c·x and x/c are linear in x: the bottleneck needs x's shape, not x."""
    rule = FAMILIES[family].rules["bp"]
    x = torch.randn(2, 3, 4, 4, generator=gen(1), dtype=DT).requires_grad_()
    args = lambda v: (2.0, v) if constant_first else (v, 2.0)
    y, r = rule.forward(op, *args(x.detach()))
    assert rule.nbytes(op, r) == 0
    g = torch.randn(*y.shape, generator=gen(2), dtype=DT)
    (expected,) = torch.autograd.grad(op(*args(x)), x, g)
    (got,) = rule.reverse(op, g, r)
    assert torch.equal(got, expected)


def test_autograd_saved_bytes_literal():
    """Conv → ReLU → max pool on 3×8×8, per image: the convolution saves its input
    (3·8·8 float32 = 768 bytes; its weight is a parameter: not counted), the ReLU its
    output (4·8·8·4 = 1024), the pool its input (the ReLU's output, counted there) and
    its int64 indices (4·4·4·8 = 512)."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    graph = Graph(model)
    steps = graph.path(graph.resolve("2"))
    saved = autograd_saved_bytes(graph, torch.randn(2, 3, 8, 8, generator=gen(1)), steps)
    assert [saved[s.node] for s in steps] == [768, 1024, 512]
    assert all(p.requires_grad for p in model.parameters())  # given back as they were


def test_vgg16_desalinet_pool5_bottleneck_is_small():
    """Per image at 224×224: masks Σ C·H·W/8 = 1,693,440 bytes, switches one byte per
    pooled output = 1,530,368 bytes; autograd keeps float32 activations and int64
    switches."""
    report = bottleneck_report(load_network("vgg16", "random"), layer="features.30", variant="desalinet")
    ratio = report.bytes / report.autograd_bytes
    print(
        f"VGG-16 pool5 desalinet: {report.bytes:,.0f} bytes held, autograd saves {report.autograd_bytes:,.0f}: 1/{1 / ratio:.1f}"
    )
    assert report.bytes == 1_693_440 + 1_530_368
    assert report.bits == 16_608_256
    assert ratio <= 1 / 16
