"""Bad input never crashes, nothing is lost: one test per case of issue 4."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import reversenet
from reversenet.inputs.images import sample_image


def one_line_error(code, err, status, *fragments):
    assert code == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def no_outputs(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


# ---- reversenet diff -----------------------------------------------------------------


def _png(path: Path, array) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def test_diff_identical_and_different_folders(run, tmp_path):
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (16, 16, 3))
    _png(tmp_path / "a/x.png", picture)
    _png(tmp_path / "b/x.png", picture)
    _png(tmp_path / "a/sub/y.png", picture)
    _png(tmp_path / "b/sub/y.png", np.clip(picture.astype(int) + 3, 0, 255))
    code, out, _ = run("diff", "a/x.png", "b/x.png")
    assert code == 0 and "inf" in out
    code, out, err = run("diff", "a", "b", "--tolerance", "3")
    assert code == 0 and "all 2 pairs match within tolerance 3" in err, err
    code, out, err = run("diff", "a", "b", "--tolerance", "2", "--out", "heat")
    assert code == 1 and "sub/y.png" in out and "differs" in out and "heat maps in heat" in err
    assert (tmp_path / "heat/sub/y.png.diff.png").is_file() and not (tmp_path / "heat/x.png.diff.png").exists()


def test_diff_reports_unpaired_and_resized_images(run, tmp_path):
    _png(tmp_path / "a/x.png", np.zeros((8, 8, 3)))
    _png(tmp_path / "b/x.png", np.zeros((8, 9, 3)))
    _png(tmp_path / "a/only.png", np.zeros((8, 8, 3)))
    code, out, err = run("diff", "a", "b")
    assert code == 1 and "only in a" in out and "size 8×8 vs 9×8" in out  # width × height
    # counted apart from the pairs that differ, and shown without numbers
    assert "0 of 1 pair differ beyond tolerance 0, 1 differ in size, 1 file without a pair" in err
    assert "inf" not in out


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["nothere.png", "b"], "no such file or folder: nothere.png"),
        (["a", "b/x.png"], "two images or two folders"),
        (["a", "c"], "cannot read image"),
        (["a", "b", "--tolerance", "-1"], "--tolerance"),
    ],
)
def test_diff_bad_input_exits_2(run, tmp_path, args, fragment):
    _png(tmp_path / "a/x.png", np.zeros((4, 4, 3)))
    _png(tmp_path / "b/x.png", np.zeros((4, 4, 3)))
    (tmp_path / "c").mkdir()
    (tmp_path / "c/x.png").write_text("not a png")
    code, _, err = run("diff", *args)
    one_line_error(code, err, 2, fragment)


def test_diff_from_python(tmp_path):
    from reversenet.diff import assert_images_match

    _png(tmp_path / "a.png", np.zeros((4, 4, 3)))
    _png(tmp_path / "b.png", np.full((4, 4, 3), 9))
    (result,) = assert_images_match(tmp_path / "a.png", tmp_path / "a.png")
    assert result.max_abs == 0
    with pytest.raises(AssertionError, match=r"max \|A-B\| 9, PSNR 29.0 dB"):
        assert_images_match(tmp_path / "a.png", tmp_path / "b.png", tolerance=8)


# ---- images ----------------------------------------------------------------------------

VISUALIZE = ["visualize", "-m", "factories:tiny", "-w", "random", "-l", "3"]


def test_truncated_jpeg(run, tmp_path):
    data = (sample_image()).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    code, _, err = run(*VISUALIZE, "-i", "cut.jpg")
    one_line_error(code, err, 1, "cannot read image cut.jpg")
    assert no_outputs(tmp_path / "reversenet-out")


def test_folder_with_no_images(run, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/readme.txt").write_text("hi")
    code, _, err = run(*VISUALIZE, "-i", "empty")
    one_line_error(code, err, 2, "no images in folder empty")


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_unusual_modes_work(run, tmp_path, mode):
    photo = Image.open(sample_image())
    image = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257) if mode == "I;16" else photo.convert(mode)
    image.save(tmp_path / "odd.png")
    code, _, err = run(*VISUALIZE, "-i", "odd.png")
    assert code == 0, err
    assert (tmp_path / "reversenet-out/odd_factories-tiny_3_desalinet.png").is_file()


def test_decompression_bomb_is_refused(run, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the sample photo is 300×451
    code, _, err = run(*VISUALIZE)
    one_line_error(code, err, 1, "refused, larger than PIL's safety limit")
    assert no_outputs(tmp_path / "reversenet-out")


# ---- configuration, weights, output ---------------------------------------------------


@pytest.mark.parametrize(
    "text,fragments",
    [
        ("rules:\n  ReLU: [hybrid\n", ["bad.yaml: line 3", "invalid YAML"]),
        ("rules:\n  ReLU: 7\n", ["bad.yaml: line 2", "unknown rule '7'"]),
        ("rules:\n  ReLU: hybrid\ncolour: red\n", ["bad.yaml: line 3", "unknown key 'colour'"]),
        ("rules: {ReLU: hybrid}\nfallback: maybe\n", ["bad.yaml: line 2", "unknown fallback 'maybe'", "error, bp"]),
    ],
    ids=["syntax", "wrong type", "unknown key", "bad fallback"],
)
def test_malformed_variant_yaml(run, tmp_path, text, fragments):
    (tmp_path / "bad.yaml").write_text(text)
    code, _, err = run(*VISUALIZE, "-v", "bad.yaml")
    one_line_error(code, err, 2, *fragments)


def test_unwritable_output_folder(run, tmp_path):
    (tmp_path / "taken").write_text("a file where the folder should go")
    code, _, err = run(*VISUALIZE, "-o", "taken/out")
    one_line_error(code, err, 1, "cannot write to taken/out")


def test_nan_weights_and_input(run, tmp_path):
    from factories import tiny

    state = tiny().state_dict()
    state["0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    code, _, err = run("visualize", "-m", "factories:tiny", "-w", "nan.pth", "-l", "3")
    one_line_error(code, err, 1, "NaN or Inf values in 1 tensors (0.weight)")
    x = torch.randn(1, 3, 16, 16)
    x[0, 0, 0, 0] = float("inf")
    with pytest.raises(reversenet.UsageError, match="NaN or Inf"):
        reversenet.reverse(tiny(), x, layer="3")


def test_debug_shows_the_traceback():
    command = [sys.executable, "-m", "reversenet.cli", "--debug", "visualize", "-m", "nosuchnet"]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" in result.stderr and "unknown model 'nosuchnet'" in result.stderr


# ---- nothing lost ----------------------------------------------------------------------


def test_killed_run_keeps_finished_files_and_a_rerun_completes(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(12):
        shutil.copy(sample_image(), photos / f"p{i:02d}.jpg")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "reversenet.cli", "visualize", "-m", "alexnet", "-w", "random",
               "-v", "all", "-i", str(photos), "-o", str(out)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("*.png"))) < 12:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(out.glob("*.png"))
    assert 12 <= len(finished) < 12 * 8, "the run was not interrupted half way"
    for png in finished:  # every file under its final name is whole
        with Image.open(png) as image:
            image.load()
    stamps = {p.name: p.stat().st_mtime_ns for p in finished}
    done = {p.name.split("_")[0] for p in finished}
    complete = [name for name in done if len(list(out.glob(f"{name}_*.png"))) == 8]

    rerun = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(complete)} photo" in rerun.stderr and "skipped" in rerun.stderr
    assert len(list(out.glob("*.png"))) == 12 * 8
    assert not list(out.glob(".*.tmp"))  # a killed run's temporary file is cleared
    for name in complete:  # finished photos were not redone
        for png in out.glob(f"{name}_*.png"):
            assert png.stat().st_mtime_ns == stamps[png.name]


def test_assert_images_match_needs_only_import_reversenet():
    code = "import reversenet; print(callable(reversenet.diff.assert_images_match))"
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert result.stdout.strip() == "True", result.stderr
