"""Graph networks: functional forms, residuals, concatenation, ReLU6, batch norm,
the fallback, layer names and `inspect`."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from reference import reference, relative_error
from torch import nn

import reversenet
from reversenet import ReversenetError, UsageError
from reversenet.core.graph import Graph
from reversenet.core.rules import FAMILIES
from reversenet.core.variants import parse_variant


class Functional(nn.Module):
    """Everything a torchvision model calls, in functional form."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(16, 6, 1)
        self.fc = nn.Linear(6 * 4, 5)

    def forward(self, x):
        x = torch.cat([x[:, :1] * 2.0 - 0.5, x[:, 1:] / 4.0], 1)  # like GoogLeNet's transform_input
        y = F.relu(self.a(x), inplace=True)
        y = F.max_pool2d(y, 3, stride=2, padding=1, ceil_mode=True)
        z = F.relu(self.b(y))
        z = z + y  # residual
        z = torch.relu(z)
        w = torch.cat([z, F.avg_pool2d(z, 3, stride=1, padding=1)], dim=1)
        w = F.relu6(self.c(w) * 3.0)
        w = F.adaptive_avg_pool2d(w, (2, 2))
        return self.fc(w.view(w.size(0), -1))


def test_functional_forms_match_the_oracle():
    torch.manual_seed(0)
    model = Functional().eval()
    x = torch.randn(2, 3, 15, 15)
    rec = reversenet.Recording(model, x, layer="output")
    for variant in reversenet.VARIANTS:
        expected = reference(model, x, "", variant)
        assert relative_error(rec.reverse(rec.select("max")[0], variant), expected) < 1e-5, variant


def test_relu6_rules_by_hand():
    relu6 = nn.ReLU6()
    x = torch.tensor([-1.0, 2.0, 7.0, 6.0, 0.5])
    g = torch.tensor([5.0, -2.0, 3.0, 4.0, -1.0])
    rules = FAMILIES["ReLU"].rules
    y, mask = rules["bp"].forward(relu6, x)
    assert y.tolist() == [0.0, 2.0, 6.0, 6.0, 0.5]
    assert rules["bp"].reverse(relu6, g, mask).tolist() == [0.0, -2.0, 0.0, 0.0, -1.0]
    assert rules["hybrid"].reverse(relu6, g, mask).tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]
    assert rules["relu"].reverse(relu6, g, None).tolist() == [5.0, 0.0, 3.0, 4.0, 0.0]


def test_batchnorm_is_the_eval_affine_map_even_in_training_mode():
    bn = nn.BatchNorm2d(3).train()
    bn.running_mean.copy_(torch.tensor([1.0, -1.0, 0.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    bn.weight.data.copy_(torch.tensor([2.0, 1.0, -1.0]))
    rule = FAMILIES["BatchNorm"].rules["bp"]
    x = torch.randn(2, 3, 4, 4)
    y, r = rule.forward(bn, x)
    assert torch.equal(bn.running_mean, torch.tensor([1.0, -1.0, 0.0]))  # not updated
    scale = torch.tensor([2.0 / (4 + 1e-5) ** 0.5, 1 / (1 + 1e-5) ** 0.5, -1 / (0.25 + 1e-5) ** 0.5])
    torch.testing.assert_close(y, (x - bn.running_mean.view(1, 3, 1, 1)) * scale.view(1, 3, 1, 1))
    g = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(rule.reverse(bn, g, r), g * scale.view(1, 3, 1, 1))


def _gelu_net(inplace_silu: bool = False):
    torch.manual_seed(0)
    act = nn.SiLU(inplace=True) if inplace_silu else nn.GELU()
    return nn.Sequential(nn.Conv2d(3, 8, 3), act, nn.Conv2d(8, 4, 3), nn.ReLU(), nn.MaxPool2d(2)).eval()


@pytest.mark.parametrize("inplace_silu", [False, True], ids=["GELU", "SiLU(inplace)"])
def test_fallback_bp_is_the_exact_gradient(inplace_silu):
    model = _gelu_net(inplace_silu)
    x = torch.randn(2, 3, 12, 12)
    with pytest.raises(ReversenetError, match=r"no reverse rule for 1 \((GELU|SiLU)\).*fallback: bp"):
        reversenet.Recording(model, x, layer="4")
    variant = parse_variant("rules: {ReLU: bp, MaxPool2d: switches}\nfallback: bp\n", "mine", "mine.yaml")
    with pytest.warns(UserWarning, match=r"no reverse rule for (GELU|SiLU); variant 'mine' backpropagates"):
        rec = reversenet.Recording(model, x, layer="4", variants=[variant])
    x_ = x.clone().requires_grad_(True)
    y = model(x_)
    e = rec.select("max")[0]
    (expected,) = torch.autograd.grad(y, x_, e)
    assert relative_error(rec.reverse(e, variant), expected) < 1e-5
    # topk: the recorded input of the fallback layer is repeated per signal
    several = rec.select("topk:3")
    ours = rec.reverse(several, variant)
    for k in range(3):
        (expected,) = torch.autograd.grad(model(x_), x_, several[k])
        assert relative_error(ours[k], expected) < 1e-5
    torch.testing.assert_close(x, x_.detach())  # the in-place op did not touch the input


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.relu = nn.Conv2d(3, 3, 3), nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(self.relu(x)))


def test_container_and_repeated_module_names():
    import torchvision

    model = torchvision.models.resnet18().eval()
    graph = Graph(model)
    assert graph.resolve("layer3") is graph.resolve("layer3.1")  # both end at the same node
    assert graph.resolve("layer3").name == "layer3_1_relu_1"
    with pytest.raises(UsageError, match=r"called 2 times; name one call: layer4.1.relu#1, layer4.1.relu#2"):
        graph.resolve("layer4.1.relu")
    assert graph.resolve("layer4.1.relu#2") is graph.resolve("layer4_1_relu_1")  # the graph node's name too
    assert graph.unique_name(graph.resolve("layer4.1.relu#1")) == "layer4.1.relu#1"
    with pytest.raises(UsageError, match="#k counts from 1"):
        graph.resolve("layer4.1.relu#3")
    # a top-level module called twice: its first node is named like the module, which
    # names both calls; the suggestion is one that resolves
    g2 = Graph(Twice().eval())
    with pytest.raises(UsageError, match="relu#1, relu#2"):
        g2.resolve("relu")
    assert g2.resolve("relu#1").name == "relu" and g2.resolve("relu#2").name == "relu_1"
    x = torch.randn(1, 3, 64, 64)
    assert reversenet.Recording(model, x, layer="layer3").activation.shape == (1, 256, 4, 4)
    assert graph.default_layer() == "layer4"


def test_untraceable_model_says_why():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ReversenetError, match="cannot trace Branchy with torch.fx.*control flow"):
        reversenet.Recording(Branchy(), torch.randn(1, 3, 4, 4), layer="output")


def test_tracing_leaves_training_flags_alone():
    import torchvision

    model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True).train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = reversenet.reverse(model, torch.randn(1, 3, 64, 64), layer="inception4a")
    assert out.shape == (1, 3, 64, 64)
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("dim,keepdim", [([2, 3], False), ((1,), True), (-1, False), ((1, 2, 3), False)])
def test_mean_adjoint(dim, keepdim):
    rule = FAMILIES["Mean"].rules["bp"]
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    y, r = rule.forward(torch.Tensor.mean, x, dim, keepdim)
    g = torch.randn_like(y)
    x_hat = rule.reverse(torch.Tensor.mean, g, r)
    assert x_hat.shape == x.shape
    torch.testing.assert_close((x.mean(dim, keepdim=keepdim) * g).sum(), (x * x_hat).sum(), rtol=1e-12, atol=1e-12)


