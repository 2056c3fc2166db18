"""The names users choose from and the defaults, importable without torch: the command line
builds its options and help from them (``reversenet --help`` starts at once), the Python API
and run configs take the same defaults from here, so that they cannot drift apart."""

#: The network specification's defaults (reversenet.NetworkSpec): VGG-16 with torchvision's
#: ImageNet weights, seed 0, on CUDA when there is one.
MODEL = "vgg16"
WEIGHTS = "DEFAULT"
SEED = 0
DEVICE = "auto"
DEVICES = ("auto", "cpu", "cuda")

#: The eight built-in variants (docs/design.md §2): the reverse of ReLU (identity, relu =
#: DeConvNet, bp = SaliNet, hybrid = DeSaliNet) times that of max pooling (switches, or
#: ``-center``: unpool to the window's centre). ``NAME+bp`` is each of them with exact
#: backpropagation through layers that have no rule, so it reverses any network.
VARIANTS: tuple[str, ...] = (
    "identity", "deconvnet", "salinet", "desalinet",
    "identity-center", "deconvnet-center", "salinet-center", "desalinet-center",
)  # fmt: skip
#: How a reversed image becomes a picture (reversenet.output.render).
RENDERERS = ("paper", "gamma", "minmax", "saliency")
#: The randomisation tests of `reversenet sanity`.
SANITY_TESTS = ("cascading", "independent")
#: The segmentation baseline's method name: a fixed Gaussian map instead of a variant.
GAUSSIAN = "gaussian"
#: What `segment` draws by default: SaliNet, the variant whose maps find objects best (docs/design.md §6).
SEGMENT_METHODS = ("salinet",)
#: What `evaluate` scores by default, as the paper's Table 1 (the Gaussian baseline always runs too).
EVALUATE_METHODS = ("salinet", "desalinet", "deconvnet")
#: When a picture has changed (reversenet.diff, the pytest fixture): more than SHARE of its
#: pixels differ by more than TOLERANCE levels (8-bit) in a channel.
TOLERANCE = 2
SHARE = 0.001
