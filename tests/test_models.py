"""Model loading, weights, aliases, preprocessing and images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reversenet import UsageError
from reversenet.apps.compare import prepare
from reversenet.inputs.images import find_images, load_image, sample_image
from reversenet.inputs.models import load_network, paper_aliases


def test_vgg16_aliases():
    import torchvision

    aliases = paper_aliases(torchvision.models.vgg16())
    assert aliases["conv1_1"] == "features.0" and aliases["relu1_1"] == "features.1"
    assert aliases["conv5_3"] == "features.28" and aliases["pool5"] == "features.30"
    assert aliases["fc6"] == "classifier.0" and aliases["fc8"] == "classifier.6"
    assert aliases["drop7"] == "classifier.5"


def test_alexnet_and_bn_aliases():
    import torchvision

    aliases = paper_aliases(torchvision.models.alexnet())
    assert [aliases[k] for k in ("conv1", "pool1", "conv2", "pool2", "conv5", "pool5", "fc6", "relu7", "fc8")] == [
        "features.0", "features.2", "features.3", "features.5", "features.10", "features.12",
        "classifier.1", "classifier.5", "classifier.6",
    ]  # fmt: skip
    bn = paper_aliases(torchvision.models.vgg11_bn())
    assert bn["conv1_1"] == "features.0" and bn["bn1_1"] == "features.1" and bn["relu1_1"] == "features.2"
    assert paper_aliases(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))) == {}


def test_random_weights_are_seeded():
    a = load_network("alexnet", "random", seed=3).module.state_dict()
    b = load_network("alexnet", "random", seed=3).module.state_dict()
    c = load_network("alexnet", "random", seed=4).module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])


def test_global_rng_is_left_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_network("alexnet", "random", seed=0)
    torch.testing.assert_close(torch.rand(3), expected)


def test_state_dict_round_trip(tmp_path):
    net = load_network("alexnet", "random", seed=1)
    torch.save({"state_dict": net.module.state_dict()}, tmp_path / "w.pth")
    again = load_network("alexnet", str(tmp_path / "w.pth"))
    assert torch.equal(again.module.features[0].weight, net.module.features[0].weight)


def test_preprocessing_follows_the_weights_and_photo_matches_input():
    net = load_network("alexnet", "random")
    x, photo = prepare(net, sample_image())
    assert x.shape == (1, 3, 224, 224) and photo.shape == (224, 224, 3)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    back = torch.from_numpy(photo).permute(2, 0, 1).double() / 255
    torch.testing.assert_close(back, (x[0].double() * std.view(3, 1, 1).double() + mean.view(3, 1, 1)), atol=0.5 / 255 + 1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_image_modes_become_rgb(tmp_path, mode):
    array = (np.arange(64 * 48).reshape(48, 64) % 251).astype(np.uint16 if mode == "I;16" else np.uint8)
    image = Image.fromarray(array)
    image = image if mode == "I;16" else image.convert(mode)
    image.save(tmp_path / "x.png")
    out = load_image(tmp_path / "x.png")
    assert out.mode == "RGB" and out.size == (64, 48)
    assert np.asarray(out).max() > 200  # 16-bit values are rescaled, not clipped to white


def test_find_images(tmp_path):
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "a.JPG").write_bytes(b"")
    (tmp_path / "n.txt").write_bytes(b"")
    assert [p.name for p in find_images([str(tmp_path)])] == ["a.JPG", "b.png"]
    assert [p.name for p in find_images([str(tmp_path / "*.png"), str(tmp_path / "b.png")])] == ["b.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images in folder"):
        find_images([str(tmp_path / "empty")])
    with pytest.raises(UsageError, match="no files match"):
        find_images([str(tmp_path / "*.gif")])
