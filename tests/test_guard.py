"""Models from elsewhere: exact or refused, never silently wrong.

Subclasses of the layers that have rules, with a forward of their own, modules with
hooks, shape-dependent control flow, and the guard that checks a recording against the
model. Oracles: torch.autograd.grad through the model's own forward (SaliNet) and
tests/reference.py (guided backprop for DeSaliNet)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from reference import reference, relative_error
from torch import nn

import reversenet
from reversenet import ReversenetError
from reversenet.core.graph import Graph
from reversenet.core.rules import FAMILIES, family_of
from reversenet.core.rules.linear import ConvTranspose


class StandardisedConv(nn.Conv2d):
    """timm's ScaledStdConv2d in small: the weight standardised in the forward."""

    def forward(self, x):
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class NormAct(nn.BatchNorm2d):
    """timm's BatchNormAct2d in small: batch norm, then its activation, in one forward."""

    def __init__(self, channels):
        super().__init__(channels)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps))


class LeakyReLU(nn.ReLU):
    """A ReLU in name only."""

    def forward(self, x):
        return F.leaky_relu(x, 0.2)


class SamePad(nn.Conv2d):
    """timm's Conv2dSame: TensorFlow's 'same' padding, computed from the input's size."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        ph = max((-(-ih // self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - ih, 0)
        pw = max((-(-iw // self.stride[1]) - 1) * self.stride[1] + self.kernel_size[1] - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride)


class Renamed(nn.Conv2d):
    """A subclass that only changes construction: still a Conv2d."""

    def __init__(self, *args):
        super().__init__(*args, padding=1)


class Head(nn.Module):
    """timm's ConvMlp: shape-dependent control flow."""

    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Conv2d(channels, 6, 4)

    def forward(self, x):
        if x.shape[-2] < 4 or x.shape[-1] < 4:
            x = F.adaptive_avg_pool2d(x, 4)
        return self.fc(x).flatten(1)


def net(*blocks: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *blocks, nn.ReLU(), nn.MaxPool2d(2), Head(8)).eval()
    for m in model.modules():  # running statistics that are not the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def pictures(model: nn.Module, x: torch.Tensor, variants=("salinet+bp", "desalinet+bp")) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallback's warnings
        rec = reversenet.Recording(model, x, layer="output", variants=variants)
        return {v: rec.reverse(_top(rec.activation), v) for v in variants}


