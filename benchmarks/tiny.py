"""A narrow VGG-16 for the benchmark's smoke test: VGG-16's layers under VGG-16's names
(features.14 = conv3_3, features.30 = pool5, classifier.6 = fc8), 1/16 of its channels and
a small classifier, so that a whole ``speed.py --quick`` run takes seconds.

    python benchmarks/speed.py --quick --model benchmarks.tiny:narrow_vgg16 --size 64
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.vgg import make_layers

WIDTHS = [4, 4, "M", 8, 8, "M", 16, 16, 16, "M", 32, 32, 32, "M", 32, 32, 32, "M"]  # VGG-16's, / 16


class NarrowVGG16(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = make_layers(WIDTHS)
        self.avgpool = nn.AdaptiveAvgPool2d(7)
        self.classifier = nn.Sequential(
            nn.Linear(32 * 7 * 7, 64), nn.ReLU(True), nn.Dropout(),
            nn.Linear(64, 64), nn.ReLU(True), nn.Dropout(),
            nn.Linear(64, classes),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def narrow_vgg16() -> nn.Module:
    return NarrowVGG16()
