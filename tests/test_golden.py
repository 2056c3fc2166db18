"""Golden images: the sample photo, all eight variants, AlexNet and VGG-16 with seeded
random weights. `make golden` rewrites them on purpose; when they differ, heat maps of
the difference are left in golden-diff/ at the repository root.

They were written on one machine and are compared on any: a picture matches when at most
0.1% of its pixels differ by more than 2 levels (reversenet.diff's TOLERANCE and SHARE),
which another CPU's kernels and thread count pass and a changed rule fails (shown below)."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reversenet.choices import SHARE, TOLERANCE
from reversenet.core.rules import FAMILIES
from reversenet.diff import assert_images_match, diff_paths

GOLDEN = Path(__file__).parent / "golden"
DIFFS = Path(__file__).parent.parent / "golden-diff"


def render_all(run, model: str, out: str) -> Path:
    code, _, err = run("visualize", "-m", model, "-w", "random", "--seed", "0", "-v", "all", "-o", out)
    assert code == 0, err
    return Path(out).resolve()


@pytest.mark.parametrize("model", ["alexnet", "vgg16"])
def test_golden_images(run, model):
    out = render_all(run, model, model)
    results = assert_images_match(out, GOLDEN / model, tolerance=TOLERANCE, share=SHARE, out=DIFFS / model)
    assert len(results) == 8


@pytest.mark.parametrize("capability, threads", [("default", "1"), ("avx2", "3")])
def test_golden_images_on_other_kernels_and_thread_counts(tmp_path, capability, threads):
    """Another CPU, emulated: the plain kernels (no vector instructions; VGG-16 moves by up to
    4 levels on 0.02% of a picture's pixels) or AVX2, and another thread count."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": threads}
    for model in ("alexnet", "vgg16"):
        out = tmp_path / model
        subprocess.run([sys.executable, "-m", "reversenet", "visualize", "-m", model, "-w", "random", "--seed", "0",
                        "-v", "all", "-o", str(out)], env=env, check=True, capture_output=True, timeout=900)  # fmt: skip
        assert_images_match(out, GOLDEN / model, tolerance=TOLERANCE, share=SHARE)


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
        assert_images_match(out, GOLDEN / "alexnet", tolerance=TOLERANCE, share=SHARE, out=tmp_path / "diffs")
    assert "desalinet.png" in str(info.value) and "desalinet-center.png" in str(info.value)
    assert (tmp_path / "diffs" / "chelsea_alexnet_pool5_desalinet.png.diff.png").is_file()
    changed = {d.name: d.changed(TOLERANCE) for d in diff_paths(out, GOLDEN / "alexnet")}
    assert all(share <= SHARE for name, share in changed.items() if "desalinet" not in name)  # the others as before
    assert all(share > 100 * SHARE for name, share in changed.items() if "desalinet" in name), changed  # by far
