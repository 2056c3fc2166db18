"""Selectors: what to send back from a layer's output (the reversed network's input e).

Written as ``name`` or ``name:argument`` on the command line::

    max              one-hot at the most active neuron, per image (the paper's default)
    neuron:C,Y,X     a given neuron; neuron:U for a vector layer
    channel:C        channel C's activations, every other channel zero
    topk:K           the K most active neurons, each reversed on its own
    random           a random neuron whose reversed image is not zero
    mixture          a positive random mixture of all neurons (weights ~ U(0,1), sum 1)
    noise            positive random input, |N(0,1)| per neuron
    full             the activations themselves
    class:I|NAME     a class of a classifier's output by index or ImageNet label
    objectness       the top class's positive scores, for segmentation (design page §6)

`signals` and `pictures` run a selector on a recording (`Recording.select`,
`Recording.visualize_many`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import torch
from torch import Tensor

from ..errors import ReversenetError, UsageError, unknown
from .variants import VariantSpec, load_variant


class Recorded(Protocol):
    """What selection needs of a recording (a reversenet.Recording): its activations and
    its reverses."""

    activations: dict[str, Tensor]

    @property
    def layer(self) -> str: ...

    def reverse(self, signal: Tensor, variant: VariantSpec = ..., *, layer: str | None = ...) -> Any: ...

    def reverse_many(self, signals: Sequence[tuple[VariantSpec, Tensor]], *, layer: str | None = ...) -> list[Any]: ...

Reverse = Callable[[Tensor], Tensor]


class Selector:
    """What to send back from a layer's output: the reversed network's input e.

    Subclasses implement `signals`; `parse_selector` makes the built-in ones from their
    written form. Random selectors draw the same way for every image of a batch, from
    `seed` alone, so an image's result does not depend on the batch it was computed in.

    Attributes
    ----------
    multiple : bool
        True when a selector can make more than one signal per image (``topk:K``).

    Examples
    --------
    >>> import torch, reversenet
    >>> y = torch.tensor([[[[0.0, 3.0], [1.0, 2.0]]]])  # (N, C, H, W) = (1, 1, 2, 2)
    >>> reversenet.parse_selector("max").signals(y, reverse=None)
    tensor([[[[[0., 1.],
                [0., 0.]]]]])
    """

    multiple = False  # True when K can exceed one

    def signals(self, y: Tensor, *, reverse: Reverse, seed: int = 0) -> Tensor:
        """The signals to reverse.

        Parameters
        ----------
        y : torch.Tensor
            The layer's output, shape (N, ...).
        reverse : callable
            Reverses a signal of y's shape to the input (the recording's, for the
            selectors that look at reversed images, such as ``random``).
        seed : int, default 0
            For random selectors.

        Returns
        -------
        torch.Tensor
            Shape (K, N, ...): K signals per image.
        """
        raise NotImplementedError


def _one_hot(y: Tensor, flat_index: Tensor) -> Tensor:
    """(K, N, ...) one-hots of y's shape, at flat positions `flat_index` (K, N)."""
    e = y.new_zeros(flat_index.shape[0], *y.shape).flatten(2)
    e.scatter_(2, flat_index[..., None], 1.0)
    return e.view(flat_index.shape[0], *y.shape)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class Max(Selector):
    def signals(self, y: Tensor, *, reverse: Reverse, seed: int = 0) -> Tensor:
        return _one_hot(y, y.flatten(1).argmax(1)[None])


@dataclass(frozen=True)
class TopK(Selector):
    k: int
    multiple = True

    def signals(self, y: Tensor, *, reverse: Reverse, seed: int = 0) -> Tensor:
        size = y[0].numel()
        if not 1 <= self.k <= size:
            raise UsageError(f"topk:{self.k} is out of range; the layer has {size} neurons")
        return _one_hot(y, y.flatten(1).topk(self.k, dim=1).indices.T)


@dataclass(frozen=True)
class Neuron(Selector):
    index: tuple[int, ...]

    def signals(self, y: Tensor, *, reverse: Reverse, seed: int = 0) -> Tensor:
        shape = tuple(y.shape[1:])
        if len(self.index) != len(shape) or any(not 0 <= i < s for i, s in zip(self.index, shape)):
            axes = ",".join(f"0..{s - 1}" for s in shape)
            raise UsageError(f"neuron {','.join(map(str, self.index))} is out of range; this layer takes neuron:{axes}")
        flat = sum(i * int(torch.tensor(shape[a + 1 :]).prod()) for a, i in enumerate(self.index))
        return _one_hot(y, torch.full((1, y.shape[0]), flat, device=y.device))


