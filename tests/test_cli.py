"""The command line, run in-process through its real entry point."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image


def files(folder) -> list[str]:
    """The outputs in `folder`, without the manifest that records them."""
    return sorted(p.name for p in folder.iterdir() if p.name != "manifest.jsonl") if folder.exists() else []


def assert_one_line_error(code: int, err: str, status: int, *fragments: str) -> None:
    assert code == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_visualize_defaults_write_the_sample_photo(run, tmp_path):
    code, _, err = run("visualize", "--variant", "desalinet", "--weights", "random")
    assert code == 0, err
    (png,) = (tmp_path / "reversenet-out").glob("*.png")
    assert png.name == "chelsea_vgg16_pool5_desalinet.png"
    image = Image.open(png)
    assert image.size == (224, 224) and image.mode == "RGB"
    assert np.asarray(image).std() > 1  # not a blank picture


def test_compare_writes_a_two_by_four_grid(run, tmp_path):
    code, _, err = run("compare", "--weights", "random", "-m", "alexnet", "-o", "fig3.png")
    assert code == 0, err
    grid = np.asarray(Image.open(tmp_path / "fig3.png"))
    assert grid.shape[1] > 4 * 224 and grid.shape[0] > 2 * 224
    # the eight tiles differ from each other (eight different variants)
    tiles = {grid[r : r + 10, c : c + 10].tobytes() for r in (200, 460) for c in (200, 440, 680, 920)}
    assert len(tiles) > 1


def test_compare_default_model(run, tmp_path):
    code, _, err = run("compare", "--weights", "random")
    assert code == 0, err
    assert files(tmp_path / "reversenet-out") == ["chelsea_vgg16_pool5_compare.png"]


def test_folders_globs_topk_raw_and_several_variants(run, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.png"):
        Image.fromarray(rng.integers(0, 255, (80, 120, 3), dtype=np.uint8)).save(photos / name)
    (photos / "notes.txt").write_text("not an image")
    code, _, err = run(
        "visualize", "-m", "alexnet", "-w", "random", "-l", "conv5", "-i", str(photos),
        "-i", str(tmp_path / "photos" / "*.png"), "-v", "deconvnet", "-v", "salinet",
        "--select", "topk:2", "--raw", "-o", "out",
    )  # fmt: skip
    assert code == 0, err
    names = files(tmp_path / "out")
    assert len(names) == 2 * 2 * 2 * 2  # images x variants x k x (png + npy)
    assert "a_alexnet_conv5_salinet_topk-2_1.png" in names
    raw = np.load(tmp_path / "out" / "b_alexnet_conv5_deconvnet_topk-2_2.npy")
    assert raw.shape == (3, 224, 224) and raw.dtype == np.float32


def test_saliency_writes_heat_map_and_overlay(run, tmp_path):
    code, _, err = run("visualize", "-m", "alexnet", "-w", "random", "-l", "fc8", "--select", "class:tabby",
                       "--render", "saliency")  # fmt: skip
    assert code == 0, err
    assert files(tmp_path / "reversenet-out") == [
        "chelsea_alexnet_fc8_desalinet_class-tabby-overlay.png",
        "chelsea_alexnet_fc8_desalinet_class-tabby-saliency.png",
    ]


def test_user_variant_file_works_like_a_name(run, tmp_path):
    (tmp_path / "mine.yaml").write_text("rules:\n  ReLU: hybrid\n  MaxPool2d: switches\n  LocalResponseNorm: bp\n")
    code, _, err = run("visualize", "-m", "alexnet", "-w", "random", "-v", "mine.yaml", "-o", "o")
    assert code == 0, err
    assert files(tmp_path / "o") == ["chelsea_alexnet_pool5_mine.png"]


def test_user_factory_and_state_dict(run, tmp_path):
    torch.manual_seed(5)
    from factories import tiny

    torch.save(tiny().state_dict(), tmp_path / "tiny.pth")
    code, _, err = run("visualize", "-m", "factories:tiny", "-w", "tiny.pth", "-l", "3", "-o", "o")
    assert code == 0, err
    assert files(tmp_path / "o") == ["chelsea_factories-tiny_3_desalinet.png"]


def test_variants_and_layers_list_what_exists(run):
    code, out, _ = run("variants")
    assert code == 0
    for name in ("identity", "deconvnet", "salinet", "desalinet", "desalinet-center", "salinet-center"):
        assert name in out
    code, out, _ = run("layers", "--model", "vgg16")
    assert code == 0
    assert "features.30" in out and "pool5" in out and "512×7×7" in out and "fc8" in out


@pytest.mark.parametrize("command", ["visualize", "compare", "variants", "layers"])
def test_every_command_has_help_with_examples(run, command):
    code, out, _ = run(command, "--help")
    assert code == 0 and "Example" in out


BAD = [
    # (arguments, exit status, fragments of the message)
    (["visualize", "-w", "random", "-m", "alexnet", "-i", "missing.jpg"], 2, ["no such image: missing.jpg"]),
    (["visualize", "-w", "random", "-m", "alexnet", "-i", "fake.png"], 1, ["cannot read image fake.png"]),
    (["visualize", "-w", "random", "-m", "alexnet", "-l", "pool55"], 2, ["unknown layer 'pool55'", "pool5"]),
    (["visualize", "-w", "random", "-m", "alexnet", "-v", "desalinett"], 2, ["unknown variant", "desalinet"]),
    (["visualize", "-w", "random", "-m", "alexnet", "-s", "neuron:999,0,0"], 2, ["out of range", "neuron:0..255"]),
    (["visualize", "-w", "random", "-m", "alexnet", "-s", "maxx"], 2, ["unknown selector 'maxx'", "max"]),
    (["visualize", "-w", "random", "-m", "alexnet", "-l", "fc8", "-s", "class:tabbby"], 2, ["tabby"]),
    (["visualize", "-w", "random", "-m", "alexnett"], 2, ["unknown model 'alexnett'", "alexnet"]),
    (["visualize", "-w", "random", "-m", "factories:with_gelu", "-l", "2"], 1, ["1 (GELU)", "no reverse rule"]),
    (["visualize", "-w", "random", "-m", "factories:not_a_module"], 2, ["not a torch.nn.Module"]),
    (["visualize", "-w", "missing.pth", "-m", "alexnet"], 2, ["missing.pth", "random"]),
    (["visualize", "--render", "pretty"], 2, ["pretty"]),
    (["visualize", "-w", "random", "-m", "alexnet", "-v", "bad.yaml"], 2, ["bad.yaml: line 3", "ReLU", "hybrid"]),
]


@pytest.mark.parametrize("args,status,fragments", BAD, ids=[" ".join(b[0][-2:]) for b in BAD])
def test_bad_input_is_one_line_and_writes_nothing(run, tmp_path, args, status, fragments):
    (tmp_path / "fake.png").write_text("this is text, not a PNG")
    (tmp_path / "bad.yaml").write_text("rules:\n  MaxPool2d: switches\n  ReLU: hybird\n")
    code, _, err = run(*args)
    assert_one_line_error(code, err, status, *fragments)
    assert files(tmp_path / "reversenet-out") == []


def test_default_weights_offline_fail_cleanly(run, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty cache
    monkeypatch.setattr(torch.hub, "urlopen", _offline, raising=False)
    monkeypatch.setattr("urllib.request.urlopen", _offline)
    code, _, err = run("visualize", "-m", "alexnet")
    assert_one_line_error(code, err, 1, "--weights random", "state_dict")


def _offline(*args, **kwargs):
    import urllib.error

    raise urllib.error.URLError("no network")


def test_weights_for_another_architecture_are_summarised(run, tmp_path):
    torch.save(torchvision.models.vgg11().state_dict(), tmp_path / "vgg11.pth")
    code, _, err = run("visualize", "-m", "alexnet", "-w", "vgg11.pth")
    assert_one_line_error(code, err, 1, "does not fit AlexNet", "missing keys", "unexpected")


def test_weights_that_would_run_code_are_refused(run, tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"features.0.weight": Evil()}))
    code, out, err = run("visualize", "-m", "alexnet", "-w", "evil.pth")
    assert "pwned" not in out
    assert_one_line_error(code, err, 1, "refused")


def test_entry_point_script():
    result = subprocess.run(
        [sys.executable, "-m", "reversenet.cli", "visualize", "-m", "nosuchnet"],
        check=False, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown model 'nosuchnet'") and "Traceback" not in result.stderr


def test_compare_resnet50(run, tmp_path):
    code, _, err = run("compare", "--model", "resnet50", "--weights", "random", "-o", "r50.png")
    assert code == 0, err
    assert Image.open(tmp_path / "r50.png").size[0] > 4 * 224


def test_visualize_googlenet_inception4e(run, tmp_path):
    code, _, err = run("visualize", "--model", "googlenet", "--weights", "random", "--layer", "inception4e")
    assert code == 0, err
    assert files(tmp_path / "reversenet-out") == ["chelsea_googlenet_inception4e_desalinet.png"]


def test_googlenet_state_dict_with_auxiliary_heads(run, tmp_path):
    """A state_dict as torchvision's ImageNet GoogLeNet has it: with the auxiliary
    classifiers, which the evaluation model leaves out."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=True)
    torch.save(full.state_dict(), tmp_path / "g.pth")
    code, _, err = run("visualize", "-m", "googlenet", "-w", "g.pth", "-l", "inception3a", "-o", "o")
    assert code == 0, err


