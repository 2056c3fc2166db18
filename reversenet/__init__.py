"""reversenet: reversed architectures of CNNs (DeConvNet, SaliNet, DeSaliNet and kin).

    >>> import reversenet
    >>> image = reversenet.reverse(model, x, layer="features.30", variant="desalinet")
    >>> rows = reversenet.run("configs/experiments/fig3-eight-variants.yaml", weights="random")
"""

from .batch import run
from .engine import Recording, record, reverse
from .errors import ReversenetError, UsageError
from .selectors import Selector, parse_selector
from .variants import BUILTIN as VARIANTS
from .variants import Variant, load_variant

__all__ = [
    "VARIANTS", "Recording", "ReversenetError", "Selector", "UsageError", "Variant",
    "load_variant", "parse_selector", "record", "reverse", "run",
]  # fmt: skip