@dataclass(frozen=True)
class Channel(Selector):
    channel: int

    def signals(self, y: Tensor, *, reverse: Reverse, seed: int = 0) -> Tensor:
        if y.dim() < 2 or not 0 <= self.channel < y.shape[1]:
            raise UsageError(f"channel {self.channel} is out of range; the layer has {y.shape[1]} channels")
        e = torch.zeros_like(y)
        e[:, self.channel] = y[:, self.channel]
        return e[None]


@dataclass(frozen=True)
class Random(Selector):
    """A random neuron per image, drawn until its reversed image is not all zero."""

    tries: int = 64
    batch: int = 8

    def signals(self, y: Tensor, *, reverse: Reverse, seed: int = 0) -> Tensor:
        n, size = y.shape[0], y[0].numel()
        order = torch.randperm(size, generator=_generator(seed)).expand(n, size)
        chosen = torch.full((n,), -1, dtype=torch.long)
        for start in range(0, min(self.tries, size), self.batch):
            candidates = order[:, start : start + self.batch].T.to(y.device)  # (B, N)
            images = reverse(_one_hot(y, candidates))
            nonzero = images.flatten(2).abs().amax(2).cpu() > 0  # (B, N)
            for i in range(n):
                if chosen[i] < 0 and nonzero[:, i].any():
                    chosen[i] = candidates[int(nonzero[:, i].float().argmax()), i]
            if (chosen >= 0).all():
                return _one_hot(y, chosen[None].to(y.device))
        raise ReversenetError(f"no neuron among {self.tries} random ones gives a non-zero image")


@dataclass(frozen=True)
class Mixture(Selector):
    def signals(self, y: Tensor, *, reverse: Reverse, seed: int = 0) -> Tensor:
        w = torch.rand(y.shape[1:], generator=_generator(seed), dtype=y.dtype)
        return (w / w.sum()).expand_as(y).to(y.device)[None]


@dataclass(frozen=True)
class Noise(Selector):
    def signals(self, y: Tensor, *, reverse: Reverse, seed: int = 0) -> Tensor:
        return torch.randn(y.shape[1:], generator=_generator(seed), dtype=y.dtype).abs().expand_as(y).to(y.device)[None]


@dataclass(frozen=True)
class Full(Selector):
    def signals(self, y: Tensor, *, reverse: Reverse, seed: int = 0) -> Tensor:
        return y[None].clone()


@dataclass(frozen=True)
class Class(Selector):
    """A classifier's class: a one-hot logit, or the class's channel of a score map."""

    label: str

    def signals(self, y: Tensor, *, reverse: Reverse, seed: int = 0) -> Tensor:
        classes = y.shape[1]
        if self.label.isdigit():
            index = int(self.label)
        elif classes == len(imagenet_categories()):
            index = _category_index(self.label)
        else:
            raise UsageError(f"class names are ImageNet's; this layer has {classes} classes: use class:INDEX")
        if index >= classes:
            raise UsageError(f"class {index} is out of range; the layer has {classes} classes")
        if y.dim() == 2:
            return _one_hot(y, torch.full((1, y.shape[0]), index, device=y.device))
        return Channel(index).signals(y, reverse=reverse)


@dataclass(frozen=True)
class Objectness(Selector):
    """The paper's input for segmentation (Sect. 3.5): of a score map (N, classes, H, W),
    the channel that holds the largest score anywhere; e is 1 at each of its positions
    whose score is > 0 and 0 elsewhere (1 at its maximum alone when no score is > 0).
    On logits (N, classes) this is the top class's one-hot, as ``max``."""

    def signals(self, y: Tensor, *, reverse: Reverse, seed: int = 0) -> Tensor:
        if y.dim() == 2:
            return Max().signals(y, reverse=reverse)
        if y.dim() != 4:
            raise UsageError(f"selector 'objectness' needs class scores (N, classes[, H, W]), not {tuple(y.shape)}")
        top = y.flatten(1).argmax(1) // y[0, 0].numel()
        plane = y[torch.arange(y.shape[0]), top]
        best = plane.flatten(1).amax(1).view(-1, 1, 1)
        e = torch.zeros_like(y)
        e[torch.arange(y.shape[0]), top] = ((plane > 0) | (plane == best)).to(y.dtype)
        return e[None]


