"""One network specification: the model, its weights, the seed and the device, with one set of
defaults, read by the command line, run configs and the Python functions alike (no torch here:
the command line's options are built from it before torch is imported)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Network

from ..choices import DEVICE, DEVICES, MODEL, SEED, WEIGHTS

__all__ = ["DEVICE", "DEVICES", "MODEL", "SEED", "WEIGHTS", "NetworkSpec", "as_network"]


@dataclass(frozen=True)
class NetworkSpec:
    """What network to load, parsed once: the command line's options, a run config's keys and
    the Python functions' keywords, with one set of defaults. The input size and
    preprocessing are the model's (its weights' transforms).

    Parameters
    ----------
    model : str, default "vgg16"
        A torchvision classifier's name or ``package.module:factory``.
    weights : str, default "DEFAULT"
        ``DEFAULT`` (torchvision's ImageNet weights), ``random`` or a state_dict file.
    seed : int, default 0
        Seeds random weights (and random selectors).
    device : str, default "auto"
        ``auto`` (CUDA when there is one), ``cpu`` or ``cuda``.

    Examples
    --------
    >>> import reversenet
    >>> spec = reversenet.NetworkSpec("alexnet", "random")
    >>> spec
    NetworkSpec(model='alexnet', weights='random', seed=0, device='auto')
    >>> spec.load().input_size, spec.identity()
    ((224, 224), {'model': 'alexnet', 'weights': 'random', 'seed': 0})
    """

    model: str = MODEL
    weights: str = WEIGHTS
    seed: int = SEED
    device: str = DEVICE

    @classmethod
    def of(cls, model: str | Network | NetworkSpec, weights: str = WEIGHTS, seed: int = SEED, device: str = DEVICE) -> NetworkSpec:
        """`model` itself when it is a spec; else the spec of a model's name (or a loaded
        network's) with these fields."""
        if isinstance(model, NetworkSpec):
            return model
        return cls(model if isinstance(model, str) else model.name, weights, seed, device)

    def load(self) -> Network:
        """The network, loaded.

        Returns
        -------
        reversenet.Network
            As `reversenet.load_network` makes it.
        """
        from .models import load_network

        return load_network(self.model, self.weights, seed=self.seed, device=self.device)

    def identity(self) -> dict[str, Any]:
        """What made the network, for a manifest.

        Returns
        -------
        dict
            ``model``, ``weights`` (a file's absolute path, with ``weights_sha256``;
            torchvision's name for its own) and ``seed``.
        """
        from .models import weights_identity

        return {"model": self.model, **weights_identity(self.model, self.weights), "seed": self.seed}


def as_network(model: str | Network | NetworkSpec, weights: str = WEIGHTS, *, seed: int = SEED, device: str = DEVICE) -> Network:
    """`model` itself when it is a Network; else the network it names, loaded."""
    if isinstance(model, NetworkSpec):
        return model.load()
    if isinstance(model, str):
        return NetworkSpec(model, weights, seed, device).load()
    return model