def test_inspect_vgg16(run):
    code, out, err = run("inspect", "--model", "vgg16")  # no weights needed
    assert code == 0, err
    rows = {line.split("\t")[0]: line for line in out.splitlines()}  # piped: tab-separated
    relu1 = rows["relu1_1"]  # the paper's names, as -l takes them
    assert "hybrid" in relu1 and "3,211,264" in relu1  # 64×224×224 mask bits
    assert "401,408" in relu1 and "12,845,056" in relu1  # held: 8 to a byte; autograd: float32
    pool1 = rows["pool1"]
    assert "switches" in pool1 and "1,605,632" in pool1  # 64×112×112 outputs × log2(4)
    assert "802,816" in pool1  # held: one byte per output
    assert "16,608,256" in out and "3,223,808" in out and "4.41%" in err


def test_layers_resnet50_names_containers(run):
    code, out, _ = run("layers", "--model", "resnet50")
    assert code == 0
    assert "layer4, layer4.2" in out and "2048×7×7" in out and "layer3.5.relu#3" in out  # its third call


def test_piped_tables_are_tab_separated_and_never_cut(run):
    code, out, _ = run("layers", "--model", "densenet121")
    assert code == 0 and "…" not in out
    lines = out.splitlines()
    assert lines[0].startswith("# densenet121") and lines[1].split("\t") == ["layer", "also", "type", "output shape"]
    assert "features.denseblock4.denselayer16.conv2" in {line.split("\t")[0] for line in lines}


def test_fallback_layers_are_one_warning_line_per_type(run, tmp_path):
    (tmp_path / "any.yaml").write_text("rules: {ReLU: hybrid, MaxPool2d: switches}\nfallback: bp\n")
    code, _, err = run("visualize", "-m", "factories:three_gelus", "-w", "random", "-l", "5", "-v", "any.yaml", "-o", "o")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line.lower()]
    assert warnings == [("warning: 1 (GELU) and 2 more: no reverse rule for GELU; variant 'any' backpropagates "
                        "through them exactly (bottleneck: the input)")]  # fmt: skip


def test_compare_draws_the_eight_with_the_fallback_where_a_layer_has_no_rule(run, tmp_path):
    code, _, err = run("compare", "-m", "factories:three_gelus", "-w", "random", "-l", "5")
    assert code == 1 and err.strip().endswith("draw the eight with fallback: bp (reversenet compare --bp)"), err
    code, out, err = run("compare", "-m", "factories:three_gelus", "-w", "random", "-l", "5", "--bp")
    assert code == 0, err
    (grid,) = (tmp_path / "reversenet-out").glob("*_compare-bp.png")
    assert grid.name in out + err
