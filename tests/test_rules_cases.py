"""Small hand-computed cases for the reverse rules.

Every expected tensor below is written out literally, worked out by hand from the
definitions in docs/design.md §1 (the comments show the working), not computed by the library.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reversenet.core.rules import FAMILIES

DT = torch.float64


def get_rule(family: str, name: str):
    return FAMILIES[family].rules[name]


def t(rows) -> torch.Tensor:
    """A literal (H, W) plane as a 1×1×H×W float64 tensor."""
    return torch.tensor(rows, dtype=DT)[None, None]


def exact(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert got.shape == expected.shape, f"shape {tuple(got.shape)} != {tuple(expected.shape)}"
    torch.testing.assert_close(got, expected.to(got.dtype), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------
# MaxPool2d "switches": overlapping windows sum their signals
# ---------------------------------------------------------------------------------------


def _background():
    # 0.00, 0.01, ..., 0.24: all smaller than the planted maxima below
    return [[(5 * r + c) / 100 for c in range(5)] for r in range(5)]


def test_maxpool_switches_overlapping_windows_sum():
    """Kernel 3, stride 2 on 5×5: windows rows/cols {0,1,2} and {2,3,4}, 2×2 outputs.

    Sample 0: 9 at (1,2) lies in both top windows; 8 at (4,0) is the max of the
    bottom-left window; 7 at (3,4) the max of the bottom-right one.
    Sample 1: 9 at (2,2), the one position shared by all four windows.
    """
    a, b = _background(), _background()
    a[1][2], a[4][0], a[3][4] = 9.0, 8.0, 7.0
    b[2][2] = 9.0
    x = torch.tensor([[a], [b]], dtype=DT)  # (2, 1, 5, 5)
    pool = nn.MaxPool2d(3, 2)
    rule = get_rule("MaxPool2d", "switches")
    y, r = rule.forward(pool, x)
    exact(y, torch.tensor([[[[9.0, 9.0], [8.0, 7.0]]], [[[9.0, 9.0], [9.0, 9.0]]]], dtype=DT))

    yhat = torch.tensor([[[[1.0, 10.0], [100.0, 1000.0]]]] * 2, dtype=DT)
    xhat = rule.reverse(pool, yhat, r)
    expected0 = [
        [0, 0, 0, 0, 0],
        [0, 0, 11, 0, 0],  # 1 + 10: both top windows picked (1,2)
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1000],
        [100, 0, 0, 0, 0],
    ]
    expected1 = [
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 1111, 0, 0],  # 1 + 10 + 100 + 1000: every window picked (2,2)
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    exact(xhat, torch.tensor([[expected0], [expected1]], dtype=DT))

    # max_unpool2d assigns instead of summing: it cannot give 11 or 1111 here
    _, idx = F.max_pool2d(x, 3, 2, return_indices=True)
    unpooled = F.max_unpool2d(yhat, idx, 3, 2, output_size=(5, 5))
    assert unpooled[0, 0, 1, 2].item() in (1.0, 10.0)
    assert unpooled[1, 0, 2, 2].item() in (1.0, 10.0, 100.0, 1000.0)
    assert not torch.equal(unpooled, xhat)


def test_maxpool_switches_reverse_is_per_channel():
    """Two channels of one sample with their maxima in different places."""
    c0 = [[0, 0, 0, 0], [0, 5, 0, 0], [0, 0, 0, 0], [0, 0, 0, 6]]
    c1 = [[7, 0, 0, 0], [0, 0, 0, 0], [0, 0, 8, 0], [0, 0, 0, 0]]
    # x[c, r, q] = plane[r][q] − 1 + (4r + q)/100: distinct values; kernel 2 stride 2
    x = torch.tensor([[c0, c1]], dtype=DT) - 1.0 + torch.arange(16, dtype=DT).view(4, 4) / 100
    pool = nn.MaxPool2d(2)
    rule = get_rule("MaxPool2d", "switches")
    _y, r = rule.forward(pool, x)
    yhat = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]], dtype=DT)
    xhat = rule.reverse(pool, yhat, r)
    # channel 0: maxima at (1,1) [the 5], (1,3) [−0.93, largest of −1 + {.02,.03,.06,.07}],
    #            (3,1) [−0.87], (3,3) [the 6]
    # channel 1: (0,0) [the 7], (1,3), (3,1), (2,2) [the 8]
    expected = torch.tensor(
        [
            [
                [[0, 0, 0, 0], [0, 1, 0, 2], [0, 0, 0, 0], [0, 3, 0, 4]],
                [[5, 0, 0, 0], [0, 0, 0, 6], [0, 0, 8, 0], [0, 7, 0, 0]],
            ]
        ],
        dtype=DT,
    )
    exact(xhat, expected)


# ---------------------------------------------------------------------------------------
# MaxPool2d "center": ŷ[u] goes to the centre of u's window
# ---------------------------------------------------------------------------------------

CENTER_CASES = [
    pytest.param(
        # kernel 2 stride 2 on 5×4: windows start at 0, 2; even kernel -> later middle
        # position: centres 1, 3 on both axes; the 5th row is in no window
        {"kernel_size": 2, "stride": 2},
        (5, 4),
        [[1, 2], [3, 4]],
        [
            [0, 0, 0, 0],
            [0, 1, 0, 2],
            [0, 0, 0, 0],
            [0, 3, 0, 4],
            [0, 0, 0, 0],
        ],
        id="k2-s2-even-kernel",
    ),
    pytest.param(
        # kernel 3 stride 2 padding 1 on 5×5: 3 outputs, starts -1, 1, 3, centres 0, 2, 4
        {"kernel_size": 3, "stride": 2, "padding": 1},
        (5, 5),
        [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
        [
            [1, 0, 2, 0, 3],
            [0, 0, 0, 0, 0],
            [4, 0, 5, 0, 6],
            [0, 0, 0, 0, 0],
            [7, 0, 8, 0, 9],
        ],
        id="k3-s2-p1",
    ),
    pytest.param(
        # kernel 3 stride 3 ceil_mode on 4×7.
        # rows: 2 outputs, windows {0,1,2}, {3,4,5}: centres 1 and 4 -> 4 is outside the
        #       4 rows, clamped to 3.
        # cols: 3 outputs, windows {0,1,2}, {3,4,5}, {6,7,8}: centres 1, 4, 7 -> 6.
        {"kernel_size": 3, "stride": 3, "ceil_mode": True},
        (4, 7),
        [[1, 2, 3], [4, 5, 6]],
        [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 1, 0, 0, 2, 0, 3],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 4, 0, 0, 5, 0, 6],
        ],
        id="k3-s3-ceil-clamped",
    ),
    pytest.param(
        # kernel 2 stride 1 padding 1 on 3×3: 4 outputs per axis, windows {-1,0}, {0,1},
        # {1,2}, {2,3}; centres 0, 1, 2, 3 -> 2 (clamped): the last two outputs share
        # position 2 and their signals add up. ŷ[i][j] = 4i + j + 1.
        {"kernel_size": 2, "stride": 1, "padding": 1},
        (3, 3),
        [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]],
        [
            [1, 2, 3 + 4],
            [5, 6, 7 + 8],
            [9 + 13, 10 + 14, 11 + 12 + 15 + 16],
        ],
        id="k2-s1-p1-clamped-centres-collide",
    ),
    pytest.param(
        # kernel 3 dilation 2 stride 2 padding 1 on 7×7: taps {-1,1,3}, {1,3,5}, {3,5,7};
        # centres (middle tap) 1, 3, 5
        {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2},
        (7, 7),
        [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
        [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 1, 0, 2, 0, 3, 0],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 4, 0, 5, 0, 6, 0],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 7, 0, 8, 0, 9, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        id="k3-d2-s2-p1",
    ),
    pytest.param(
        # kernel 3 dilation 2 stride 4 ceil_mode on 6×7: 2 outputs per axis, taps
        # {0,2,4} and {4,6,8}. rows (6): centres 2, 6 -> 6 is outside; the window's only
        # tap inside the input is 4. cols (7): centres 2, 6 (inside).
        {"kernel_size": 3, "stride": 4, "dilation": 2, "ceil_mode": True},
        (6, 7),
        [[1, 2], [3, 4]],
        [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0, 2],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 3, 0, 0, 0, 4],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        id="k3-d2-s4-ceil-clamped-to-a-tap",
    ),
]


@pytest.mark.parametrize("kwargs, hw, yhat, expected", CENTER_CASES)
def test_maxpool_center(kwargs, hw, yhat, expected):
    pool = nn.MaxPool2d(**kwargs)
    rule = get_rule("MaxPool2d", "center")
    x = torch.randn(1, 1, *hw, dtype=DT)
    y, r = rule.forward(pool, x)
    yhat = t(yhat)
    assert y.shape == yhat.shape  # the output size worked out above is torch's
    exact(y, F.max_pool2d(x, **kwargs))
    exact(rule.reverse(pool, yhat, r), t(expected))


def test_maxpool_center_ignores_the_input_values():
    """No bottleneck: two different inputs of the same size give the same x̂."""
    pool = nn.MaxPool2d(2, 2)
    rule = get_rule("MaxPool2d", "center")
    yhat = t([[1, 2], [3, 4]])
    out = []
    for x in (torch.zeros(1, 1, 4, 4, dtype=DT), torch.arange(16, dtype=DT).view(1, 1, 4, 4)):
        _, r = rule.forward(pool, x)
        out.append(rule.reverse(pool, yhat, r))
    expected = t([[0, 0, 0, 0], [0, 1, 0, 2], [0, 0, 0, 0], [0, 3, 0, 4]])
    exact(out[0], expected)
    exact(out[1], expected)


# ---------------------------------------------------------------------------------------
# ReLU: identity, relu, bp, hybrid
# ---------------------------------------------------------------------------------------

X = [[-1.0, 2.0, 0.0, 3.0]]
YHAT = [[5.0, -2.0, 7.0, 4.0]]
RELU_EXPECTED = {
    "identity": [[5.0, -2.0, 7.0, 4.0]],  # ŷ
    "relu": [[5.0, 0.0, 7.0, 4.0]],  # max(ŷ, 0)
    "bp": [[0.0, -2.0, 0.0, 4.0]],  # ŷ ⊙ [x > 0]; x = 0 is not active
    "hybrid": [[0.0, 0.0, 0.0, 4.0]],  # max(ŷ, 0) ⊙ [x > 0]
}


@pytest.mark.parametrize("name", list(RELU_EXPECTED))
def test_relu_rules(name):
    rule = get_rule("ReLU", name)
    relu = nn.ReLU()
    x = torch.tensor(X, dtype=DT)
    y, r = rule.forward(relu, x)
    exact(y, torch.tensor([[0.0, 2.0, 0.0, 3.0]], dtype=DT))
    exact(rule.reverse(relu, torch.tensor(YHAT, dtype=DT), r), torch.tensor(RELU_EXPECTED[name], dtype=DT))


def test_relu_family_has_the_four_rules():
    assert set(FAMILIES["ReLU"].rules) == {"identity", "relu", "bp", "hybrid"}


@pytest.mark.parametrize("name", list(RELU_EXPECTED))
def test_relu_forward_does_not_write_into_an_inplace_modules_input(name):
    rule = get_rule("ReLU", name)
    relu = nn.ReLU(inplace=True)
    x = torch.tensor(X, dtype=DT)
    y, r = rule.forward(relu, x)
    exact(x, torch.tensor(X, dtype=DT))  # untouched
    exact(y, torch.tensor([[0.0, 2.0, 0.0, 3.0]], dtype=DT))
    # and the bottleneck still describes the original x
    exact(rule.reverse(relu, torch.tensor(YHAT, dtype=DT), r), torch.tensor(RELU_EXPECTED[name], dtype=DT))


def test_relu_inplace_on_a_view_of_a_larger_tensor():
    base = torch.tensor([[-3.0, -1.0, 2.0, 0.0, 3.0, -4.0]], dtype=DT)
    before = base.clone()
    x = base[:, 1:5]
    for name, expected in RELU_EXPECTED.items():
        rule = get_rule("ReLU", name)
        _, r = rule.forward(nn.ReLU(inplace=True), x)
        exact(base, before)
        xhat = rule.reverse(nn.ReLU(inplace=True), torch.tensor(YHAT, dtype=DT), r)
        exact(xhat, torch.tensor(expected, dtype=DT))


# ---------------------------------------------------------------------------------------
# Conv2d "bp": the transposed convolution, bias dropped, x̂ of x's shape
# ---------------------------------------------------------------------------------------


def _conv(weight_rows, **kwargs) -> nn.Conv2d:
    w = torch.tensor(weight_rows, dtype=DT)
    conv = nn.Conv2d(1, 1, tuple(w.shape), bias=True, **kwargs).to(DT)
    with torch.no_grad():
        conv.weight.copy_(w[None, None])
        conv.bias.fill_(7.0)  # must not appear in x̂
    return conv


def test_conv_reverse_stride1_full_correlation():
    """w = [[1,2],[3,4]] on a 3×3 input: x̂[a,b] = Σ_{i,j} ŷ[i,j] w[a−i, b−j].

    ŷ = [[1,10],[100,1000]]:
      x̂[0,0] = 1·1                 x̂[0,1] = 1·2 + 10·1      x̂[0,2] = 10·2
      x̂[1,0] = 1·3 + 100·1         x̂[1,1] = 4 + 30 + 200 + 1000
      x̂[1,2] = 10·4 + 1000·2       x̂[2,0] = 100·3 ...
    """
    conv = _conv([[1, 2], [3, 4]])
    rule = get_rule("Conv2d", "bp")
    x = torch.randn(1, 1, 3, 3, dtype=DT)
    y, r = rule.forward(conv, x)
    assert y.shape == (1, 1, 2, 2)
    xhat = rule.reverse(conv, t([[1, 10], [100, 1000]]), r)
    exact(xhat, t([[1, 12, 20], [103, 1234, 2040], [300, 3400, 4000]]))


def test_conv_reverse_stride2_odd_input_needs_output_padding():
    """w = [[1,2],[3,4]], stride 2 on 5×5: 2×2 outputs, windows at rows/cols {0,1}, {2,3};
    row and column 4 are in no window and come back as zeros (x̂ is 5×5, while a plain
    conv_transpose2d would give 4×4)."""
    conv = _conv([[1, 2], [3, 4]], stride=2)
    rule = get_rule("Conv2d", "bp")
    x = torch.randn(1, 1, 5, 5, dtype=DT)
    y, r = rule.forward(conv, x)
    assert y.shape == (1, 1, 2, 2)
    xhat = rule.reverse(conv, t([[1, 10], [100, 1000]]), r)
    exact(
        xhat,
        t(
            [
                [1, 2, 10, 20, 0],
                [3, 4, 30, 40, 0],
                [100, 200, 1000, 2000, 0],
                [300, 400, 3000, 4000, 0],
                [0, 0, 0, 0, 0],
            ]
        ),
    )
    assert F.conv_transpose2d(t([[1, 10], [100, 1000]]), conv.weight, stride=2).shape[-2:] == (4, 4)


def test_conv_reverse_stride2_padding1_even_input():
    """w = [[1,2,3],[4,5,6],[7,8,9]], stride 2, padding 1 on 4×4: 2×2 outputs whose
    windows cover rows {-1,0,1} and {1,2,3}. Input row a meets kernel row a − (2i − 1):
    a=0: (i=0, w row 1); a=1: (0, row 2), (1, row 0); a=2: (1, row 1); a=3: (1, row 2);
    likewise for columns. ŷ = [[1,10],[100,1000]]. conv_transpose2d without output
    padding would give 3×3."""
    conv = _conv([[1, 2, 3], [4, 5, 6], [7, 8, 9]], stride=2, padding=1)
    rule = get_rule("Conv2d", "bp")
    x = torch.randn(1, 1, 4, 4, dtype=DT)
    y, r = rule.forward(conv, x)
    assert y.shape == (1, 1, 2, 2)
    xhat = rule.reverse(conv, t([[1, 10], [100, 1000]]), r)
    exact(
        xhat,
        t(
            [
                [5, 6 + 40, 50, 60],
                [8 + 200, 9 + 70 + 300 + 1000, 80 + 2000, 90 + 3000],
                [500, 600 + 4000, 5000, 6000],
                [800, 900 + 7000, 8000, 9000],
            ]
        ),
    )


def test_conv_reverse_two_groups():
    """Groups keep channels apart: 2 input channels, 2 groups, 1×1 kernels 2 and −3:
    x̂_0 = 2 ŷ_0, x̂_1 = −3 ŷ_1."""
    conv = nn.Conv2d(2, 2, 1, groups=2).to(DT)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, -3.0], dtype=DT).view(2, 1, 1, 1))
    rule = get_rule("Conv2d", "bp")
    _, r = rule.forward(conv, torch.randn(1, 2, 2, 2, dtype=DT))
    yhat = torch.tensor([[[[1, 2], [3, 4]], [[5, 6], [7, 8]]]], dtype=DT)
    exact(rule.reverse(conv, yhat, r), torch.tensor([[[[2, 4], [6, 8]], [[-15, -18], [-21, -24]]]], dtype=DT))


def test_linear_reverse_literal():
    """W = [[1,2,3],[4,5,6]], bias dropped: x̂ = Wᵀ ŷ; ŷ = [1, 10] -> [41, 52, 63]."""
    lin = nn.Linear(3, 2).to(DT)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1, 2, 3], [4, 5, 6]], dtype=DT))
        lin.bias.fill_(9.0)
    rule = get_rule("Linear", "bp")
    _, r = rule.forward(lin, torch.randn(1, 3, dtype=DT))
    xhat = rule.reverse(lin, torch.tensor([[1.0, 10.0]], dtype=DT), r)
    exact(xhat, torch.tensor([[41.0, 52.0, 63.0]], dtype=DT))


# ---------------------------------------------------------------------------------------
# Average pooling: exact transpose, also in float64
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family, pool, value",
    [
        ("AvgPool2d", nn.AvgPool2d(3), 1 / 9),  # one 3×3 window: each input gets ŷ/9
        ("AvgPool2d", nn.AvgPool2d(3, divisor_override=5), 1 / 5),
        ("AdaptiveAvgPool2d", nn.AdaptiveAvgPool2d(1), 1 / 9),
    ],
    ids=["avg-k3", "avg-k3-divisor5", "adaptive-1"],
)
def test_average_pool_reverse_is_exact_in_float64(family, pool, value):
    rule = get_rule(family, "bp")
    _, r = rule.forward(pool, torch.randn(1, 1, 3, 3, dtype=DT))
    xhat = rule.reverse(pool, t([[1.0]]), r)
    assert xhat.dtype == DT
    torch.testing.assert_close(xhat, torch.full((1, 1, 3, 3), value, dtype=DT), rtol=1e-15, atol=0)


@pytest.mark.parametrize(
    "count_include_pad, yhat, expected",
    [
        # divisors 3, 3, 2: the last window is clipped to the padded input [-1, 4]
        (True, [3.0, 6.0, 8.0], [3 / 3, 3 / 3 + 6 / 3, 6 / 3, 6 / 3 + 8 / 2]),  # [1, 3, 2, 6]
        # divisors 2, 3, 1: positions inside the input only
        (False, [2.0, 6.0, 5.0], [2 / 2, 2 / 2 + 6 / 3, 6 / 3, 6 / 3 + 5 / 1]),  # [1, 3, 2, 7]
    ],
)
def test_avgpool_reverse_ceil_mode_literal(count_include_pad, yhat, expected):
    """AvgPool2d kernel (1,3), stride (1,2), padding (0,1), ceil_mode on a 1×4 row.

    Columns: ceil((4 + 2 − 3)/2) + 1 = 3 outputs (the last starts at 3, inside the
    input, so it is kept); windows {-1,0,1}, {1,2,3}, {3,4,5}, where -1 and 4 are
    padding and 5 lies beyond the padded input.
    """
    pool = nn.AvgPool2d((1, 3), (1, 2), (0, 1), ceil_mode=True, count_include_pad=count_include_pad)
    rule = get_rule("AvgPool2d", "bp")
    x = torch.randn(1, 1, 1, 4, dtype=DT)
    y, r = rule.forward(pool, x)
    assert y.shape == (1, 1, 1, 3)
    xhat = rule.reverse(pool, t([yhat]), r)
    # loose tolerance: float64 exactness is tested separately above
    torch.testing.assert_close(xhat, t([expected]), rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------------------
# LocalResponseNorm "bp" = autograd
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, alpha, beta, k, channels",
    [
        (1, 1.0, 0.75, 1.0, 4),
        (2, 0.5, 0.75, 2.0, 4),
        (3, 2.0, 1.5, 1.0, 5),
        (5, 1e-4, 0.75, 2.0, 7),
        (5, 1.0, 0.5, 0.5, 3),
        (2, 1.0, 1.0, 0.1, 1),
    ],
)
def test_lrn_bp_equals_autograd(size, alpha, beta, k, channels):
    g = torch.Generator().manual_seed(size * 10 + channels)
    x = torch.randn(2, channels, 3, 4, generator=g, dtype=DT) * 2
    yhat = torch.randn(2, channels, 3, 4, generator=g, dtype=DT)
    lrn = nn.LocalResponseNorm(size, alpha, beta, k)
    rule = get_rule("LocalResponseNorm", "bp")
    _y, r = rule.forward(lrn, x)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.local_response_norm(xr, size, alpha, beta, k), xr, yhat)
    xhat = rule.reverse(lrn, yhat, r)
    assert xhat.shape == x.shape
    torch.testing.assert_close(xhat, grad, rtol=1e-12, atol=1e-13)


def test_lrn_bp_single_channel_literal():
    """One channel, size 1: y = x (k + α x²)^(−β). With k = 1, α = 1, β = 1 at x = 1:
    y' = (k + αx²)^(−β) − 2αβ x² (k + αx²)^(−β−1) = 1/2 − 2/4 = 0; at x = 2:
    1/5 − 8/25 = −3/25; at x = 0: 1."""
    lrn = nn.LocalResponseNorm(1, alpha=1.0, beta=1.0, k=1.0)
    rule = get_rule("LocalResponseNorm", "bp")
    x = torch.tensor([[[1.0, 2.0, 0.0]]], dtype=DT)  # (N, C, L) = (1, 1, 3)
    _, r = rule.forward(lrn, x)
    xhat = rule.reverse(lrn, torch.ones_like(x), r)
    torch.testing.assert_close(xhat, torch.tensor([[[0.0, -3 / 25, 1.0]]], dtype=DT), rtol=1e-14, atol=1e-15)
