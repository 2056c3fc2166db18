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

from . import diff  # reversenet.diff.assert_images_match after `import reversenet`
from .apps.evaluation import Evaluation, evaluate
from .apps.fcn import fully_convolutional
from .apps.randomisation import Sanity, sanity
from .apps.segmentation import Seeds, Segmenter, segment
from .core.recording import Recording
from .core.reverse import reverse
from .core.selectors import Selector, parse_selector
from .core.variants import VARIANTS, Variant, load_variant
from .errors import ReversenetError, UsageError
from .inputs.images import sample_image
from .inputs.models import Network, load_network
from .output.batch import run

__all__ = [
    "VARIANTS", "Evaluation", "Network", "Recording", "ReversenetError", "Sanity", "Seeds", "Segmenter", "Selector",
    "UsageError", "Variant", "diff", "evaluate", "fully_convolutional", "load_network", "load_variant",
    "parse_selector", "reverse", "run", "sample_image", "sanity", "segment",
]  # fmt: skip
