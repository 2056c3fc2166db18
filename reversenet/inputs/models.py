"""Networks to reverse: torchvision models or a user's factory, with their weights,
preprocessing and paper-style layer names."""

from __future__ import annotations

import importlib
import os
import pickle
import sys
import urllib.error
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import Tensor, nn
from torchvision.models import get_model, get_model_weights, list_models

from ..choices import DEVICE, SEED, WEIGHTS
from ..core.graph import Graph, device_of, paper_aliases
from ..errors import ReversenetError, UsageError, first_line, unknown
from ..tables import Table
from .images import sha256_file, to_uint8


class Preprocessing(Protocol):
    """What reversenet uses of a torchvision weights' preset (ImageClassification)."""

    crop_size: list[int]
    mean: list[float]
    std: list[float]

    def __call__(self, image: Image.Image) -> Tensor: ...


@dataclass
class Network:
    """A model ready to reverse, with how to prepare its input.

    Make one with `load_network`, or directly for a model of your own.

    Parameters
    ----------
    name : str
        The name outputs and tables show.
    module : torch.nn.Module
        The model, in eval mode.
    transform : callable
        PIL image to the normalised (C, H, W) tensor the model takes; a torchvision
        weights' ``transforms()`` (its ``crop_size``, ``mean`` and ``std`` are read).
    aliases : dict of str to str, optional
        Extra layer names, alias to module name (the paper's names for AlexNet and VGG).
    categories : tuple of str, optional
        The class names of the output, for the ``class:NAME`` selector.

    Examples
    --------
    >>> import reversenet
    >>> network = reversenet.load_network("alexnet", "random")
    >>> network.input_size, network.default_layer, network.aliases["pool5"]
    ((224, 224), 'pool5', 'features.12')
    """

    name: str
    module: nn.Module
    transform: Preprocessing  # PIL image -> normalised (C, H, W) tensor
    aliases: dict[str, str] = field(default_factory=dict)
    categories: tuple[str, ...] | None = None

    @classmethod
    def of(cls, module: nn.Module, name: str | None = None, transform: Preprocessing | None = None) -> Network:
        """A model of your own as a Network, in eval mode: named after its class unless
        `name` is given, with ImageNet's preprocessing (torchvision's classification preset,
        224×224) unless `transform` is, and the paper's layer names for AlexNet and VGG.

        Parameters
        ----------
        module : torch.nn.Module
            The model.
        name : str, optional
            The name outputs show.
        transform : callable, optional
            PIL image to the normalised (C, H, W) tensor, with ``crop_size``, ``mean``, ``std``.

        Returns
        -------
        Network
        """
        return cls(name or type(module).__name__, module.eval(), transform or imagenet_preprocessing(), paper_aliases(module))

    @property
    def default_layer(self) -> str:
        """The last feature map before global pooling (pool5 in AlexNet and VGG, as in
        the paper's Fig. 3; layer4 in ResNet), else the output."""
        return self.graph().default_layer()

    def graph(self, module: nn.Module | None = None) -> Graph:
        """The network (or `module`, a copy or a form of it) traced with torch.fx; for a
        forward that depends on the input's shape, traced for an input of `input_size`.

        Parameters
        ----------
        module : torch.nn.Module, optional
            What to trace instead of `module` (a copy of it), with this network's input.

        Returns
        -------
        reversenet.core.graph.Graph
            The traced graph (docs/design.md §1).
        """
        module = self.module if module is None else module
        return Graph(module, self.aliases, example=torch.zeros(1, 3, *self.input_size, device=device_of(module)))

    @property
    def device(self) -> torch.device:
        """Where the model is."""
        return device_of(self.module)

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) of the network input after preprocessing."""
        crop = self.transform.crop_size
        return (crop[0], crop[-1])

    def denormalise(self, x: Tensor) -> Tensor:
        """The network input (C, H, W) back in [0, 1] RGB, for display."""
        mean = torch.tensor(self.transform.mean).view(-1, 1, 1).to(x)
        std = torch.tensor(self.transform.std).view(-1, 1, 1).to(x)
        return (x * std + mean).clamp(0, 1)

    def picture(self, x: Tensor) -> np.ndarray:
        """The network input (C, H, W) as the photo it shows, (H, W, 3) uint8."""
        return to_uint8(self.denormalise(x))


def layer_table(network: Network) -> Table:
    """A network's layers as `resolve` takes them: names, aliases and the containers that
    end there, types and output shapes (for an input of the network's size)."""
    graph = network.graph()
    size = network.input_size
    shapes = graph.shapes(torch.zeros(1, 3, *size, device=network.device))
    alias_of = {v: k for k, v in network.aliases.items()}
    rows = []
    for step in graph.path(graph.resolve("output")):
        name = graph.unique_name(step.node)
        also = [alias_of[name]] if name in alias_of else []
        also += [c for c in graph.containers_ending_at(step.node) if c != name]
        rows.append([name, ", ".join(also), step.kind, "×".join(map(str, shapes.get(step.node.name, ())))])
    return Table(f"{network.name}, input 3×{size[0]}×{size[1]}", ["layer", "also", "type", "output shape"], rows)


def imagenet_preprocessing() -> Preprocessing:
    """torchvision's ImageNet classification preset (resize 256, crop 224, normalise): what a
    model of your own gets unless it says otherwise."""
    return cast(Preprocessing, get_model_weights("vgg16").DEFAULT.transforms())


def torchvision_names() -> list[str]:
    """torchvision's image classification models."""
    return list_models(module=torchvision.models)


def load_network(name: str, weights: str = WEIGHTS, *, seed: int = SEED, device: str = DEVICE) -> Network:
    """A network by torchvision name or ``package.module:factory``, with its weights.

    Parameters
    ----------
    name : str
        A torchvision classifier (``torchvision.models.list_models()``) or
        ``package.module:factory``, a function returning an ``nn.Module`` (a module in
        the working folder is found).
    weights : str, default "DEFAULT"
        ``DEFAULT`` or another torchvision weights name (downloaded and cached by
        torch.hub; a factory's own weights for a factory), ``random`` (the architecture's
        initialisation, seeded by `seed`) or the path of a state_dict (loaded with
        ``weights_only=True``).
    seed : int, default 0
        Seeds the initialisation.
    device : str, default "auto"
        Where the model goes: ``auto`` (CUDA when there is one), ``cpu`` or ``cuda``.

    Returns
    -------
    Network

    Raises
    ------
    reversenet.UsageError
        An unknown model (with the closest names), or weights that cannot be had (offline,
        no such file, a state_dict of another architecture): one line that says which.

    Examples
    --------
    >>> import reversenet
    >>> reversenet.load_network("vgg16", "random").aliases["conv5_3"]
    'features.28'
    """
    if not weights:
        raise UsageError("--weights is empty: use DEFAULT, random or a state_dict file")
    if ":" in name:
        factory = _import_factory(name)
        build = partial(_call, factory, name)
        transform, categories = imagenet_preprocessing(), None
        pretrained = weights != "random" and weights != "DEFAULT"
    elif name in torchvision_names():
        default = get_model_weights(name).DEFAULT
        transform, categories = default.transforms(), tuple(default.meta["categories"])
        pretrained = weights != "random"
        build = partial(_torchvision, name, pretrained)
    else:
        raise unknown("model", name, torchvision_names(), "torchvision.models.list_models()")
    if pretrained and not Path(weights).exists() and ":" not in name:
        state = _download(name, weights)
    elif pretrained:
        state = _read_state_dict(Path(weights))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build()
    if pretrained:
        _load(module, state, weights)
    module = module.eval().to(pick_device(device))
    return Network(name, module, transform, paper_aliases(module), categories)


def pick_device(name: str) -> str:
    """``auto`` (CUDA when there is one), ``cpu`` or ``cuda``."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ReversenetError("device cuda: no CUDA device is available (use cpu)")
    return name


def weights_identity(name: str, weights: str) -> dict[str, str]:
    """What the weights are, for a manifest: ``random``, torchvision's name for them
    (``VGG16_Weights.IMAGENET1K_V1``), or a file's absolute path and sha256."""
    if weights == "random":
        return {"weights": "random"}
    if Path(weights).is_file():
        return {"weights": str(Path(weights).resolve()), "weights_sha256": sha256_file(Path(weights))}
    if ":" in name or name not in torchvision_names():  # a factory's, or a network made by hand
        return {"weights": weights}
    return {"weights": str(get_model_weights(name)[weights])}


# Built as torchvision builds them for ImageNet weights: the input transform of the
# original Google models on, the auxiliary classifiers (training only) left out.
_AUXILIARY = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}


