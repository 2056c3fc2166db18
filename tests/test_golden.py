"""Golden images: the sample photo, all eight variants, AlexNet and VGG-16 with seeded
random weights. `make golden` rewrites them on purpose; when they differ, heat maps of
the difference are left in golden-diff/ at the repository root."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from reversenet.core.rules import FAMILIES
from reversenet.diff import assert_images_match, diff_paths

GOLDEN = Path(__file__).parent / "golden"
DIFFS = Path(__file__).parent.parent / "golden-diff"
TOLERANCE = 2  # 8-bit levels: room for another CPU's rounding, none for a changed rule


def render_all(run, model: str, out: str) -> Path:
    code, _, err = run("visualize", "-m", model, "-w", "random", "--seed", "0", "-v", "all", "-o", out)
    assert code == 0, err
    return Path(out).resolve()


@pytest.mark.parametrize("model", ["alexnet", "vgg16"])
def test_golden_images(run, model):
    out = render_all(run, model, model)
    results = assert_images_match(out, GOLDEN / model, tolerance=TOLERANCE, out=DIFFS / model)
    assert len(results) == 8


def test_same_inputs_give_byte_identical_pngs(run):
    first, second = render_all(run, "alexnet", "a"), render_all(run, "alexnet", "b")
    names = sorted(p.name for p in first.iterdir())
    assert len(names) == 8 + 1  # and the manifest, the same too: it holds no time, no folder
    match, mismatch, errors = filecmp.cmpfiles(first, second, names, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == 9


def test_a_changed_rule_fails_with_a_diff_image(run, monkeypatch, tmp_path):
    hybrid = type(FAMILIES["ReLU"].rules["hybrid"])
    monkeypatch.setattr(hybrid, "reverse", lambda self, relu, grad, mask: grad * mask)  # hybrid made bp
    monkeypatch.setattr(hybrid, "reverse_", lambda self, relu, grad, mask: mask.mask_(grad))  # in place too
    out = render_all(run, "alexnet", "changed")
    with pytest.raises(AssertionError, match=r"2 of 8 images differ.*heat maps in") as info:
        assert_images_match(out, GOLDEN / "alexnet", tolerance=TOLERANCE, out=tmp_path / "diffs")
    assert "desalinet.png" in str(info.value) and "desalinet-center.png" in str(info.value)
    assert (tmp_path / "diffs" / "chelsea_alexnet_pool5_desalinet.png.diff.png").is_file()
    assert all(d.max_abs == 0 for d in diff_paths(out, GOLDEN / "alexnet") if "desalinet" not in d.name)
