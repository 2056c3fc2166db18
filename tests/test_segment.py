"""Segmentation (design page §6): the fully convolutional network, the objectness signal,
GrabCut seeded by saliency maps, the Gaussian baseline and the scores of Table 1."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from test_cli import assert_one_line_error, files
from torch import nn
from torchvision.models import get_model

from reversenet import Recording
from reversenet.apps.evaluation import Evaluation, pair, read_mask, scores
from reversenet.apps.fcn import fully_convolutional
from reversenet.apps.segmentation import Seeds, Segmenter, gaussian_map, grabcut, largest_component, trimap
from reversenet.core.selectors import parse_selector
from reversenet.errors import ReversenetError
from reversenet.inputs.models import load_network


def _seeded(name: str) -> nn.Module:
    torch.manual_seed(0)
    return get_model(name, weights=None).eval()


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "resnet18"])
def test_fully_convolutional_equals_the_original_at_the_native_size(name):
    model = _seeded(name)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits, converted = model(x), fully_convolutional(model, (224, 224))(x)
    assert converted.shape == (2, 1000, 1, 1)
    torch.testing.assert_close(converted.flatten(1), logits, rtol=1e-5, atol=1e-5 * logits.abs().max().item())


def test_the_converted_head_is_the_classifier_at_every_window():
    """On a larger photo, each score of AlexNet's fc8 map is the original head applied to
    the 6×6 window of pool5 under it; ResNet-18's is fc of the 7×7 average under it."""
    alexnet, resnet = _seeded("alexnet"), _seeded("resnet18")
    x = torch.randn(1, 3, 256, 320)
    with torch.no_grad():
        pool5, scores_ = alexnet.features(x), fully_convolutional(alexnet, (224, 224))(x)
        assert scores_.shape[-2:] == (pool5.shape[-2] - 5, pool5.shape[-1] - 5)
        for i, j in [(0, 0), (1, 2), (scores_.shape[-2] - 1, scores_.shape[-1] - 1)]:
            head = alexnet.classifier(pool5[..., i : i + 6, j : j + 6].flatten(1))
            torch.testing.assert_close(scores_[..., i, j], head, rtol=1e-5, atol=1e-5)
        trunk = nn.Sequential(*list(resnet.children())[:-2])(x)
        maps = fully_convolutional(resnet, (224, 224))(x)
        window = trunk[..., 1:8, 2:9].mean((-2, -1))
        torch.testing.assert_close(maps[..., 1, 2], resnet.fc(window), rtol=1e-5, atol=1e-5)


def test_a_user_head_with_a_coarser_pooling_becomes_a_dilated_convolution():
    from factories import tiny  # AdaptiveAvgPool2d(4) of a 112×112 map: windows of 28

    torch.manual_seed(0)
    model = tiny().eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        converted = fully_convolutional(model, (224, 224))
        torch.testing.assert_close(converted(x).flatten(1), model(x), rtol=1e-5, atol=1e-6)
        assert converted(torch.randn(1, 3, 230, 240)).shape == (1, 10, 4, 9)


class _Mean(nn.Module):
    def forward(self, x):
        return x.mean((2, 3))


@pytest.mark.parametrize(("model", "fragment"), [
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(5), nn.Flatten(), nn.Linear(100, 5)),
     "pools 222×222 to 5×5"),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 5), nn.Softmax(1)),
     "4 (Softmax) follows the flatten"),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 5)),
     "2 follows the global pooling 1"),
    (nn.Sequential(nn.Conv2d(3, 4, 3), _Mean()), "no flatten of a feature map before its output"),
])  # fmt: skip
def test_heads_that_cannot_be_convolutional_are_named(model, fragment):
    with pytest.raises(ReversenetError, match="cannot make Sequential fully convolutional") as error:
        fully_convolutional(model.eval(), (224, 224))
    assert fragment in str(error.value)


def test_salinet_on_the_converted_network_is_the_gradient_of_the_objectness_signal():
    model = fully_convolutional(_seeded("alexnet"), (224, 224))
    x = torch.randn(1, 3, 256, 300)
    rec = Recording(model, x, layer="output", variants=["salinet"])
    got = rec.visualize("objectness", "salinet")[0]
    e = parse_selector("objectness").signals(rec.activation, reverse=None)[0]
    xg = x.clone().requires_grad_()
    (model(xg) * e).sum().backward()
    torch.testing.assert_close(got, xg.grad, rtol=1e-4, atol=1e-4 * xg.grad.abs().max().item())