def _top(y: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(y).scatter_(1, y.argmax(1, keepdim=True), 1.0)


def gradient(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    y = model(x)
    return torch.autograd.grad(y, x, _top(y.detach()))[0]


SUBCLASSES = {
    "conv with its own forward": StandardisedConv(8, 8, 3, padding=1),
    "batch norm with its activation": NormAct(8),
    "relu that is not one": LeakyReLU(),
    "same padding from the input size": SamePad(8, 8, 3, stride=2),
}


@pytest.mark.parametrize("block", SUBCLASSES.values(), ids=SUBCLASSES.keys())
def test_subclasses_with_their_own_forward_are_exact(block):
    model, x = net(block), torch.randn(2, 3, 15, 13)
    got = pictures(model, x)
    assert relative_error(got["salinet+bp"], gradient(model, x)) < 1e-5
    top = _top(model(x).detach())
    assert relative_error(got["desalinet+bp"], reference(model, x, "", "desalinet", top)) < 1e-5


def test_subclasses_are_no_members_of_their_base_family_unless_they_only_construct():
    assert family_of(StandardisedConv(3, 3, 3)) is None
    assert family_of(NormAct(3)) is None
    assert family_of(LeakyReLU()) is None
    assert family_of(Renamed(3, 3, 3)) is FAMILIES["Conv2d"]
    patched = nn.ReLU()
    patched.forward = lambda x: x.abs()
    assert family_of(patched) is None


def test_a_subclass_without_a_rule_for_what_it_runs_is_refused_with_its_module_named():
    with pytest.raises(ReversenetError, match=r"leaky_relu .*in 1 \(LeakyReLU\).*salinet\+bp"):
        reversenet.Recording(net(LeakyReLU()), torch.randn(1, 3, 16, 16), layer="output", variants=["salinet"])


def test_the_rules_inside_a_subclass_apply_as_anywhere():
    rec = reversenet.Recording(net(NormAct(8)), torch.randn(1, 3, 16, 16), layer="output", variants=["desalinet"])
    kinds = [(step.where, rule.family) for step, rule in rec.rules("desalinet")]
    assert ("batch_norm (BatchNorm2d) in 1 (NormAct)", "BatchNorm") in kinds
    assert ("1.act (ReLU)", "ReLU") in kinds


def test_a_module_with_hooks_is_traced_through_and_exact():
    model = net()
    model[0].register_forward_hook(lambda module, args, out: out * 3.0)
    x = torch.randn(2, 3, 16, 16)
    assert relative_error(pictures(model, x)["salinet+bp"], gradient(model, x)) < 1e-5


@pytest.mark.parametrize("size", [6, 16, 21])
def test_shape_dependent_control_flow_is_traced_per_input_geometry(size):
    model, x = net(SamePad(8, 8, 3, stride=2)), torch.randn(2, 3, size, size)
    assert relative_error(pictures(model, x)["salinet+bp"], gradient(model, x)) < 1e-5


def test_one_graph_serves_inputs_of_several_geometries():
    model = net(SamePad(8, 8, 3, stride=2))
    graph = Graph(model, example=torch.randn(1, 3, 16, 16))
    assert graph.geometry == (((1, 3, 16, 16), torch.float32),)
    for shape in [(3, 3, 16, 16), (1, 3, 7, 9), (1, 3, 16, 16)]:
        x = torch.randn(shape)
        rec = reversenet.Recording(graph, x, layer="output", variants=["salinet+bp"])
        assert relative_error(rec.reverse(_top(rec.activation), "salinet+bp"), gradient(model, x)) < 1e-5
    assert graph.at(torch.randn(1, 3, 16, 16)) is graph


def test_data_dependent_control_flow_is_refused():
    class Branchy(nn.Module):
        def forward(self, x):
            return x.relu() if x.sum() > 0 else -x

    with pytest.raises(ReversenetError, match="control flow depends on the input's shape only"):
        reversenet.Recording(Branchy(), torch.randn(1, 3, 4, 4), layer="output")


def test_the_guard_stops_a_trace_that_does_not_reproduce_the_forward():
    class Counter(nn.Module):
        """Python state that the trace freezes: the second call differs."""

        def __init__(self):
            super().__init__()
            self.conv, self.calls = nn.Conv2d(3, 4, 3), 0

        def forward(self, x):
            self.calls += 1
            return self.conv(x) * self.calls

    with pytest.raises(ReversenetError, match=r"does not compute what its forward does \(.* at the output; every module agrees"):
        reversenet.Recording(Counter().eval(), torch.randn(1, 3, 8, 8), layer="output", variants=["salinet"])


def test_the_guard_refuses_a_rule_whose_reverse_is_not_the_transpose(monkeypatch):
    transpose = ConvTranspose.reverse
    monkeypatch.setattr(ConvTranspose, "reverse", lambda self, conv, grad, size: 2 * transpose(self, conv, grad, size))
    model, x = net(), torch.randn(1, 3, 16, 16)
    with pytest.raises(ReversenetError, match=r"0 \(Conv2d\), its rule's reverse is not the layer's transpose"):
        reversenet.Recording(model, x, layer="output", variants=["salinet"])
    assert relative_error(pictures(model, x)["salinet+bp"], gradient(model, x)) < 1e-5  # the fallback instead


def test_the_guard_runs_once_per_model_and_trace(monkeypatch):
    from reversenet.core import guard

    calls = []
    monkeypatch.setattr(guard, "layers", lambda *args: calls.append(args[1][0].shape))
    model = net(SamePad(8, 8, 3, stride=2))  # traced per input geometry
    graph = Graph(model, example=torch.randn(1, 3, 16, 16))
    # another batch: the same operations, the same trace; 15 pixels: another padding, another trace
    for shape in [(1, 3, 16, 16), (1, 3, 16, 16), (2, 3, 16, 16), (1, 3, 15, 15)]:
        reversenet.Recording(graph, torch.randn(shape), layer="output", variants=["salinet+bp"])
    for _ in range(2):  # traced again per call, checked once
        reversenet.reverse(model, torch.randn(2, 3, 16, 16), layer="output", variant="salinet+bp")
    assert calls == [(1, 3, 16, 16), (1, 3, 15, 15)]
    model[0] = nn.Conv2d(3, 8, 3, padding=1)  # another module: checked again
    reversenet.reverse(model, torch.randn(2, 3, 16, 16), layer="output", variant="salinet+bp")
    assert calls == [(1, 3, 16, 16), (1, 3, 15, 15), (2, 3, 16, 16)]
    calls.clear()
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3))
    for shape in [(1, 3, 16, 16), (3, 3, 40, 24)]:  # one symbolic trace serves both
        reversenet.reverse(plain, torch.randn(shape), layer="output", variant="salinet")
    assert calls == [(1, 3, 16, 16)]


