"""reversenet.captum: the reversed architectures as a captum attribution. Oracle: captum's
own methods (Deconvolution, Saliency, GuidedBackprop) on the same model, inputs and targets."""

from __future__ import annotations

import doctest

import matplotlib
import pytest
import torch
from captum.attr import (
    Deconvolution,
    GradientAttribution,
    GuidedBackprop,
    NeuronDeconvolution,
    NeuronGradient,
    NeuronGuidedBackprop,
    NoiseTunnel,
    Saliency,
    visualization,
)
from captum.metrics import infidelity, sensitivity_max
from reference import relative_error
from torch import nn

from reversenet.captum import NeuronReversedNetwork, ReversedNetwork
from reversenet.errors import UsageError
from reversenet.inputs.models import load_network

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


# Several inputs, any rank, extra arguments. Oracles: torch.autograd.grad per input
# (salinet) and captum's methods (deconvnet, desalinet) on the same call.


class TwoBranch(nn.Module):
    """An image and an optional depth map, through branches of their own into one head;
    `scale` (a number) and `bias` (a tensor) are arguments that get no attribution."""

    def __init__(self):
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.depth = nn.Sequential(nn.Conv2d(1, 8, 5, stride=2, padding=2), nn.ReLU())
        self.head = nn.Sequential(
            nn.Conv2d(8, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)
        )

    def forward(self, image, depth=None, scale=1.0, bias=None):
        y = self.image(image)
        if depth is not None:
            y = y + self.depth(depth) * scale
        if bias is not None:
            y = y + bias
        return self.head(y)


def two_branch():
    torch.manual_seed(3)
    return TwoBranch().eval().requires_grad_(False)


def pair(n=3):
    g = torch.Generator().manual_seed(4)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randn(n, 1, 32, 32, generator=g)


def gradients(f, inputs):
    """autograd's gradient of f(*inputs).sum() with respect to each input."""
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    with torch.enable_grad():
        return torch.autograd.grad(f(*leaves).sum(), leaves)


def test_several_inputs_get_autograds_gradient_each():
    net, (image, depth) = two_branch(), pair()
    bias = torch.randn(3, 8, 16, 16, generator=torch.Generator().manual_seed(5))
    explain = ReversedNetwork(net, "salinet")
    ours = explain.attribute((image, depth), target=[1, 4, 7], additional_forward_args=(0.5, bias))
    theirs = gradients(lambda a, b: net(a, b, 0.5, bias)[range(3), [1, 4, 7]], (image, depth))
    assert isinstance(ours, tuple) and len(ours) == 2
    for o, t in zip(ours, theirs):
        assert o.shape == t.shape and relative_error(o, t) < 1e-5


def test_a_neuron_of_an_inner_map_of_two_inputs_reverses_on_both_receptive_fields():
    # one neuron of a 4-D map: the engine reverses on windows, here on both branches
    net, (image, depth) = two_branch(), pair(2)
    ours = ReversedNetwork(net, "salinet", layer="head.0").attribute((image, depth), target=(5, 3, 9))
    theirs = gradients(lambda a, b: net.head[0](net.image(a) + net.depth(b))[:, 5, 3, 9], (image, depth))
    for o, t in zip(ours, theirs):
        assert relative_error(o, t) < 1e-5
    assert 0 < (ours[0][0] != 0).sum() < ours[0][0].numel()  # a receptive field, not the whole image


@pytest.mark.parametrize("variant", ["deconvnet", "desalinet"])
@pytest.mark.parametrize(
    "given, extra",
    [(1, None), (2, None), (2, (2.0,))],
    ids=["image alone", "image and depth", "with scale"],
)
def test_an_optional_input_given_or_left_out_equals_captums(variant, given, extra):
    net, inputs = two_branch(), pair()[:given]
    ours = ReversedNetwork(net, variant).attribute(inputs, target=2, additional_forward_args=extra)
    captum = PEERS[variant](net)
    leaves = tuple(x.clone().requires_grad_(True) for x in inputs)
    theirs = captum.attribute(leaves, target=2, additional_forward_args=extra)
    assert len(ours) == given
    for o, t in zip(ours, theirs):
        assert relative_error(o, t) < 1e-5


def mlp():
    torch.manual_seed(6)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


