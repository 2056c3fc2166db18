"""The eight reversed architectures as a captum attribution method.

Optional: ``pip install reversenet[captum]``; importing this module imports captum, and
nothing else in reversenet does. Everything captum offers for attributions then works on
any variant: its visualisation (``captum.attr.visualization.visualize_image_attr``), its
metrics (``captum.metrics.infidelity``, ``sensitivity_max``), and comparisons with its own
methods, which three variants reproduce (design page §2): ``deconvnet`` is captum's
``Deconvolution``, ``salinet`` its ``Saliency(abs=False)`` and ``desalinet`` its
``GuidedBackprop``.
"""

from __future__ import annotations

from typing import Any

import torch
from captum._utils.common import _select_targets  # captum's own reading of `target`
from captum.attr import Attribution
from torch import Tensor, nn

from .engine import Recording, VariantSpec
from .errors import UsageError
from .graph import Graph
from .variants import load_variant

TargetType = int | tuple[int, ...] | Tensor | list[int] | list[tuple[int, ...]] | None  # captum's


class ReversedNetwork(Attribution):
    """A reversed architecture (``variant``) of ``model``, with captum's conventions.

    Parameters
    ----------
    model : nn.Module
        The network, traced once here (torch.fx).
    variant : str, Path or Variant
        A built-in variant (``"desalinet"``, ``"salinet-center"``, …) or a YAML file.
    layer : str, optional
        The layer whose neuron ``target`` picks; by default the model's output.

    Examples
    --------
    >>> import torch, torchvision
    >>> from reversenet.captum import ReversedNetwork
    >>> net = torchvision.models.alexnet(num_classes=10).eval()
    >>> x = torch.randn(2, 3, 224, 224)
    >>> ReversedNetwork(net, "desalinet").attribute(x, target=3).shape
    torch.Size([2, 3, 224, 224])
    """

    def __init__(self, model: nn.Module, variant: VariantSpec = "desalinet", layer: str | None = None) -> None:
        super().__init__(model)
        self.graph = Graph(model)
        self.variant = load_variant(variant)
        self.layer = layer

    def attribute(
        self,
        inputs: Tensor | tuple[Tensor],
        target: TargetType = None,
        additional_forward_args: Any = None,
        layer: str | None = None,
    ) -> Tensor | tuple[Tensor]:
        """The reversed network's picture of the ``target`` neuron of each input.

        Parameters
        ----------
        inputs : Tensor (N, C, H, W), or a tuple of one such tensor
            The images.
        target : int, tuple, Tensor, list of int or list of tuple, optional
            Which neuron of the layer's output per image, read exactly as captum reads it
            (an int indexes the last axis; a tuple the axes after the batch; a tensor or
            list gives one per image). None only where the output has one value per image.
        additional_forward_args : None
            Not supported: a reversed network is built for a model of one input.
        layer : str, optional
            Overrides the layer given at construction.

        Returns
        -------
        Tensor of the inputs' shape (a tuple of one tensor if ``inputs`` was a tuple): the
        reversed network's output for a signal that is 1 at each image's target neuron.

        Raises
        ------
        UsageError
            For several inputs, additional forward arguments or a target that does not
            fit the layer's output.
        """
        single = isinstance(inputs, Tensor)
        if not single and len(inputs) != 1:
            raise UsageError(f"ReversedNetwork takes one input tensor, got {len(inputs)}")
        if additional_forward_args is not None:
            raise UsageError("ReversedNetwork reverses a model of one input: additional_forward_args is not supported")
        x = inputs if isinstance(inputs, Tensor) else inputs[0]
        rec = Recording(self.graph, x.detach(), layer=layer or self.layer or "output", variants=[self.variant])
        picture = rec.reverse(self.signal(rec.activation, target), self.variant)
        return picture if single else (picture,)

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
        with torch.enable_grad():  # captum's metrics call attribute under no_grad
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
