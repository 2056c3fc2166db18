"""The eight variants against an independent oracle: autograd on a copy of the model
with the ReLU / max-pool / LRN backward replaced (tests/reference.py)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from reference import lrn_net, reference, relative_error

import reversenet
from reversenet.core.selectors import Mixture

MODELS = {  # name -> (builder, input size, (inner layer, logits))
    "alexnet": (torchvision.models.alexnet, 128, ("features.12", "classifier.6")),
    "vgg16": (torchvision.models.vgg16, 80, ("features.23", "classifier.6")),
    "lrn": (lrn_net, 96, ("7", "13")),
}


@pytest.fixture(scope="module", params=list(MODELS))
def case(request):
    build, size, layers = MODELS[request.param]
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    return request.param, model, x, layers


@pytest.mark.parametrize("which", [0, 1], ids=["inner", "logits"])
def test_every_variant_matches_autograd_oracle(case, which):
    name, model, x, layers = case
    layer = layers[which]
    rec = reversenet.Recording(model, x, layer=layer)
    mixture = rec.select(Mixture(), seed=3)[0]
    for variant in reversenet.VARIANTS:
        ours = rec.reverse(rec.select("max", variant=variant)[0], variant)
        expected = reference(model, x, layer, variant)
        assert expected.norm() > 0
        assert relative_error(ours, expected) < 1e-4, (name, layer, variant)
        # a dense, positive signal exercises every neuron's path, not one
        dense = reference(model, x, layer, variant, signal=mixture)
        assert relative_error(rec.reverse(mixture, variant), dense) < 1e-4, (name, layer, variant)


def test_salinet_is_the_gradient(case):
    """SaliNet is backpropagation: plain torch.autograd.grad, no replaced backward."""
    name, model, x, layers = case
    for layer in layers:
        x_ = x.clone().requires_grad_(True)
        captured = {}
        handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o, captured=captured: captured.update(y=o))
        model(x_)
        handle.remove()
        y = captured["y"]
        flat = y.detach().flatten(1)
        e = torch.zeros_like(flat).scatter_(1, flat.argmax(1, keepdim=True), 1.0).view_as(y)
        (grad,) = torch.autograd.grad(y, x_, e)
        ours = reversenet.reverse(model, x, layer=layer, variant="salinet")
        assert relative_error(ours, grad) < 1e-5, (name, layer)


def test_reverse_api_shapes_and_topk():
    model = torchvision.models.alexnet().eval()
    x = torch.randn(2, 3, 96, 96)
    out = reversenet.reverse(model, x, layer="features.5")
    assert out.shape == x.shape
    top = reversenet.reverse(model, x, layer="features.5", variant="salinet", select="topk:3")
    assert top.shape == (3, 2, *x.shape[1:])  # signals first, as Recording.visualize
    # the first of the top 3 is the most active neuron
    best = reversenet.reverse(model, x, layer="features.5", variant="salinet", select="max")
    torch.testing.assert_close(top[0], best)


def test_one_recording_serves_every_variant_and_selector():
    model = torchvision.models.alexnet().eval()
    x = torch.randn(1, 3, 96, 96)
    rec = reversenet.Recording(model, x, layer="features.12")
    for variant in reversenet.VARIANTS:
        for select in ("max", "channel:3", "full", "noise"):
            direct = reversenet.reverse(model, x, layer="features.12", variant=variant, select=select)
            torch.testing.assert_close(rec.visualize(select, variant)[0], direct)


def test_recording_refuses_a_variant_whose_bottleneck_it_lacks():
    model = torchvision.models.alexnet().eval()
    x = torch.randn(1, 3, 96, 96)
    rec = reversenet.Recording(model, x, layer="features.5", variants=["deconvnet"])
    rec.reverse(rec.select("max")[0], "identity")  # needs nothing more: same switches
    with pytest.raises(reversenet.UsageError, match="needs a bottleneck"):
        rec.reverse(rec.select("max")[0], "salinet")


def test_model_comes_back_untouched():
    torch.manual_seed(0)
    model = torchvision.models.alexnet()
    model.train()  # not switched to eval behind the user's back
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(1, 3, 96, 96)
    reversenet.reverse(model, x, layer="classifier.6", variant="desalinet")
    assert all(m.training for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.features[1].inplace  # torchvision's in-place ReLU is still in place
    model.eval()
    torch.testing.assert_close(model(x), reversenet.Recording(model, x, layer="output").activation)


def _torchvision(name: str, **kwargs):
    def build():
        return torchvision.models.get_model(name, weights=None, **kwargs).eval()

    return build


GRAPHS = {  # name -> (builder, input size, (inner module, logits module))
    "resnet18": (_torchvision("resnet18"), 64, ("layer3", "fc")),
    # transform_input: indexing, products and sums with constants, concatenation
    "googlenet": (_torchvision("googlenet", transform_input=True, aux_logits=False, init_weights=True), 64,
                  ("inception4e", "fc")),
    "inception_v3": (_torchvision("inception_v3", aux_logits=False, init_weights=True), 96, ("Mixed_6e", "fc")),
    "squeezenet1_1": (_torchvision("squeezenet1_1"), 64, ("features.8", "classifier")),
    "densenet121": (_torchvision("densenet121"), 64, ("features.denseblock3", "classifier")),
    "vgg16_bn": (_torchvision("vgg16_bn"), 64, ("features.33", "classifier.6")),
    "mobilenet_v2": (_torchvision("mobilenet_v2"), 64, ("features.14", "classifier")),
}  # fmt: skip


@pytest.mark.parametrize("name", list(GRAPHS))
def test_graph_networks_match_the_oracle(name):
    """Residual, concatenating and batch-normalised networks: all eight variants at an
    inner module and at the logits, each against autograd with replaced backward."""
    build, size, layers = GRAPHS[name]
    torch.manual_seed(0)
    model = build()
    # random weights leave BN at the identity: give it statistics, and a gain that
    # drives many ReLU6 inputs past 6 so that its upper bound matters
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(1.0, 4.0)
            m.bias.data.uniform_(-1.0, 3.0)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    for layer in layers:
        rec = reversenet.Recording(model, x, layer=layer)
        for variant in reversenet.VARIANTS:
            expected = reference(model, x, layer, variant)
            assert expected.norm() > 0
            ours = rec.reverse(rec.select("max")[0], variant)
            assert relative_error(ours, expected) < 1e-4, (name, layer, variant)
