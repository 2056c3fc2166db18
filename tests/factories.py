"""Small user models for the `package.module:factory` path."""

from torch import nn


def tiny() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
        nn.Flatten(), nn.Linear(128, 10),
    )  # fmt: skip


def with_gelu() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.GELU(), nn.Conv2d(8, 8, 3))


def not_a_module():
    return 42


def softmax_head() -> nn.Module:
    """A classifier whose head ends in a Softmax: it cannot become convolutions."""
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5), nn.Softmax(1))


def pool_first() -> nn.Module:
    """Nothing with parameters before its first layer (for `sanity`)."""
    return nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(3, 4, 3))


def three_gelus() -> nn.Module:
    """Three layers without a reverse rule, of one type."""
    return nn.Sequential(*(m for _ in range(3) for m in (nn.Conv2d(3, 3, 3, padding=1), nn.GELU())))


def timm_vgg() -> nn.Module:
    """timm's VGG-11: its ConvMlp head has shape-dependent control flow."""
    import timm

    return timm.create_model("vgg11", pretrained=False, num_classes=10)


def timm_efficientnet() -> nn.Module:
    """timm's EfficientNet-B0: BatchNormAct2d, SiLU, squeeze-and-excitation."""
    import timm

    return timm.create_model("efficientnet_b0", pretrained=False, num_classes=10)