def _torchvision(name: str, pretrained: bool) -> nn.Module:
    kwargs = {}
    if name in _AUXILIARY:
        kwargs = {"transform_input": pretrained, "aux_logits": False, "init_weights": not pretrained}
    return get_model(name, weights=None, **kwargs)


def _download(name: str, weights: str) -> dict:
    entries = get_model_weights(name)
    try:
        entry = entries[weights]
    except KeyError:
        choices = dict.fromkeys(["DEFAULT", "random", *entries.__members__])
        raise UsageError(f"weights {weights!r}: not a file, nor one of {', '.join(choices)}") from None
    try:
        state = torch.hub.load_state_dict_from_url(entry.url, progress=True, check_hash=True, weights_only=True)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise ReversenetError(
            f"cannot download the {weights} weights of {name} ({getattr(exc, 'reason', exc)}); "
            "offline, use --weights random or --weights path/to/state_dict.pth"
        ) from exc
    return state


def _import_factory(spec: str) -> Callable[[], nn.Module]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr.isidentifier():
        raise UsageError(f"model factory {spec!r}: write it as package.module:function")
    if "" not in sys.path and os.getcwd() not in sys.path:  # the console script's path lacks it
        sys.path.insert(0, os.getcwd())
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UsageError(f"cannot import model factory {spec}: {exc}") from exc