@cache
def imagenet_categories() -> tuple[str, ...]:
    """ImageNet-1k's label names, as torchvision's weights metadata gives them."""
    from torchvision.models import AlexNet_Weights

    return tuple(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def _category_index(label: str) -> int:
    lowered = [c.lower() for c in imagenet_categories()]
    if label.lower() not in lowered:
        raise unknown("ImageNet class", label, imagenet_categories())
    return lowered.index(label.lower())


def _ints(name: str, arg: str, spec: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in arg.split(","))
    except ValueError:
        raise UsageError(f"selector {spec!r} needs whole numbers: {_FORMS[name]}") from None
    if any(v < 0 for v in values):
        raise UsageError(f"selector {spec!r}: indices start at 0; {_FORMS[name]}")
    return values


_NO_ARG = {"max": Max, "random": Random, "mixture": Mixture, "noise": Noise, "full": Full, "objectness": Objectness}
# The selectors with an argument, each as written with an example: their parse errors show it.
_FORMS = {
    "neuron": "neuron:C,Y,X (neuron:U for a vector layer), e.g. neuron:12,3,4",
    "channel": "channel:C, e.g. channel:12",
    "topk": "topk:K, e.g. topk:3",
    "class": "class:I|NAME, e.g. class:tabby",
}
NAMES = tuple(_NO_ARG) + tuple(sorted(_FORMS))


def parse_selector(spec: str | Selector) -> Selector:
    """A selector from its written form.

    Parameters
    ----------
    spec : str or Selector
        ``name`` or ``name:argument``: ``max`` (the most active neuron per image, the
        paper's default), ``neuron:C,Y,X`` (``neuron:U`` for a vector layer),
        ``channel:C``, ``topk:K`` (the K most active neurons, each reversed on its own),
        ``random``, ``mixture``, ``noise``, ``full`` (the activations themselves),
        ``class:I|NAME`` (an ImageNet class of a classifier's output), ``objectness``
        (docs/design.md §3, §6). A ``Selector`` is returned as is.

    Returns
    -------
    Selector

    Raises
    ------
    reversenet.UsageError
        An unknown name (with the closest ones) or a bad argument.

    Examples
    --------
    >>> import reversenet
    >>> reversenet.parse_selector("topk:3").multiple
    True
    >>> reversenet.parse_selector("neuron:12,3,4")
    Neuron(index=(12, 3, 4))
    """
    if isinstance(spec, Selector):
        return spec
    name, _, arg = spec.partition(":")
    if name in _NO_ARG:
        if arg:
            raise UsageError(f"selector {name!r} takes no argument")
        return _NO_ARG[name]()
    if name not in _FORMS:
        raise unknown("selector", name, NAMES)
    if not arg:
        raise UsageError(f"selector {name!r} needs an argument: {_FORMS[name]}")
    if name == "class":
        return Class(arg)
    values = _ints(name, arg, spec)
    if name == "neuron":
        return Neuron(values)
    if len(values) != 1:
        raise UsageError(f"selector {name!r} takes one number: {_FORMS[name]}")
    return Channel(values[0]) if name == "channel" else TopK(values[0])


def signals(
    recording: Recorded, select: str | Selector, variant: VariantSpec, seed: int, layer: str | None
) -> Tensor:
    """`Recording.select`: the signals a selector makes from a recorded layer's activation;
    the recording reverses them for the selectors that look at reversed images."""
    layer = layer or recording.layer
    reverse = lambda e: _joined(recording.reverse(e, variant, layer=layer))
    return parse_selector(select).signals(recording.activations[layer], reverse=reverse, seed=seed)


def pictures(
    recording: Recorded, select: str | Selector, variants: Iterable[VariantSpec], seed: int, layer: str | None
) -> dict[str, Any]:
    """`Recording.visualize_many`: each variant's signals, reversed in one batched pass."""
    loaded = [load_variant(v) for v in variants]
    layer = layer or recording.layer
    pairs = [(v, signals(recording, select, v, seed, layer)) for v in loaded]
    return {v.name: r for v, r in zip(loaded, recording.reverse_many(pairs, layer=layer))}


def _joined(picture: Tensor | tuple[Tensor, ...]) -> Tensor:
    """(K, N, ...) pictures, of one input or several, as one (K, N, M): flattened per signal
    and image, joined."""
    parts = [p.reshape(*p.shape[:2], -1) for p in ((picture,) if isinstance(picture, Tensor) else picture)]
    return torch.cat(parts, 2) if len(parts) > 1 else parts[0]
