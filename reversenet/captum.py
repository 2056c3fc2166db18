"""The eight reversed architectures as captum attribution methods.

Optional: ``pip install reversenet[captum]``; importing this module imports captum, and
nothing else in reversenet does. `ReversedNetwork` is a captum ``GradientAttribution`` (the
input attribution of a ``target``, as captum's ``GuidedBackprop``), `NeuronReversedNetwork` a
``NeuronAttribution`` (of a neuron of an inner layer, as ``NeuronGuidedBackprop``). Both take
captum's conventions: a tensor or a tuple of input tensors of any rank (one picture per
input), ``additional_forward_args``, ``target`` or ``neuron_selector``. So everything captum
offers for attributions works on any variant: ``NoiseTunnel`` (SmoothGrad, VarGrad), its
visualisation, its metrics (``infidelity``, ``sensitivity_max``), and comparisons with its own
methods, which three variants reproduce (design page §2): ``deconvnet`` is captum's
``Deconvolution``, ``salinet`` its ``Saliency`` and ``desalinet`` its ``GuidedBackprop``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from captum._utils.common import (  # captum's own readings of its arguments
    _format_additional_forward_args,
    _select_targets,
    _verify_select_neuron,
)
from captum.attr import GradientAttribution, NeuronAttribution
from captum.log import log_usage
from torch import Tensor, nn

from .core.graph import Graph, none_parameters
from .core.recording import Recording
from .core.variants import VariantSpec, load_variant
from .errors import UsageError

TargetType = int | tuple[int, ...] | Tensor | list[int] | list[tuple[int, ...]] | None  # captum's
NeuronSelector = int | tuple[int | slice, ...] | Callable[[Tensor], Tensor]  # captum's
Inputs = Tensor | tuple[Tensor, ...]
Layer = str | nn.Module | None


class ReversedNetwork(GradientAttribution):
    """A reversed architecture (``variant``) of ``model``, with captum's conventions.

    Parameters
    ----------
    model : nn.Module
        The network, traced with torch.fx at the first call (once per pattern of None
        arguments: an optional input left out).
    variant : str, Path or Variant
        A built-in variant (``"desalinet"``, ``"salinet-center"``, …) or a YAML file.
    layer : str or nn.Module, optional
        The layer whose neuron ``target`` picks: a name (as ``reversenet layers`` lists
        them) or the submodule itself, as captum takes it; by default the model's output.

    Examples
    --------
    >>> import torch, torchvision
    >>> from reversenet.captum import ReversedNetwork
    >>> net = torchvision.models.alexnet(num_classes=10).eval()
    >>> x = torch.randn(2, 3, 224, 224)
    >>> ReversedNetwork(net, "desalinet").attribute(x, target=3).shape
    torch.Size([2, 3, 224, 224])

    A model of several inputs of any rank gets one picture per input; captum's
    ``NoiseTunnel`` smooths any variant:

    >>> from captum.attr import NoiseTunnel
    >>> class Pair(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = torch.nn.Linear(8, 4)
    ...     def forward(self, a, b, scale=1.0):
    ...         return self.fc(torch.relu(a) - b) * scale
    >>> a, b = torch.randn(5, 8), torch.randn(5, 8)
    >>> pictures = ReversedNetwork(Pair(), "deconvnet").attribute((a, b), target=1, additional_forward_args=2.0)
    >>> [p.shape for p in pictures]
    [torch.Size([5, 8]), torch.Size([5, 8])]
    >>> NoiseTunnel(ReversedNetwork(net)).attribute(x, nt_type="vargrad", nt_samples=2, target=3).shape
    torch.Size([2, 3, 224, 224])
    """

    def __init__(self, model: nn.Module, variant: VariantSpec = "desalinet", layer: Layer = None) -> None:
        GradientAttribution.__init__(self, model)
        self.model = model
        self.variant = load_variant(variant)
        self.layer = layer
        self._graphs: dict[frozenset[str], Graph] = {}

    @log_usage()
    def attribute(
        self,
        inputs: Inputs,
        target: TargetType = None,
        additional_forward_args: Any = None,
        layer: Layer = None,
        abs: bool = False,
    ) -> Inputs:
        """The reversed network's picture of the ``target`` neuron of each input.

        Parameters
        ----------
        inputs : Tensor, or tuple of Tensor
            The model's inputs, each of any rank with the batch first ((N, C, H, W) images,
            (N, D) features), one batch size; a tuple for a model of several inputs.
        target : int, tuple, Tensor, list of int or list of tuple, optional
            Which neuron of the layer's output per image, read exactly as captum reads it
            (an int indexes the last axis; a tuple the axes after the batch; a tensor or
            list gives one per image). None only where the output has one value per image.
        additional_forward_args : Any, optional
            The forward's further positional arguments, after the inputs, as captum takes
            them (one value, or a tuple of values): tensors or not, they get no picture.
        layer : str or nn.Module, optional
            Overrides the layer given at construction.
        abs : bool, default False
            Return the pictures' absolute values (as captum's ``Saliency``, whose default
            is True).

        Returns
        -------
        Tensor, or tuple of Tensor
            The reversed network's output for a signal that is 1 at each image's target
            neuron: the inputs' shapes, a tuple if ``inputs`` was one.

        Raises
        ------
        UsageError
            For inputs that are not float tensors of one batch size, arguments the forward
            does not take, or a target that does not fit the layer's output.
        """
        return self._attribute(inputs, additional_forward_args, layer, lambda y: self.signal(y, target), abs)

    def attribute_future(self) -> None:
        """Not implemented, as for captum's own gradient methods."""
        raise NotImplementedError("attribute_future is not implemented for ReversedNetwork")

    def _attribute(
        self, inputs: Inputs, args: Any, layer: Layer, signal: Callable[[Tensor], Tensor], abs: bool = False,
        to_input: bool = False,
    ) -> Inputs:
        """Record `inputs` (and the extra `args`) up to `layer` (or its input), reverse the
        signal made from its output; pictures as captum returns them."""
        single = not isinstance(inputs, (tuple, list))
        xs = (inputs,) if single else tuple(inputs)  # checked by Recording
        extra = _format_additional_forward_args(args) or ()
        graph = self._graph((*xs, *extra))
        name = self._layer_name(layer if layer is not None else self.layer)
        if to_input:
            name = _input_of(graph, name)
        rec = Recording(graph, xs, layer=name, variants=[self.variant], args=extra)
        pictures = rec.reverse(signal(rec.activation), self.variant)
        if abs:
            pictures = tuple(p.abs() for p in pictures)
        return pictures[0] if single else pictures

    def _graph(self, args: tuple) -> Graph:
        """The model traced for a call with `args` (the None ones as constants), once."""
        try:
            none = none_parameters(self.model, args)
        except UsageError as exc:  # in captum's terms
            raise UsageError(f"{exc} (inputs and additional_forward_args together)") from None
        if none not in self._graphs:  # shape-dependent control flow: traced for these arguments
            self._graphs[none] = Graph(self.model, none=none, example=[a for a in args if a is not None])
        return self._graphs[none]

    def _layer_name(self, layer: Layer) -> str:
        """A layer given by name or as a submodule, by name."""
        if layer is None or isinstance(layer, str):
            return layer or "output"
        names = [name for name, m in self.model.named_modules() if m is layer]
        if not names:
            raise UsageError(f"layer {type(layer).__name__} is not a submodule of {type(self.model).__name__}")
        return names[0] or "output"  # the model itself: its output

    @staticmethod
    def signal(output: Tensor, target: TargetType) -> Tensor:
        """The reversed network's input e for captum's ``target``.

        Parameters
        ----------
        output : torch.Tensor
            The layer's output, (N, ...).
        target : int, tuple, list or torch.Tensor
            captum's target: one neuron per image.

        Returns
        -------
        torch.Tensor
            `output`'s shape: 1 at the selected neurons, 0 elsewhere.

        Raises
        ------
        reversenet.UsageError
            A target that does not fit the output, or that selects more than one neuron
            per image.
        """
        probe = torch.zeros_like(output, requires_grad=True)
        with torch.enable_grad():  # captum's metrics and NoiseTunnel call attribute under no_grad
            try:
                selected = _select_targets(probe, target)
            except (AssertionError, IndexError, TypeError) as exc:
                raise UsageError(f"target {target!r} does not fit the output of shape {tuple(output.shape)}: {exc}") from None
            if selected.numel() != len(output):
                raise UsageError(
                    f"target {target!r} selects {selected.numel()} values of an output of shape "
                    f"{tuple(output.shape)}: give one neuron per image"
                )
            (signal,) = torch.autograd.grad(selected.sum(), probe)
        return signal