class Halves(nn.Module):
    """Res2Net's split: elements of a tuple taken by negative and positive index."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        parts = torch.split(self.conv(x), 2, 1)
        return torch.cat([parts[0] * 2, parts[-1], parts[3] + parts[1]], 1).relu().mean((2, 3))


def test_elements_of_a_tuple_by_negative_index_are_exact():
    model, x = Halves().eval(), torch.randn(2, 3, 8, 8)
    assert relative_error(pictures(model, x)["salinet+bp"], gradient(model, x)) < 1e-5


def test_the_guard_checks_reverses_into_tuples(monkeypatch):
    from reversenet.core.rules.shape import Unindex

    def unnormalised(self, op, x, index):  # the bug the guard must catch: parts[-1] and parts[3] apart
        return (x[index], index) if not isinstance(x, torch.Tensor) else forward(self, op, x, index)

    forward = Unindex.forward
    monkeypatch.setattr(Unindex, "forward", unnormalised)
    model, x = Halves().eval(), torch.randn(2, 3, 8, 8)
    with pytest.warns(UserWarning, match=r"getitem_\d \(getitem\), its rule's reverse is not the layer's transpose"):
        rec = reversenet.Recording(model, x, layer="output", variants=["salinet+bp"])
    assert relative_error(rec.reverse(_top(rec.activation), "salinet+bp"), gradient(model, x)) < 1e-5


class GroupCentred(nn.Module):
    """EvoNorm's grouping in small: an expand that names the batch size; then NFNet's
    skip-init gain, a scalar parameter multiplied in place."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gain = nn.Parameter(torch.tensor(1.5))

    def forward(self, x):
        y = self.conv(x)
        n, c, h, w = y.shape
        g = y.view(n, 2, c // 2, h, w)
        centred = (g - g.mean(2, keepdim=True).expand(n, 2, c // 2, h, w)).view(n, c, h, w)
        centred.mul_(self.gain)
        return centred.relu().mean((2, 3))


def test_several_signals_per_image_through_an_operation_that_names_the_batch_size():
    model, x = GroupCentred().eval(), torch.randn(2, 3, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # expand: the fallback
        rec = reversenet.Recording(model, x, layer="output", variants=["salinet+bp"])
    signals = torch.zeros(3, 2, 8)
    for k in range(3):
        signals[k, :, k] = 1.0
    got = rec.reverse(signals, "salinet+bp")
    for k in range(3):
        xx = x.clone().requires_grad_(True)
        expected = torch.autograd.grad(model(xx), xx, signals[k])[0]
        assert relative_error(got[k], expected) < 1e-5