def test_objectness_is_the_top_channel_where_positive():
    y = torch.zeros(1, 3, 2, 3)
    y[0, 1] = torch.tensor([[0.5, -1.0, 2.0], [0.0, 3.0, -0.2]])
    y[0, 2] = torch.tensor([[2.9, 2.9, 2.9], [2.9, 2.9, 2.9]])
    (e,) = parse_selector("objectness").signals(y, reverse=None)
    expected = torch.zeros_like(y)
    expected[0, 1] = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    assert torch.equal(e, expected)
    y[0] = -y[0].abs() - 1
    y[0, 0, 1, 2] = -0.5  # no positive score: the maximum alone
    (e,) = parse_selector("objectness").signals(y, reverse=None)
    assert e.sum() == 1 and e[0, 0, 1, 2] == 1


def test_scores_by_hand():
    truth = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], bool)
    estimate = np.array([[1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], bool)
    pp, iou = scores(estimate, truth)
    assert pp == pytest.approx(100 * 12 / 16) and iou == pytest.approx(100 * 2 / 6)
    # a 2×2 estimate is resized to the truth's 4×4 by nearest neighbour: each pixel a 2×2 block
    pp, iou = scores(np.array([[1, 0], [0, 1]], bool), truth)
    assert pp == pytest.approx(100 * 12 / 16) and iou == pytest.approx(100 * 4 / 8)


def _mask(path, array, mode=None):
    Image.fromarray(array, mode).save(path)
    return path


def test_masks_are_read_as_binary_and_non_binary_ones_said(tmp_path):
    shape = np.zeros((4, 4), np.uint8)
    shape[1:3, 1:3] = 1
    for values, name in [(shape, "ones.png"), (shape * 255, "full.png"), (shape * 7, "seven.png")]:
        mask, note = read_mask(_mask(tmp_path / name, values))
        assert np.array_equal(mask, shape.astype(bool)) and note is None
    soft = shape * 200 + np.arange(16, dtype=np.uint8).reshape(4, 4)  # anti-aliased: 16 values
    mask, note = read_mask(_mask(tmp_path / "soft.png", soft))
    assert np.array_equal(mask, soft >= 128) and "not binary" in note and "≥ 128" in note
    rgb = np.repeat((shape * 255)[..., None], 3, axis=2)
    assert np.array_equal(read_mask(_mask(tmp_path / "rgb.png", rgb))[0], shape.astype(bool))


def test_photos_and_masks_pair_by_stem(tmp_path):
    photos = [tmp_path / n for n in ("n01_0001.jpg", "cat.jpg", "dog.png")]
    masks = [tmp_path / "m" / n for n in ("n01_0001.png", "cat_1.png", "cat_2.png", "bird.png", "dog_x.png")]
    owned, orphans = pair(photos, masks)
    assert owned[photos[0]] == [masks[0]]  # an ImageNet stem with '_' is one mask, not a second one
    assert owned[photos[1]] == masks[1:3] and owned[photos[2]] == []
    assert orphans == masks[3:]


def test_class_means_average_the_per_class_means():
    rows = [{"method": "m", "network": "n", "class": c, "pp": pp, "iou": iou}
            for c, pp, iou in [("a", 90, 60), ("a", 70, 40), ("b", 40, 10)]]  # fmt: skip
    (line,) = Evaluation("n", ["m"], rows).summary()
    assert line["pp"] == pytest.approx(200 / 3) and line["iou"] == pytest.approx(110 / 3)
    assert line["pp_class"] == pytest.approx((80 + 40) / 2) and line["iou_class"] == pytest.approx((50 + 10) / 2)


def test_the_gaussian_baseline_is_as_specified():
    g = gaussian_map(256, 256)
    centre = g[128, 128]
    assert centre > 0 and g.argmax() == 128 * 256 + 128
    assert g[128, 128 + 24] / centre == pytest.approx(np.exp(-0.5), rel=1e-6)  # σ = 24 px
    assert g[128, 128 + 62] > 0 and g[128, 128 + 63] == 0  # a 125 px support
    assert g[0, 0] == -centre and g[255, 255] == -centre and g[0, 255] == -centre  # four corners
    assert g[0, 62] < 0 and g[0, 63] == 0
    big = gaussian_map(512, 700)  # scaled with the shorter side: σ = 48 px
    assert big[256, 350 + 48] / big[256, 350] == pytest.approx(np.exp(-0.5), rel=1e-6)


def _scene(seed=0):
    """A textured red disk on a textured green background, and the disk's mask."""
    rng = np.random.default_rng(seed)
    h, w = 200, 260
    photo = (rng.normal(0, 25, (h, w, 3)) + [60, 120, 60]).clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    disk = (yy - 80) ** 2 + (xx - 170) ** 2 < 45**2
    photo[disk] = (rng.normal(0, 25, (disk.sum(), 3)) + [200, 60, 60]).clip(0, 255)
    return photo, disk


def test_grabcut_seeded_by_a_map_of_the_object_finds_it():
    photo, disk = _scene()
    rng = np.random.default_rng(1)
    # a rough map: a blurred blob on the object, offset by 10 px, plus noise
    blob = np.roll(disk, 10, axis=1).astype(float)
    saliency = cv2.GaussianBlur(blob, (0, 0), 10) + rng.uniform(0, 0.2, disk.shape)
    mask = grabcut(photo, saliency)
    assert 100 * (mask & disk).sum() / (mask | disk).sum() > 90
    assert np.array_equal(grabcut(photo, saliency), mask)  # seeded: the same mask again


def test_seeds_are_the_map_quantiles():
    ramp = np.arange(100 * 200, dtype=float).reshape(100, 200)
    mask, seeded = trimap(ramp, Seeds())
    share = {label: np.mean(mask == label) for label in (cv2.GC_BGD, cv2.GC_PR_BGD, cv2.GC_PR_FGD, cv2.GC_FGD)}
    assert share[cv2.GC_BGD] == pytest.approx(0.005, abs=1e-4) and share[cv2.GC_FGD] == pytest.approx(0.005, abs=1e-4)
    assert share[cv2.GC_PR_FGD] == pytest.approx(0.095, abs=1e-4)
    assert seeded.mean() == pytest.approx(0.4, abs=1e-4)  # the 30% below and the 10% above; 60% unknown
    assert not grabcut(np.zeros((20, 20, 3), np.uint8), np.ones((20, 20))).any()  # a constant map: nothing


def test_only_the_largest_component_is_kept():
    mask = np.zeros((10, 10), bool)
    mask[:3, :3] = mask[5:, 5:] = True
    assert np.array_equal(largest_component(mask), np.pad(np.ones((5, 5), bool), ((5, 0), (5, 0))))
    with pytest.raises(ReversenetError, match="seed quantiles"):
        Seeds(foreground=0.2, background=0.3)


def test_a_photo_below_the_receptive_field_is_said(tmp_path):
    network = load_network("alexnet", "random")
    Image.new("RGB", (300, 200), "gray").save(tmp_path / "p.png")
    with pytest.raises(ReversenetError, match="smaller than the receptive field of alexnet"):
        Segmenter(network, ["salinet"], size=64)(tmp_path / "p.png")


def _folder(tmp_path, n=3):
    """Photos (scenes) and their masks, as `evaluate` reads them."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for i in range(n):
        photo, disk = _scene(i)
        Image.fromarray(photo).save(images / f"scene{i}.png")
        Image.fromarray(disk.astype(np.uint8) * 255).save(masks / f"scene{i}.png")
    return images, masks


def test_segment_writes_mask_map_and_overlay_and_resumes(run, tmp_path):
    images, _ = _folder(tmp_path, 2)
    args = ("segment", "-m", "alexnet", "-w", "random", "-v", "salinet", "-v", "gaussian", "-i", str(images))
    code, _, err = run(*args)
    assert code == 0, err
    out = tmp_path / "reversenet-out"
    names = files(out)
    assert len(names) == 2 * 2 * 3 and "scene0_alexnet_fc8_salinet-mask.png" in names
    mask = np.asarray(Image.open(out / "scene0_alexnet_fc8_salinet-mask.png"))
    assert mask.shape == (200, 260) and set(np.unique(mask)) <= {0, 255}  # the photo's own size
    assert Image.open(out / "scene0_alexnet_fc8_salinet-overlay.png").size == (332, 256)  # as the network saw it
    code, _, err = run(*args)
    assert code == 0 and "2 photos already done, 12 files current: skipped" in err


def test_segment_sample_photo_default(run, tmp_path):
    code, _, err = run("segment", "-m", "alexnet", "-w", "random")
    assert code == 0, err
    assert "chelsea_alexnet_fc8_salinet-mask.png" in files(tmp_path / "reversenet-out")


def test_evaluate_scores_every_method_and_reports_what_it_cannot(run, tmp_path):
    images, masks = _folder(tmp_path, 3)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(images / "nomask.png")
    Image.fromarray(np.zeros((200, 260), np.uint8)).save(masks / "scene1.png")  # empty
    Image.fromarray(np.full((100, 100), 255, np.uint8)).save(masks / "scene2_2.png")  # another aspect
    (images / "classes.csv").write_text("stem,class\nscene0,a\nscene1,a\nscene2,b\n")
    code, out, err = run("evaluate", "-m", "alexnet", "-w", "random", "-i", str(images), "--masks", str(masks),
                         "-v", "salinet", "-o", "table")  # fmt: skip
    assert code == 1 and "Traceback" not in err
    assert "nomask.png: no mask" in err and "scene1.png is empty" in err and "scene2_2.png is 100×100" in err
    assert "salinet" in out and "gaussian" in out and "IoU" in out
    with open(tmp_path / "table" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["image"], r["method"]) for r in rows} == {(f"scene{i}.png", m) for i in (0, 2) for m in ("salinet", "gaussian")}
    assert {r["class"] for r in rows} == {"a", "b"} and all(0 <= float(r["iou"]) <= 100 for r in rows)
    with open(tmp_path / "table" / "problems.csv") as f:
        assert len(list(csv.DictReader(f))) == 3


@pytest.mark.parametrize(("args", "status", "fragments"), [
    (["--masks", "empty"], 2, ["no photo of", "has a mask in"]),
    (["--masks", "missing"], 2, ["missing"]),
    (["-m", "factories:softmax_head"], 1, ["cannot make Sequential fully convolutional", "4 (Softmax)"]),
    (["--size", "40"], 1, ["smaller than the receptive field"]),
])  # fmt: skip
def test_evaluate_bad_input_is_one_line(run, tmp_path, args, status, fragments):
    images, masks = _folder(tmp_path, 1)
    (tmp_path / "empty").mkdir()
    base = ["evaluate", "-m", "alexnet", "-w", "random", "-v", "salinet", "-i", str(images), "--masks", str(masks)]
    code, _, err = run(*base, *args)
    if status == 1 and "receptive" in fragments[0]:  # a photo that fails is listed, then the summary error
        assert code == 1 and "smaller than the receptive field" in err and "Traceback" not in err
        return
    assert_one_line_error(code, err, status, *fragments)


def test_the_table1_script_runs_the_protocol_beside_the_papers_numbers(tmp_path):
    """benchmarks/table1.py with random weights (the real run needs the pretrained ones and
    the dataset of Guillaumin et al.): classes from the synsets, the paper's columns."""
    images, masks = _folder(tmp_path, 2)
    for i, photo in enumerate(sorted(images.iterdir())):  # ImageNet-like stems: synset_number
        photo.rename(images / f"n0{i % 2}_{i}.png")
        (masks / photo.name).rename(masks / f"n0{i % 2}_{i}.png")
    script = Path(__file__).parents[1] / "benchmarks" / "table1.py"
    done = subprocess.run([sys.executable, str(script), "--images", str(images), "--masks", str(masks), "--models",
                           "alexnet", "--weights", "random", "--out", str(tmp_path / "t1")],
                          check=False, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "82.82" in done.stdout and "46.27" in done.stdout and "84.40" in done.stdout
    assert (tmp_path / "t1" / "classes.csv").read_text().splitlines()[1:] == ["n00_0,n00", "n01_1,n01"]
    with open(tmp_path / "t1" / "alexnet" / "summary.csv") as f:
        assert [r["classes"] for r in csv.DictReader(f)] == ["2"] * 4


def test_the_objectness_experiment_makes_what_it_scores(tmp_path, monkeypatch):
    """benchmarks/objectness.py (item 6, `make objectness`): photos with binary masks of one
    object wholly inside, their classes, and weights that load as a state_dict and run fully
    convolutionally on the photos (a 3-step training: the real one takes minutes)."""
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1]))
    from benchmarks import objectness

    objectness.make_photos(tmp_path / "photos", 4, seed=3)
    classes = (tmp_path / "photos" / "classes.csv").read_text().split()
    assert classes == [f"{c}-{i:04d},{c}" for i, c in enumerate(objectness.CLASSES)]
    for line in classes:
        stem = line.split(",")[0]
        mask = np.asarray(Image.open(tmp_path / "photos" / "masks" / f"{stem}.png"))
        assert set(np.unique(mask)) == {0, 255} and not mask[[0, -1]].any() and not mask[:, [0, -1]].any()
        assert Image.open(tmp_path / "photos" / "images" / f"{stem}.png").size == mask.shape[::-1]
    result = objectness.train(tmp_path / "w.pt", steps=3, batch_size=4, held_out=8)
    assert 0 <= result["accuracy"] <= 1
    network = load_network(objectness.FACTORY, str(tmp_path / "w.pt"))
    masks = Segmenter(network, ["salinet"])(tmp_path / "photos" / "images" / "disk-0000.png").masks
    assert masks["salinet"].shape == (256, 256)
    # the cache key follows the arguments (and the code that makes photos and weights)
    assert objectness._key(200, 0, 1600) != objectness._key(100, 0, 1600)
