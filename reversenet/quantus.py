"""The eight reversed architectures as a Quantus ``explain_func``.

Quantus calls ``explain_func(model=..., inputs=..., targets=..., **explain_func_kwargs)``
with numpy batches and expects a numpy attribution back; `explain` is such a function,
so every Quantus metric evaluates every variant::

    quantus.MPRT()(model=net, x_batch=x, y_batch=y, explain_func=reversenet.quantus.explain,
                   explain_func_kwargs={"variant": "desalinet-center"})

Quantus itself is not needed to import this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .core.graph import device_of
from .core.recording import Recording
from .core.variants import VariantSpec
from .errors import UsageError


def explain(
    model: nn.Module,
    inputs: np.ndarray | Tensor,
    targets: np.ndarray | Tensor | int | list[int],
    *,
    variant: VariantSpec = "desalinet",
    layer: str | None = None,
    device: str | torch.device | None = None,
    reduce_axes: tuple[int, ...] = (1,),
    keepdims: bool = True,
    **kwargs: Any,
) -> np.ndarray:
    """The picture of ``variant`` for each input's target, as Quantus wants it.

    Parameters
    ----------
    model : nn.Module
        The network (Quantus passes the model it evaluates, randomised copies included).
    inputs : array (N, C, H, W)
        The images, channels first.
    targets : int or array (N,)
        Per image, the index of the neuron in the layer's output flattened per image: the
        class for the logits.
    variant : str, Path or Variant
        A built-in variant or a YAML file.
    layer : str, optional
        The layer the target indexes; by default the model's output.
    device : str, optional
        Where to run (Quantus passes its own ``device``); default: the model's.
    reduce_axes, keepdims
        Axes the picture is summed over, as Quantus's own ``explain`` does for captum's
        methods: by default the colour channels, kept as an axis of 1 (``()``: none).
    **kwargs
        Other arguments Quantus passes along, ignored.

    Returns
    -------
    float32 array (N, 1, H, W), or of the inputs' shape with ``reduce_axes=()``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from reversenet.quantus import explain
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    >>> x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    >>> _ = net(torch.from_numpy(x))
    >>> explain(net.eval(), x, np.array([0, 1]), variant="salinet").shape
    (2, 1, 8, 8)
    """
    device = device or device_of(model)
    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, Tensor) else inputs, dtype=torch.float32)
    # Traced on every call: Quantus hands over randomised copies of the model
    rec = Recording(model, x.to(device), layer=layer or "output", variants=[variant])
    y = rec.activation.flatten(1)
    index = torch.as_tensor(np.asarray(targets) if not isinstance(targets, Tensor) else targets).long().to(device)
    index = index.reshape(-1).expand(len(y)) if index.numel() == 1 else index.reshape(-1)
    if len(index) != len(y) or bool((index < 0).any() or (index >= y.shape[1]).any()):
        raise UsageError(
            f"targets {index.tolist()} do not fit {len(y)} images with {y.shape[1]} neurons each at the layer"
        )
    signal = torch.zeros_like(y).scatter_(1, index[:, None], 1.0).view_as(rec.activation)
    picture = rec.reverse(signal, variant).cpu().numpy()
    return picture.sum(axis=tuple(reduce_axes), keepdims=keepdims) if reduce_axes else picture
