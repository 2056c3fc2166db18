"""reversenet: reversed architectures of CNNs (DeConvNet, SaliNet, DeSaliNet and kin).

Mahendran & Vedaldi, "Salient deconvolutional networks" (ECCV 2016): a layer's output runs
back to an image through a reversed network; the reverses of ReLU and max pooling chosen
give eight variants (`VARIANTS`). The design page, docs/design.md, states the construction,
the names and the choices the paper leaves open.

>>> import torch, torchvision, reversenet
>>> model = torchvision.models.vgg16().eval()  # random weights; weights="DEFAULT" for ImageNet's
>>> x = torch.randn(1, 3, 224, 224)
>>> reversenet.reverse(model, x, layer="pool5", variant="desalinet").shape
torch.Size([1, 3, 224, 224])
>>> rows = reversenet.run("fig3-eight-variants", weights="random", out="fig3", report=False)
>>> len(rows)
9
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ReversenetError, UsageError

# Where each public name lives; loaded on first use, so that `import reversenet` costs no more
# than torch and torchvision do, and OpenCV, SciPy, matplotlib and Jinja2 load only where used.
_PUBLIC = {
    "VARIANTS": ".choices", "Evaluation": ".apps.evaluation", "evaluate": ".apps.evaluation",
    "fully_convolutional": ".apps.fcn", "Sanity": ".apps.randomisation", "sanity": ".apps.randomisation",
    "Seeds": ".apps.seeds", "Segmenter": ".apps.segmentation", "segment": ".apps.segmentation",
    "Recording": ".core.recording", "reverse": ".core.recording", "Selector": ".core.selectors",
    "parse_selector": ".core.selectors", "Variant": ".core.variants", "load_variant": ".core.variants",
    "sample_image": ".inputs.images", "Network": ".inputs.models", "load_network": ".inputs.models",
    "NetworkSpec": ".inputs.spec", "run": ".output.batch", "diff": ".diff",
}  # fmt: skip

if TYPE_CHECKING:
    from . import diff
    from .apps.evaluation import Evaluation, evaluate
    from .apps.fcn import fully_convolutional
    from .apps.randomisation import Sanity, sanity
    from .apps.seeds import Seeds
    from .apps.segmentation import Segmenter, segment
    from .choices import VARIANTS
    from .core.recording import Recording, reverse
    from .core.selectors import Selector, parse_selector
    from .core.variants import Variant, load_variant
    from .inputs.images import sample_image
    from .inputs.models import Network, load_network
    from .inputs.spec import NetworkSpec
    from .output.batch import run


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'reversenet' has no attribute {name!r}")
    module = importlib.import_module(_PUBLIC[name], __name__)
    value = module if name == "diff" else getattr(module, name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = [
    "VARIANTS", "Evaluation", "Network", "NetworkSpec", "Recording", "ReversenetError", "Sanity", "Seeds", "Segmenter",
    "Selector", "UsageError", "Variant", "diff", "evaluate", "fully_convolutional", "load_network", "load_variant",
    "parse_selector", "reverse", "run", "sample_image", "sanity", "segment",
]  # fmt: skip