@pytest.mark.parametrize("variant", list(PEERS))
def test_features_n_by_d_reverse_like_images(variant):
    net, x = mlp(), torch.randn(5, 6, generator=torch.Generator().manual_seed(7))
    ours = ReversedNetwork(net, variant).attribute(x, target=[0, 1, 2, 3, 0])
    kwargs = {"abs": False} if variant == "salinet" else {}
    theirs = PEERS[variant](net).attribute(x.clone().requires_grad_(True), target=[0, 1, 2, 3, 0], **kwargs)
    assert ours.shape == (5, 6) and relative_error(ours, theirs) < 1e-5


def test_a_sequence_input_n_by_l_by_d_reverses_to_autograds_gradient():
    torch.manual_seed(8)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Flatten(), nn.Linear(35, 3)).eval()
    x = torch.randn(4, 7, 6, generator=torch.Generator().manual_seed(9))
    ours = ReversedNetwork(net, "salinet").attribute(x, target=2)
    (theirs,) = gradients(lambda a: net(a)[:, 2], (x,))
    assert ours.shape == (4, 7, 6) and relative_error(ours, theirs) < 1e-5


def test_abs_gives_captums_saliency_default():
    net, x = mlp(), torch.randn(5, 6, generator=torch.Generator().manual_seed(7))
    ours = ReversedNetwork(net, "salinet").attribute(x, target=1, abs=True)
    theirs = Saliency(net).attribute(x.clone().requires_grad_(True), target=1)  # abs=True
    assert (ours >= 0).all() and relative_error(ours, theirs) < 1e-5


# captum's wrappers: NoiseTunnel calls attribute.__wrapped__ under no_grad


def test_it_is_a_captum_gradient_attribution():
    explain = ReversedNetwork(mlp(), "desalinet")
    assert isinstance(explain, GradientAttribution)
    assert not explain.has_convergence_delta() and not explain.multiplies_by_inputs
    assert hasattr(ReversedNetwork.attribute, "__wrapped__")  # captum's log_usage


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_equals_noise_tunnel_of_guided_backprop(nt_type):
    torch.manual_seed(0)
    net = load_network("alexnet", "random").module.requires_grad_(False)
    x = images(2, 96)
    kwargs = {"nt_type": nt_type, "nt_samples": 4, "nt_samples_batch_size": 3, "stdevs": 0.5, "target": 5}
    torch.manual_seed(11)
    ours = NoiseTunnel(ReversedNetwork(net, "desalinet")).attribute(x, **kwargs)
    torch.manual_seed(11)
    theirs = NoiseTunnel(GuidedBackprop(net)).attribute(x.clone().requires_grad_(True), **kwargs)
    torch.manual_seed(12)
    other = NoiseTunnel(GuidedBackprop(net)).attribute(x.clone().requires_grad_(True), **kwargs)
    assert ours.shape == x.shape and relative_error(ours, theirs) < 1e-5
    assert relative_error(other, theirs) > 1e-3  # the noise matters: equal noise, not luck


def test_noise_tunnel_passes_several_inputs_and_extra_arguments():
    net, (image, depth) = two_branch(), pair(2)
    kwargs = {"nt_type": "smoothgrad", "nt_samples": 3, "stdevs": (0.1, 0.2), "target": 3, "additional_forward_args": 2.0}
    torch.manual_seed(13)
    ours = NoiseTunnel(ReversedNetwork(net, "deconvnet")).attribute((image, depth), **kwargs)
    torch.manual_seed(13)
    theirs = NoiseTunnel(Deconvolution(net)).attribute((image.requires_grad_(), depth.requires_grad_()), **kwargs)
    for o, t in zip(ours, theirs):
        assert relative_error(o, t) < 1e-5


# The neuron form, against captum's own neuron methods


NEURON_PEERS = {"deconvnet": NeuronDeconvolution, "desalinet": NeuronGuidedBackprop, "salinet": NeuronGradient}


