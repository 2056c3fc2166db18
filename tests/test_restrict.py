"""Receptive-field restriction and batched variants (design page §7): a reverse computed on
windows, or for several variants in one pass, or in chunks, or in place, equals the plain
full reverse, which the oracle tests tie to autograd."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from reference import reference, relative_error
from test_fuzz import cnns
from torch import nn

import reversenet
from reversenet.core import reverse as reverse_pass
from reversenet.core.rules.linear import ConvTranspose
from reversenet.core.window import Axis, box
from reversenet.inputs.models import load_network


def corner_signals(y: torch.Tensor) -> torch.Tensor:
    """(4, N, ...) one-hot neurons: the top-left and bottom-right corners of channel 0,
    the map's centre and the most active neuron (windows clipped by every border)."""
    n, c, h, w = y.shape
    e = torch.zeros(4, *y.shape, dtype=y.dtype)
    for k, (ch, i, j) in enumerate([(0, 0, 0), (c - 1, h - 1, w - 1), (c // 2, h // 2, w // 2)]):
        e[k, :, ch, i, j] = 1
    top = y.flatten(1).argmax(1)
    e[3].view(n, -1)[torch.arange(n), top] = 1
    return e


@pytest.mark.parametrize(
    "model, layer",
    [("alexnet", "features.4"), ("vgg16", "features.14"), ("vgg16", "features.22"), ("resnet18", "layer2"),
     ("resnet18", "layer1.0.conv1")],
)  # fmt: skip
def test_restricted_equals_full_on_real_networks(model, layer, monkeypatch):
    torch.manual_seed(0)
    net = load_network(model, "random").module.double()  # float64: equal up to rounding, 1e-10
    x = torch.randn(2, 3, 160, 192, dtype=torch.float64)
    rec = reversenet.Recording(net, x, layer=layer)
    signal = corner_signals(rec.activation)
    calls = []
    original = ConvTranspose.reverse_window
    monkeypatch.setattr(ConvTranspose, "reverse_window", lambda *a: calls.append(1) or original(*a))
    for variant in reversenet.VARIANTS:
        full = rec.reverse(signal, variant, restrict=False)
        restricted = rec.reverse(signal, variant)
        assert relative_error(restricted, full) < 1e-10, variant
    assert calls, "the restricted reverse never ran on windows"


@settings(max_examples=30, deadline=None)
@given(cnns())
def test_restricted_equals_the_oracle_on_random_cnns(case):
    specs, shape, seed, target = case
    torch.manual_seed(seed)
    model = nn.Sequential(*(ctor(*args, **kwargs) for ctor, args, kwargs in specs)).double().eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    rec = reversenet.Recording(model, x, layer=str(target))
    y = rec.activation
    if y.dim() != 4:
        return
    # a random 2x2 box of random values at a random place (borders included)
    g = torch.Generator().manual_seed(seed)
    signal = torch.zeros_like(y)
    i, j = (int(torch.randint(0, n, (1,), generator=g)) for n in y.shape[2:])
    signal[:, :, i : i + 2, j : j + 2] = torch.randn(signal[:, :, i : i + 2, j : j + 2].shape, generator=g,
                                                      dtype=y.dtype)  # fmt: skip
    for variant in reversenet.VARIANTS:
        ours = rec.reverse(signal, variant)
        assert relative_error(ours, rec.reverse(signal, variant, restrict=False)) < 1e-9
        assert relative_error(ours, reference(model, x, str(target), variant, signal)) < 1e-7, variant


def test_variants_in_one_pass_equal_one_by_one():
    torch.manual_seed(0)
    net = load_network("alexnet", "random").module
    rec = reversenet.Recording(net, torch.randn(2, 3, 224, 224), layer="features.12")
    together = rec.visualize_many("topk:3")
    for variant in reversenet.VARIANTS:
        alone = rec.visualize("topk:3", variant)
        assert together[variant].shape == alone.shape
        assert relative_error(together[variant], alone) < 1e-6, variant


class SkipOverReLU(nn.Module):
    """t + relu(t): the signal reaching the ReLU reaches t by the skip too."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()

    def forward(self, x):
        t = self.conv(x)
        return t + self.relu(t)


@pytest.mark.parametrize("restrict", [True, False])
@pytest.mark.parametrize(
    "model", [SkipOverReLU(), nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())], ids=["skip", "relu-last"]
)
def test_in_place_reverses_leave_other_signals_alone(model, restrict):
    # ReLU rules overwrite the signal they get when the engine owns it; the caller's
    # signal (a ReLU at the layer reversed from) and one still waiting elsewhere are not
    torch.manual_seed(0)
    model = model.double().eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    rec = reversenet.Recording(model, x, layer="output")
    signal = torch.randn_like(rec.activation)
    before = signal.clone()
    results = rec.reverse_many([(variant, signal) for variant in reversenet.VARIANTS], restrict=restrict)
    assert torch.equal(signal, before)
    for variant, ours in zip(reversenet.VARIANTS, results):
        assert relative_error(ours, reference(model, x, "", variant, signal)) < 1e-9, variant


@pytest.mark.parametrize("batch", [1, 3])
def test_chunks_equal_one_pass(monkeypatch, batch):
    torch.manual_seed(0)
    net = load_network("vgg16", "random").module
    rec = reversenet.Recording(net, torch.randn(batch, 3, 64, 64), layer="features.16")
    whole = rec.visualize_many("topk:5")
    monkeypatch.setattr(reverse_pass, "CHUNK_BYTES", 1)  # as few signals per chunk as can be: one per photo
    calls = []
    reverse = reverse_pass.ReversePass._chunk

    def spy(self, signal, *args):
        calls.append(len(signal))
        return reverse(self, signal, *args)

    monkeypatch.setattr(reverse_pass.ReversePass, "_chunk", spy)
    chunked = rec.visualize_many("topk:5")
    assert calls == [batch] * 5 * len(reversenet.VARIANTS)  # whole copies of the batch: the bottleneck's rows
    for variant in reversenet.VARIANTS:
        assert relative_error(chunked[variant], whole[variant]) < 1e-6, variant


def test_window_geometry_by_hand():
    # conv 3x3 stride 2 padding 1 over outputs [o, o+2): inputs [2o-1, 2o-1+5)
    assert Axis(1, 0, 2, 10).through((3, 2, 1, 1), 20) == Axis(2, -1, 5, 20)
    # dilation 2, kernel 3: a single output reads 5 positions
    assert Axis(1, 0, 1, 10).through((3, 1, 2, 2), 10) == Axis(1, -2, 5, 10)
    # windows that move together join; as large as 3/4 of the map they become the whole map
    assert Axis(1, -1, 3, 40).union(Axis(1, 0, 5, 40)) == Axis(1, -1, 6, 40)
    assert Axis(1, 0, 30, 40).union(None) == Axis.whole(40)
    assert Axis(2, 0, 3, 40).union(Axis(1, 0, 3, 40)) == Axis.whole(40)
    e = torch.zeros(2, 1, 6, 7)
    e[0, 0, 1, 2] = e[0, 0, 2, 4] = 1
    e[1, 0, 5, 6] = 1
    t, size = box(e)
    assert t.tolist() == [[1, 2], [5, 6]] and size == (2, 3)