def _call(factory: Callable[[], nn.Module], spec: str) -> nn.Module:
    model = factory()
    if not isinstance(model, nn.Module):
        raise UsageError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _read_state_dict(path: Path) -> dict:
    if not path.is_file():
        raise UsageError(f"weights {str(path)!r}: no such file (or use DEFAULT, random)")
    try:
        with warnings.catch_warnings():  # torch's note on pickle protocols says nothing to a user
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ReversenetError(
            f"refused to load {path}: it is not a plain state_dict (loading it could run code)"
        ) from exc
    except (OSError, RuntimeError, EOFError) as exc:
        raise ReversenetError(f"cannot read weights {path}: {first_line(exc)}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ReversenetError(f"{path} holds a {type(state).__name__} that is not a state_dict of tensors")
    return state


def _load(module: nn.Module, state: dict, source: str) -> None:
    # auxiliary heads that the state_dict holds and the evaluation model has dropped
    heads = tuple(p for prefixes in _AUXILIARY.values() for p in prefixes if getattr(module, p[:-1], 0) is None)
    state = {k: v for k, v in state.items() if not k.startswith(heads)}
    missing, unexpected = _mismatch(module.state_dict(), state)
    if missing or unexpected:
        raise ReversenetError(
            f"{source} does not fit {type(module).__name__}: "
            f"{len(missing)} missing keys{_some(missing)}, {len(unexpected)} unexpected{_some(unexpected)}"
        )
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise ReversenetError(f"{source} has NaN or Inf values in {len(broken)} tensors{_some(broken)}")
    module.load_state_dict(state)


def _mismatch(expected: dict, given: dict) -> tuple[list[str], list[str]]:
    missing = [k for k in expected if k not in given or given[k].shape != expected[k].shape]
    return missing, [k for k in given if k not in expected]


def _some(keys: list[str]) -> str:
    return f" ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})" if keys else ""
