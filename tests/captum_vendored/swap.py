"""The substitution that runs captum's own tests of GuidedBackprop, Deconvolution and Saliency
(and of NeuronGuidedBackprop, NeuronDeconvolution) on reversenet: each name here is the reversed
network that equals captum's method of that name (docs/design.md §2), built with captum's
constructor arguments; the vendored tests import these instead of captum's classes.

The variants are the ``+bp`` forms (``desalinet+bp``: desalinet, with exact backpropagation
through a layer type that has no reverse rule), because captum's methods change the ReLUs'
backward only and backpropagate exactly through everything else: the softmax of captum's
SoftmaxModel has no rule, and the plain variants refuse it."""

from captum.log import log_usage
from torch import nn

from reversenet.captum import NeuronReversedNetwork, ReversedNetwork


def GuidedBackprop(model: nn.Module) -> ReversedNetwork:
    return ReversedNetwork(model, "desalinet+bp")


def Deconvolution(model: nn.Module) -> ReversedNetwork:
    return ReversedNetwork(model, "deconvnet+bp")


def NeuronGuidedBackprop(model: nn.Module, layer: nn.Module) -> NeuronReversedNetwork:
    return NeuronReversedNetwork(model, layer, "desalinet+bp")


def NeuronDeconvolution(model: nn.Module, layer: nn.Module) -> NeuronReversedNetwork:
    return NeuronReversedNetwork(model, layer, "deconvnet+bp")


class Saliency(ReversedNetwork):
    """salinet with the arguments of captum's Saliency.attribute: abs third, True by default."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, "salinet+bp")

    @log_usage()
    def attribute(self, inputs, target=None, abs=True, additional_forward_args=None):
        return ReversedNetwork.attribute.__wrapped__(self, inputs, target, additional_forward_args, abs=abs)