def test_mnasnet_global_mean_matches_the_oracle():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.mnasnet0_5().eval()
    x = torch.randn(1, 3, 64, 64)
    rec = reversenet.Recording(model, x, layer="output")
    for variant in ("salinet", "desalinet", "deconvnet-center"):
        expected = reference(model, x, "", variant)
        assert relative_error(rec.reverse(rec.select("max")[0], variant), expected) < 1e-4, variant


class Attention(nn.Module):
    """A layer with several outputs (a tuple, one of them None), picked by index."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        tokens = torch.relu(self.conv(x)).flatten(2).transpose(1, 2)
        mixed, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return self.fc(mixed.mean(1))


def _fallback_recording(model, x, rules):
    """A recording to the output for a variant with `rules` and `fallback: bp`, and that
    variant (the one-line warnings about the layers without rules silenced)."""
    variant = parse_variant(f"rules: {rules}\nfallback: bp\n", "any", "any.yaml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reversenet.Recording(model, x, layer="output", variants=[variant]), variant


def test_fallback_through_a_tuple_output_is_the_gradient():
    torch.manual_seed(0)
    model = Attention().eval()
    x = torch.randn(2, 3, 9, 9)
    rec, variant = _fallback_recording(model, x, "{ReLU: bp}")
    x_ = x.clone().requires_grad_(True)
    e = rec.select("topk:2")
    ours = rec.reverse(e, variant)
    for k in range(2):
        (expected,) = torch.autograd.grad(model(x_), x_, e[k])
        assert relative_error(ours[k], expected) < 1e-5


class Chunks(nn.Module):
    """A tuple (chunk's) taken whole by one layer and by index by another."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        parts = self.conv(x).chunk(2, dim=1)
        return torch.stack(parts).sum(0) + torch.cat(parts, 1)[:, 1:3] + parts[1]


def test_a_tuple_taken_whole_gets_the_signals_of_its_elements():
    torch.manual_seed(0)
    model = Chunks().eval()
    x = torch.randn(2, 3, 6, 6)
    rec, variant = _fallback_recording(model, x, "{}")
    e = torch.randn_like(rec.activation)
    x_ = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(model(x_), x_, e)
    assert relative_error(rec.reverse(e, variant), expected) < 1e-5


def test_the_python_api_takes_paper_names_and_suggests_close_ones():
    import torchvision

    model = torchvision.models.alexnet().eval()
    x = torch.randn(1, 3, 96, 96)
    assert reversenet.Recording(model, x, layer="conv5").activation.shape == (1, 256, 5, 5)
    assert torch.equal(reversenet.Recording(model, x, layer="pool5").activation,
                       reversenet.Recording(model, x, layer="features.12").activation)  # fmt: skip
    with pytest.raises(UsageError, match="unknown layer 'conv6'; did you mean conv5"):
        reversenet.Recording(model, x, layer="conv6")