class NeuronReversedNetwork(NeuronAttribution, GradientAttribution):
    """A reversed architecture started from a neuron of an inner layer, as captum's
    ``NeuronGuidedBackprop(model, layer)`` and ``NeuronDeconvolution``.

    Parameters
    ----------
    model : nn.Module
        The network, traced with torch.fx at the first call.
    layer : nn.Module or str
        The layer whose neurons ``neuron_selector`` picks: the submodule, as captum takes
        it, or its name.
    variant : str, Path or Variant
        A built-in variant or a YAML file.

    Examples
    --------
    >>> import torch, torchvision
    >>> from reversenet.captum import NeuronReversedNetwork
    >>> net = torchvision.models.alexnet().eval()
    >>> x = torch.randn(2, 3, 224, 224)
    >>> explain = NeuronReversedNetwork(net, net.features[10], "desalinet")  # conv5
    >>> explain.attribute(x, neuron_selector=(4, 6, 6)).shape  # channel 4, row 6, column 6
    torch.Size([2, 3, 224, 224])
    >>> explain.attribute(x, neuron_selector=lambda y: y[:, 4].amax((1, 2))).shape  # its strongest
    torch.Size([2, 3, 224, 224])
    """

    def __init__(self, model: nn.Module, layer: nn.Module | str, variant: VariantSpec = "desalinet") -> None:
        NeuronAttribution.__init__(self, model, layer)
        GradientAttribution.__init__(self, model)
        self.reversed = ReversedNetwork(model, variant, layer)

    @log_usage()
    def attribute(
        self,
        inputs: Inputs,
        neuron_selector: NeuronSelector,
        additional_forward_args: Any = None,
        attribute_to_neuron_input: bool = False,
    ) -> Inputs:
        """The reversed network's picture of the selected neuron(s) of the layer, per input.

        Parameters
        ----------
        inputs : Tensor, or tuple of Tensor
            As in `ReversedNetwork.attribute`.
        neuron_selector : int, tuple of int and slice, or callable
            As captum reads it: an int or a tuple indexes the layer's output per image
            (the axes after the batch; a slice selects the sum of its neurons); a callable
            takes the layer's output and returns one value per image (or one in all), and
            its gradient there is the signal reversed.
        additional_forward_args : Any, optional
            As in `ReversedNetwork.attribute`.
        attribute_to_neuron_input : bool, default False
            Select the neuron in the layer's input instead of its output (a layer of one
            input).

        Returns
        -------
        Tensor, or tuple of Tensor
            The inputs' shapes, a tuple if ``inputs`` was one.

        Raises
        ------
        UsageError
            Bad inputs (as in `ReversedNetwork.attribute`), or a selector that does not fit
            the layer's output.
        """
        signal = lambda y: self.signal(y, neuron_selector)
        to_input = attribute_to_neuron_input
        return self.reversed._attribute(inputs, additional_forward_args, None, signal, to_input=to_input)

    def attribute_future(self) -> None:
        """Not implemented, as for captum's own gradient methods."""
        raise NotImplementedError("attribute_future is not implemented for NeuronReversedNetwork")

    @staticmethod
    def signal(output: Tensor, neuron_selector: NeuronSelector) -> Tensor:
        """The reversed network's input e for captum's ``neuron_selector``.

        Parameters
        ----------
        output : torch.Tensor
            The layer's output, (N, ...).
        neuron_selector : int, tuple of int and slice, or callable
            captum's selector.

        Returns
        -------
        torch.Tensor
            `output`'s shape: the gradient, at `output`, of the selected values' sum (1 at
            indexed neurons, 0 elsewhere).

        Raises
        ------
        reversenet.UsageError
            A selector that does not fit the output, or that gives neither one value per
            image nor one in all.
        """
        probe = output.detach().clone().requires_grad_(True)  # a callable's gradient depends on the output
        with torch.enable_grad():
            try:
                selected = _verify_select_neuron((probe,), neuron_selector)
            except (AssertionError, IndexError, TypeError) as exc:
                raise UsageError(
                    f"neuron_selector {neuron_selector!r} does not fit the output of shape {tuple(output.shape)}: {exc}"
                ) from None
            fits = isinstance(selected, Tensor) and selected.requires_grad and selected.numel() in (1, len(output))
            if not fits:
                got = tuple(selected.shape) if isinstance(selected, Tensor) else type(selected).__name__
                raise UsageError(
                    f"neuron_selector must give one value of the layer's output (shape {tuple(output.shape)}) "
                    f"per image, got {got}"
                )
            (signal,) = torch.autograd.grad(selected.sum(), probe)
        return signal


def _input_of(graph: Graph, layer: str) -> str:
    """The graph node that is `layer`'s one tensor input, by name."""
    node = graph.resolve(layer)
    inputs = [n for n in node.all_input_nodes if n.op != "get_attr"]
    if len(inputs) != 1:
        raise UsageError(f"attribute_to_neuron_input: layer {layer!r} takes {len(inputs)} inputs, not one")
    return inputs[0].name
