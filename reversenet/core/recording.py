"""The recording: one forward pass of a model records the bottleneck its reverses reuse.

`Recording` is the public face; the steps of the forward pass are run in
reversenet.core.forward, the reverse pass in reversenet.core.reverse (on the windows of
reversenet.core.receptive), the selectors' signals made in reversenet.core.selectors.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Generic

import torch
from torch import Tensor, fx, nn

from ..errors import UsageError
from . import guard, selectors
from .forward import Forward, key
from .graph import Graph, Step, evaluation, none_parameters
from .reverse import P, Pictures, ReversePass
from .rules import Rule
from .selectors import Selector, parse_selector
from .variants import VARIANTS, VariantSpec, load_variant


class Recording(Generic[P]):
    """The forward pass of `model` on `x` up to one or several layers, and its bottleneck.

    One forward pass records what the reversed networks of `variants` need (ReLU masks,
    pooling switches, ...: the bottleneck, docs/design.md §1); `reverse` then runs any
    signal of a recorded layer's shape back to the input, for any of those variants,
    without running the model again.

    Parameters
    ----------
    model : torch.nn.Module or reversenet.core.graph.Graph
        The network, traced with torch.fx; pass a ``Graph`` already traced to trace a
        model used for many batches once.
    x : torch.Tensor or tuple of torch.Tensor
        The normalised input, float, finite, of any rank with the batch first: (N, C, H, W)
        for images, (N, D) for features. A model of several inputs takes a tuple of them
        (one batch size); its reverses are then tuples too, one picture per input.
    layer : str or sequence of str
        The layer(s) to record: a module name as in ``model.named_modules()``, a paper
        name (``conv5``, ``pool5``, ``fc8``; docs/design.md §1), a graph node name, or
        ``"output"``. The forward pass stops at the deepest.
    variants : iterable of str, pathlib.Path or Variant, default VARIANTS
        The variants the recording must serve (their bottleneck is recorded): names,
        YAML files or ``Variant`` objects.
    aliases : dict of str to str, optional
        Extra layer names, alias to module name; the paper's names are always known.
    args : sequence, optional
        The forward's further positional arguments, after x (captum's
        ``additional_forward_args``): tensors or other values, which get no picture. An
        argument that is None, or left out with the default None, is traced as None.

    Attributes
    ----------
    activations : dict of str to torch.Tensor
        Each recorded layer's output, keyed by the name it was asked by.
    layers : list of str
        The recorded layers, in the order asked.
    input_shapes : list of tuple of int
        The shape of each input in x.

    Raises
    ------
    reversenet.UsageError
        `x` is not a finite float tensor (N, ...) or a tuple of them, holds no images
        (N = 0), the forward takes other arguments, a layer does not exist (the error
        suggests close names), or no layer or variant is given.

    Examples
    --------
    >>> import torch, torchvision, reversenet
    >>> model = torchvision.models.alexnet().eval()  # random weights
    >>> rec = reversenet.Recording(model, torch.randn(2, 3, 224, 224), layer=["conv5", "pool5"])
    >>> rec.activations["pool5"].shape
    torch.Size([2, 256, 6, 6])
    >>> rec.visualize("max", "desalinet", layer="conv5").shape  # (K, N, C, H, W)
    torch.Size([1, 2, 3, 224, 224])

    A model of two inputs, on (N, D) features:

    >>> class Pair(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = torch.nn.Linear(4, 2)
    ...     def forward(self, a, b):
    ...         return self.fc(torch.relu(a) + b)
    >>> rec = reversenet.Recording(Pair(), (torch.randn(3, 4), torch.randn(3, 4)), layer="output")
    >>> [p.shape for p in rec.reverse(torch.ones(3, 2), "salinet")]
    [torch.Size([3, 4]), torch.Size([3, 4])]
    """

    def __init__(
        self,
        model: nn.Module | Graph,
        x: P,
        *,
        layer: str | Sequence[str],
        variants: Iterable[VariantSpec] = VARIANTS,
        aliases: dict[str, str] | None = None,
        args: Sequence[Any] = (),
    ):
        self._single = isinstance(x, Tensor)
        inputs = _checked((x,) if isinstance(x, Tensor) else x)
        self.layers = [layer] if isinstance(layer, str) else list(dict.fromkeys(layer))
        if not self.layers:
            raise UsageError("record at least one layer")
        module = model.model if isinstance(model, Graph) else model
        self._call = (*inputs, *args)  # the forward's arguments, as given
        none = none_parameters(module, self._call)
        given = [v for v in self._call if v is not None]
        if isinstance(model, Graph) and model.none == none:
            graph = model
        else:  # traced for this call's None arguments
            graph = Graph(module, model.aliases if isinstance(model, Graph) else aliases, none, example=given)
        self.graph = graph.at(given)
        feed = self._feed(given)
        self.targets = {name: self.graph.resolve(name) for name in self.layers}
        self.steps = self.graph.path(*self.targets.values())
        self._on_path = {t: {s.node for s in self.graph.path(t)} for t in set(self.targets.values())}
        loaded = [load_variant(v) for v in variants]
        if not loaded:
            raise UsageError("record at least one variant")
        self._forward = Forward(self.graph, feed)
        self._plans: dict[tuple, list[tuple[Step, Rule]]] = {}
        self.input_shapes = [tuple(v.shape) for v in inputs]
        self._n = len(inputs[0])  # the batch
        self._pictures = Pictures(self.graph.input[: len(inputs)], self.input_shapes, self._n, self._single)
        with evaluation(self.graph.model):
            kept = self._forward.run(feed, self.steps, set(self._on_path), loaded)
        self.activations = {name: _tensor(name, kept.get(node, feed.get(node))) for name, node in self.targets.items()}
        checks = self._forward.checks
        unchecked = {node: self.activations[name] for name, node in self.targets.items()
                     if node.name not in checks.passed}  # fmt: skip
        if unchecked:  # the guard, once per model, trace and layer (reversenet.core.guard)
            guard.layers(self.graph, self._call, unchecked)
            checks.passed.update(node.name for node in unchecked)
        for (variant, kind), places in self._forward.fallbacks.items():  # one line per layer type
            where = list(places)
            more = f" and {len(where) - 1} more" if len(where) > 1 else ""
            warnings.warn(
                f"{where[0]}{more}: no reverse rule for {kind}; variant {variant!r} backpropagates through "
                f"{'them' if more else 'it'} exactly (bottleneck: the input)",
                stacklevel=3,
            )

    @property
    def layer(self) -> str:
        """The recorded layer, when there is one (a `reversenet.UsageError` otherwise)."""
        if len(self.layers) > 1:
            raise UsageError(f"this recording holds {len(self.layers)} layers; name one: {', '.join(self.layers)}")
        return self.layers[0]

    @property
    def activation(self) -> Tensor:
        """The recorded layer's output, when there is one layer."""
        return self.activations[self.layer]

    def _feed(self, given: list[Any]) -> dict[fx.Node, Any]:
        """The value of each placeholder: the arguments given, then the defaults."""
        placeholders = self.graph.input
        for node in placeholders[len(given) :]:
            if not node.args:
                raise UsageError(f"{type(self.graph.model).__name__}.forward needs argument {node.target!r}")
        return dict(zip(placeholders, [*given, *(node.args[0] for node in placeholders[len(given) :])]))

    def rules(self, variant: VariantSpec, layer: str | None = None) -> list[tuple[Step, Rule]]:
        """The reverse plan: the rule `variant` applies at each step of the path to `layer`.

        Parameters
        ----------
        variant : str, pathlib.Path or Variant
            One of the recorded variants.
        layer : str, optional
            A recorded layer; may be left out when one layer was recorded.

        Returns
        -------
        list of (reversenet.core.graph.Step, reversenet.core.rules.Rule)
            Input first; made once per recording, variant and layer.
        """
        variant, layer = load_variant(variant), layer or self.layer
        cached = (variant.name, repr(variant.rules), variant.fallback, layer)
        if cached not in self._plans:
            on_path = self._on_path[self.targets[layer]]
            self._plans[cached] = [(s, self._forward.rule(s, variant)) for s in self.steps
                                if s.node in self._forward.inputs and s.node in on_path]  # fmt: skip
        return self._plans[cached]

    def bottleneck_bits(self, variant: VariantSpec, layer: str | None = None) -> list[tuple[Step, Rule, float]]:
        """The information each step's bottleneck carries, in bits per image.

        Parameters
        ----------
        variant : str, pathlib.Path or Variant
            One of the recorded variants.
        layer : str, optional
            A recorded layer; may be left out when one layer was recorded.

        Returns
        -------
        list of (reversenet.core.graph.Step, reversenet.core.rules.Rule, float)
            Per step of the plan, its rule and bits per image (a ReLU mask: 1 bit per
            element; switches: log2(window) per output).
        """
        return self._per_image("bits", variant, layer)

    def bottleneck_bytes(
        self, variant: VariantSpec, layer: str | None = None
    ) -> list[tuple[Step, Rule, float]]:
        """The memory each step's bottleneck holds, in bytes per image.

        Parameters
        ----------
        variant : str, pathlib.Path or Variant
            One of the recorded variants.
        layer : str, optional
            A recorded layer; may be left out when one layer was recorded.

        Returns
        -------
        list of (reversenet.core.graph.Step, reversenet.core.rules.Rule, float)
            Per step of the plan, its rule and bytes per image (``Rule.nbytes``: a ReLU
            mask packed 8 bits to a byte, a switch one byte per output).
        """
        return self._per_image("nbytes", variant, layer)

    def _per_image(
        self, size: str, variant: VariantSpec, layer: str | None
    ) -> list[tuple[Step, Rule, float]]:
        """(step, rule, rule.<size>(its bottleneck) / batch) along the path to `layer`."""
        n = self._n
        measure = lambda step, rule: getattr(rule, size)(step.op, self._forward.bottleneck[key(step, rule)])
        return [(step, rule, measure(step, rule) / n) for step, rule in self.rules(variant, layer)]

    def reverse(
        self, signal: Tensor, variant: VariantSpec = "desalinet", *, layer: str | None = None, restrict: bool = True
    ) -> P:
        """Run `signal` back to the input through the reversed network of `variant`.

        Parameters
        ----------
        signal : torch.Tensor
            The reversed network's input e: the activation's shape (N, ...), or K signals
            per image, (K, N, ...).
        variant : str, pathlib.Path or Variant, default "desalinet"
            One of the recorded variants.
        layer : str, optional
            The recorded layer `signal` starts from; may be left out when one layer was
            recorded.
        restrict : bool, default True
            Reverse a signal confined to a small box of a feature map (a neuron) on its
            receptive field only; the result is the same (docs/design.md §7).

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            Shape (N, C, H, W) like the input, or (K, N, C, H, W) for K signals per image;
            for a tuple of inputs, a tuple of such pictures, one per input.

        Raises
        ------
        reversenet.UsageError
            `layer` was not recorded, or `signal` does not have its shape.

        Examples
        --------
        >>> import torch, torchvision, reversenet
        >>> model = torchvision.models.alexnet().eval()
        >>> rec = reversenet.Recording(model, torch.randn(1, 3, 224, 224), layer="pool5")
        >>> e = torch.zeros_like(rec.activation)
        >>> e[0, 7, 3, 3] = 1  # one neuron
        >>> rec.reverse(e, "deconvnet").shape
        torch.Size([1, 3, 224, 224])
        """
        return self.reverse_many([(variant, signal)], layer=layer, restrict=restrict)[0]

    def reverse_many(
        self, signals: Sequence[tuple[VariantSpec, Tensor]], *, layer: str | None = None, restrict: bool = True
    ) -> list[P]:
        """`reverse` of several (variant, signal) pairs in one batched pass.

        Each layer whose rule the variants share (a convolution, ...) reverses all their
        signals in one call: faster than one `reverse` per pair.

        Parameters
        ----------
        signals : sequence of (variant, torch.Tensor)
            Each signal as `reverse` takes it, with its variant.
        layer : str, optional
            The recorded layer the signals start from.
        restrict : bool, default True
            As in `reverse`.

        Returns
        -------
        list of torch.Tensor, or of tuples of torch.Tensor
            One result per pair, as `reverse` returns it.
        """
        layer = layer or self.layer
        if layer not in self.activations:
            raise UsageError(f"layer {layer!r} was not recorded; recorded: {', '.join(self.layers)}")
        plans = [self.rules(v, layer) for v, _ in signals]
        return ReversePass[P](self._forward, plans, self.targets[layer], self.activations[layer], self._pictures, signals,
                              restrict).pictures()  # fmt: skip

    def select(
        self, select: str | Selector = "max", *, variant: VariantSpec = "desalinet", seed: int = 0, layer: str | None = None
    ) -> Tensor:
        """The reversed network's inputs e that a selector makes from `layer`'s activation.

        Parameters
        ----------
        select : str or Selector, default "max"
            A selector (``max``, ``topk:K``, ``channel:C``, ``neuron:C,Y,X``, ...; see
            `reversenet.parse_selector`).
        variant : str, pathlib.Path or Variant, default "desalinet"
            The variant, for selectors that depend on it.
        seed : int, default 0
            For random selectors.
        layer : str, optional
            A recorded layer; may be left out when one layer was recorded.

        Returns
        -------
        torch.Tensor
            Shape (K, N, ...): K signals per image, the activation's shape each.
        """
        return selectors.signals(self, select, variant, seed, layer)

    def visualize(
        self, select: str | Selector = "max", variant: VariantSpec = "desalinet", *, seed: int = 0, layer: str | None = None
    ) -> P:
        """Select, then reverse: the picture of a layer.

        Parameters
        ----------
        select : str or Selector, default "max"
            As in `select`.
        variant : str, pathlib.Path or Variant, default "desalinet"
            One of the recorded variants.
        seed : int, default 0
            For random selectors.
        layer : str, optional
            A recorded layer; may be left out when one layer was recorded.

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            Shape (K, N, C, H, W), signals first as `select` makes them, K = 1 for a selector
            of one signal per image (`reversenet.reverse`, the one-call form, returns x's
            shape then); for a tuple of inputs, one such tensor per input.
        """
        return self.reverse(self.select(select, variant=variant, seed=seed, layer=layer), variant, layer=layer)

    def visualize_many(
        self, select: str | Selector = "max", variants: Iterable[VariantSpec] = VARIANTS, *, seed: int = 0,
        layer: str | None = None,
    ) -> dict[str, P]:
        """`visualize` for several variants of one recording, in one batched reverse.

        Parameters
        ----------
        select : str or Selector, default "max"
            As in `select`.
        variants : iterable of str, pathlib.Path or Variant, default VARIANTS
            Recorded variants.
        seed : int, default 0
            For random selectors.
        layer : str, optional
            A recorded layer; may be left out when one layer was recorded.

        Returns
        -------
        dict of str to torch.Tensor or to tuple of torch.Tensor
            Variant name to its pictures, (K, N, C, H, W) (one per input for a tuple).
        """
        return selectors.pictures(self, select, variants, seed, layer)


def _checked(inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The inputs, if each is a finite float tensor with the batch first, one batch size."""
    for x in inputs:
        if not isinstance(x, Tensor) or not x.dim() or not x.is_floating_point():
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise UsageError(f"x must be a float tensor (N, ...) or a tuple of them, got {got}")
        if not len(x):  # nothing to record; later steps would index an image that is not there
            raise UsageError(f"x holds no images: the batch is empty (shape {tuple(x.shape)})")
        if not torch.isfinite(x).all():
            raise UsageError("x has NaN or Inf values")
    if not inputs or len({len(x) for x in inputs}) > 1:
        raise UsageError(f"x must hold tensors of one batch size, got shapes {[tuple(x.shape) for x in inputs]}")
    return tuple(inputs)


def _tensor(name: str, y: Any) -> Tensor:
    """A recorded layer's output, which must be a tensor (a layer may be an input)."""
    if not isinstance(y, Tensor):
        raise UsageError(f"layer {name!r} outputs {type(y).__name__}, not a tensor")
    return y


def reverse(
    model: nn.Module,
    x: Tensor,
    *,
    layer: str,
    variant: VariantSpec = "desalinet",
    select: str | Selector = "max",
    seed: int = 0,
) -> Tensor:
    """Reverse the selected part of a layer's output back to an image.

    Parameters
    ----------
    model : torch.nn.Module
        The network (torch.fx traces it), in eval mode.
    x : torch.Tensor
        The normalised input, float, shape (N, C, H, W).
    layer : str
        A module name as in ``model.named_modules()``, a paper name (``conv5``,
        ``pool5``, ``fc8``), a graph node name or ``"output"``.
    variant : str, pathlib.Path or Variant, default "desalinet"
        One of `reversenet.VARIANTS`, ``NAME+bp``, a YAML file or a ``Variant``.
    select : str or Selector, default "max"
        Which part of the layer's output to reverse (`reversenet.parse_selector`).
    seed : int, default 0
        For random selectors.

    Returns
    -------
    torch.Tensor
        x's shape (N, C, H, W); a selector with K signals per image (``topk:K``) gives
        (K, N, C, H, W), signals first, as everywhere in reversenet.

    Raises
    ------
    reversenet.UsageError
        A bad input, layer, variant or selector (one line that says what and why).

    See Also
    --------
    Recording : one forward pass for many layers, variants and selectors.

    Examples
    --------
    >>> import torch, torchvision, reversenet
    >>> model = torchvision.models.alexnet().eval()  # random weights
    >>> x = torch.randn(2, 3, 224, 224)
    >>> reversenet.reverse(model, x, layer="conv5", variant="desalinet").shape
    torch.Size([2, 3, 224, 224])
    >>> reversenet.reverse(model, x, layer="conv5", select="topk:3").shape
    torch.Size([3, 2, 3, 224, 224])
    """
    selector = parse_selector(select)
    out = Recording(model, x, layer=layer, variants=[variant]).visualize(selector, variant, seed=seed)
    return out if selector.multiple else out[0]