@pytest.mark.parametrize("variant", list(NEURON_PEERS))
@pytest.mark.parametrize(
    "selector",
    [(4, 2, 3), (slice(0, 8), 1, slice(2, 4)), lambda y: (y[:, 3] ** 2).sum((1, 2))],
    ids=["index", "slices", "callable"],
)
@pytest.mark.parametrize("to_input", [False, True], ids=["output", "input"])
def test_the_neuron_form_equals_captums(variant, selector, to_input):
    torch.manual_seed(0)
    net = load_network("alexnet", "random").module.requires_grad_(False)
    x = images(2, 96)
    layer = net.features[8]  # conv4
    ours = NeuronReversedNetwork(net, layer, variant).attribute(x, selector, attribute_to_neuron_input=to_input)
    captum = NEURON_PEERS[variant](net, layer)
    theirs = captum.attribute(x.clone().requires_grad_(True), selector, attribute_to_neuron_input=to_input)
    assert ours.shape == x.shape and relative_error(ours, theirs) < 1e-5


def test_the_neuron_form_takes_a_layer_by_name_and_several_inputs():
    net, (image, depth) = two_branch(), pair(2)
    ours = NeuronReversedNetwork(net, "head.0", "desalinet").attribute((image, depth), (2, 5, 5))
    theirs = NeuronGuidedBackprop(net, net.head[0]).attribute((image.requires_grad_(), depth.requires_grad_()), (2, 5, 5))
    for o, t in zip(ours, theirs):
        assert relative_error(o, t) < 1e-5


# Bad input: one line that says what is wrong


def one_line_usage_error(call, message):
    with pytest.raises(UsageError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "inputs, extra, message",
    [
        ("photo.jpg", None, "x must be a float tensor .N, .... or a tuple of them, got str"),
        (torch.ones(2, 3, 32, 32, dtype=torch.long), None, "got .2, 3, 32, 32."),
        (torch.tensor(1.0), None, "got ..$"),
        ((torch.ones(2, 3, 32, 32), torch.ones(3, 1, 32, 32)), None, "one batch size"),
        ((torch.full((2, 3, 32, 32), float("nan")),), None, "NaN or Inf"),
        (torch.ones(2, 3, 32, 32), (None, 1.0, None, 5), "too many arguments for TwoBranch.forward: 5 given, it takes 4"),
    ],
    ids=["a path", "integers", "no batch", "two batch sizes", "NaN", "too many arguments"],
)
def test_bad_inputs_are_one_line_errors(inputs, extra, message):
    explain = ReversedNetwork(two_branch(), "desalinet")
    one_line_usage_error(lambda: explain.attribute(inputs, target=0, additional_forward_args=extra), message)


def test_a_missing_argument_is_a_one_line_error():
    class Two(nn.Module):
        def forward(self, a, b):
            return a + b

    one_line_usage_error(lambda: ReversedNetwork(Two()).attribute(torch.ones(2, 3)), "Two.forward needs argument 'b'")


@pytest.mark.parametrize(
    "selector, message",
    [
        ((99, 0, 0), "neuron_selector .99, 0, 0. does not fit the output of shape .2, 16, 14, 14."),
        (lambda y: y[:, 0, 0], "one value of the layer's output .shape .2, 16, 14, 14.. per image, got .2, 14."),
        (lambda y: torch.ones(2), "per image, got .2,."),
    ],
    ids=["out of range", "several per image", "not from the output"],
)
def test_bad_neuron_selectors_are_one_line_errors(selector, message):
    net, (image, depth) = two_branch(), pair(2)
    explain = NeuronReversedNetwork(net, net.head[0], "desalinet")
    one_line_usage_error(lambda: explain.attribute((image, depth), selector), message)


def test_a_layer_of_another_model_is_a_one_line_error():
    explain = ReversedNetwork(two_branch(), "desalinet", layer=nn.ReLU())
    one_line_usage_error(lambda: explain.attribute(pair()[0], target=0), "layer ReLU is not a submodule of TwoBranch")


def test_a_model_whose_forward_depends_on_the_input_shape():
    """timm's VGG head pools only inputs smaller than its kernel: traced per input geometry."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vgg11", pretrained=False, num_classes=5).eval()
    method = ReversedNetwork(model, "desalinet")
    for size in (32, 224):  # 1×1 maps pooled to 7×7, 7×7 maps as they are
        x = torch.randn(2, 3, size, size)
        expected = GuidedBackprop(model).attribute(x.clone().requires_grad_(True), target=1)
        assert relative_error(method.attribute(x, target=1), expected) < 1e-5
