"""reversenet.captum: the reversed architectures as a captum attribution. Oracle: captum's
own methods (Deconvolution, Saliency, GuidedBackprop) on the same model, inputs and targets."""

from __future__ import annotations

import doctest

import matplotlib
import pytest
import torch
from captum.attr import Deconvolution, GuidedBackprop, Saliency, visualization
from captum.metrics import infidelity, sensitivity_max
from reference import relative_error

from reversenet.captum import ReversedNetwork
from reversenet.errors import UsageError
from reversenet.models import load_network

matplotlib.use("Agg")

PEERS = {"deconvnet": Deconvolution, "salinet": lambda m: Saliency(m), "desalinet": GuidedBackprop}


@pytest.fixture(scope="module", params=["vgg16", "resnet18"])
def model(request):
    torch.manual_seed(0)
    return load_network(request.param, "random").module.requires_grad_(False)


def images(n=2, size=64):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("variant", list(PEERS))
@pytest.mark.parametrize("target", [3, [5, 917], torch.tensor([0, 999])], ids=["int", "list", "tensor"])
def test_three_variants_equal_captums_methods(model, variant, target):
    x = images()
    ours = ReversedNetwork(model, variant).attribute(x, target=target)
    kwargs = {"abs": False} if variant == "salinet" else {}
    theirs = PEERS[variant](model).attribute(x.clone().requires_grad_(True), target=target, **kwargs)
    assert ours.shape == x.shape
    assert relative_error(ours, theirs) < 1e-5


def test_a_tuple_of_inputs_gives_a_tuple(model):
    x = images(1)
    (ours,) = ReversedNetwork(model, "salinet").attribute((x,), target=(7,))
    theirs = Saliency(model).attribute(x.clone().requires_grad_(True), target=7, abs=False)
    assert relative_error(ours, theirs) < 1e-5


def test_a_target_per_inner_neuron():
    # layer + tuple target: neuron (channel, row, column) of an inner map, as captum reads it
    torch.manual_seed(0)
    net = load_network("alexnet", "random").module.requires_grad_(False)
    x = images(2, 96)
    ours = ReversedNetwork(net, "salinet", layer="features.9").attribute(x, target=(4, 2, 1))
    y_ = x.clone().requires_grad_(True)
    (theirs,) = torch.autograd.grad(net.features[:10](y_)[:, 4, 2, 1].sum(), y_)
    assert relative_error(ours, theirs) < 1e-5


def test_captums_metrics_and_visualisation_run_on_the_center_variants():
    torch.manual_seed(0)
    net = load_network("alexnet", "random").module.requires_grad_(False)
    x = images(2, 96)
    explain = ReversedNetwork(net, "desalinet-center")

    def perturb(inputs):
        noise = torch.randn(inputs.shape, generator=torch.Generator().manual_seed(2)) * 0.01
        return noise, inputs - noise

    attributions = explain.attribute(x, target=1)
    score = infidelity(net, perturb, x, attributions, target=1, n_perturb_samples=2)
    assert score.shape == (2,) and torch.isfinite(score).all()
    sensitivity = sensitivity_max(ReversedNetwork(net, "deconvnet-center").attribute, x, target=1, n_perturb_samples=2)
    assert sensitivity.shape == (2,) and torch.isfinite(sensitivity).all()
    figure, _ = visualization.visualize_image_attr(attributions[0].permute(1, 2, 0).numpy(), method="heat_map", use_pyplot=False)
    assert figure is not None


@pytest.mark.parametrize(
    "target, message",
    [(None, "give one neuron per image"), (1000, "does not fit"), ([1, 2, 3], "does not fit")],
)
def test_targets_that_do_not_fit_are_one_line_errors(target, message):
    net = load_network("alexnet", "random").module
    with pytest.raises(UsageError, match=message):
        ReversedNetwork(net).attribute(images(2, 96), target=target)


def test_additional_forward_args_are_refused():
    net = load_network("alexnet", "random").module
    with pytest.raises(UsageError, match="additional_forward_args"):
        ReversedNetwork(net).attribute(images(1, 96), target=0, additional_forward_args=(1,))


def test_the_docstring_example_runs():
    import reversenet.captum

    assert doctest.testmod(reversenet.captum).failed == 0
