"""reversenet: reversed architectures of CNNs (DeConvNet, SaliNet, DeSaliNet and kin).

    >>> import reversenet
    >>> image = reversenet.reverse(model, x, layer="features.30", variant="desalinet")
    >>> masks = reversenet.segment(["photo.jpg"], "alexnet", methods=["salinet"])
    >>> rows = reversenet.run("configs/experiments/fig3-eight-variants.yaml", weights="random")
"""

from . import diff  # reversenet.diff.assert_images_match after `import reversenet`
from .batch import run
from .engine import Recording, record, reverse
from .errors import ReversenetError, UsageError
from .evaluation import Evaluation, evaluate
from .fcn import fully_convolutional
from .randomisation import Sanity, sanity
from .segmentation import Seeds, Segmenter, segment
from .selectors import Selector, parse_selector
from .variants import VARIANTS, Variant, load_variant

__all__ = [
    "VARIANTS", "Evaluation", "Recording", "ReversenetError", "Sanity", "Seeds", "Segmenter", "Selector",
    "UsageError", "Variant", "diff", "evaluate", "fully_convolutional", "load_variant", "parse_selector", "record",
    "reverse", "run", "sanity", "segment",
]  # fmt: skip
