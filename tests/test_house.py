"""What a newcomer met before the house was put in order (issue 18): each a test."""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys

import click
import numpy as np
import pytest
from PIL import Image

import reversenet
from reversenet.cli import cli
from reversenet.inputs.images import sample_image

ALEXNET = ("-m", "alexnet", "-w", "random")


def photos(folder, n: int, names: list[str] | None = None) -> list:
    folder.mkdir(exist_ok=True)
    names = names or [f"p{i}.jpg" for i in range(n)]
    for name in names:
        shutil.copy(sample_image(), folder / name)
    return [folder / name for name in names]


def test_progress_follows_the_files_written(tmp_path):
    """One batch of 5 photos, 8 variants, topk:3: the progress counts files as they are
    written (not photos at the end of a batch), and says what is being computed first."""
    photos(tmp_path / "in", 5)
    calls = []
    result = reversenet.run({"images": [str(tmp_path / "in")], "model": "alexnet", "weights": "random", "layers": ["conv2"],
                             "variants": ["all"], "select": ["topk:3"], "out": str(tmp_path / "out"), "report": False},
                            progress=lambda what, done, total: calls.append((what, done, total)))  # fmt: skip
    total = 5 * 8 * 3
    assert result.written == total
    assert calls[0][1:] == (0, total) and "alexnet" in calls[0][0]  # before the first recording
    done = [d for _, d, _ in calls]
    assert done == sorted(done) and done[-1] == total and len(set(done)) == total + 1


def test_without_a_terminal_progress_is_a_line_per_tenth(tmp_path):
    photos(tmp_path / "in", 2)
    out = subprocess.run([sys.executable, "-m", "reversenet", "visualize", *ALEXNET, "-l", "conv1", "-v", "all",
                          "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    lines = [line for line in out.stderr.splitlines() if line.startswith("visualize: ")]
    assert lines[0].startswith("visualize: 1 of 16 (6%) · alexnet · p0.jpg, p1.jpg"), out.stderr
    assert lines[-1].startswith("visualize: 16 of 16 (100%)") and 3 <= len(lines) <= 11, out.stderr


def test_a_shard_prints_the_merge_command_with_its_overrides_and_merge_needs_shards(run, tmp_path):
    (tmp_path / "my-run.yaml").write_text("model: alexnet\nweights: random\nlayers: [conv1]\nreport: false\n")
    code, _, err = run("run", "my-run.yaml", "--set", "out=X", "--shard", "0/2")
    assert code == 0, err
    assert "reversenet run my-run.yaml --set out=X --merge" in err
    code, _, err = run("run", "my-run.yaml", "--set", "out=X", "--merge")
    assert code == 0, err
    code, _, err = run("run", "my-run.yaml", "--merge")  # the config's own out: no shards there
    assert code == 2 and "nothing to merge" in err and "Traceback" not in err


def test_run_tables_piped_are_tab_separated_and_selectivity_needs_two_pictures(run, tmp_path):
    config = "model: alexnet\nweights: random\nlayers: [conv1]\nreport: false\ntables: [selectivity]\n"
    (tmp_path / "one.yaml").write_text(config + "select: [max]\n")
    code, _, err = run("run", "one.yaml")
    assert code == 2 and "selectivity compares the pictures of different neurons" in err, err
    (tmp_path / "two.yaml").write_text(config + "select: [max, random]\n")
    code, out, err = run("run", "two.yaml")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("# Neuron selectivity") and "\t" in lines[1] and "─" not in out and "│" not in out
    header, row = lines[1].split("\t"), lines[2].split("\t")
    assert row[header.index("mean")] not in ("", "–")


def test_dry_run_counts_every_file_the_run_writes_and_writes_nothing(run, tmp_path):
    photos(tmp_path / "in", 2)
    (tmp_path / "c.yaml").write_text("model: alexnet\nweights: random\nlayers: [conv1]\nimages: [in]\nreport: false\n"
                                     "select: [max, random]\ntables: [selectivity]\nlead: [input]\nout: never\n")  # fmt: skip
    code, out, err = run("run", "c.yaml", "--dry-run")
    assert code == 0, err
    assert not (tmp_path / "never").exists()
    total = out.strip().splitlines()[-1].split("\t")
    assert total[0] == "total"
    code, _, err = run("run", "c.yaml")
    assert code == 0, err
    written = [r for r in map(json.loads, (tmp_path / "never/manifest.jsonl").read_text().splitlines())
               if r["kind"] not in ("montage", "table")]  # fmt: skip
    assert int(total[4].replace(",", "")) == len(written) == 2 * (1 + 2 + 1)  # input, two pictures, a metric


def test_out_must_be_a_folder_name(run, tmp_path):
    (tmp_path / "c.yaml").write_text("model: alexnet\nweights: random\nout: 5\n")
    code, _, err = run("run", "c.yaml", "--dry-run")
    assert code == 2 and "c.yaml:3: out: must be a folder name" in err, err


def test_compare_to_a_file_writes_that_file_alone(run, tmp_path):
    code, _, err = run("compare", *ALEXNET, "-l", "conv1", "-o", "fig3.png")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig3.png"]
    assert "wrote fig3.png" in err


def test_montages_of_two_models_in_one_folder_are_two_files_with_titles(tmp_path):
    base = {"weights": "random", "variants": ["desalinet", "desalinet-center"], "out": str(tmp_path / "o"),
            "report": False, "montages": [{"rows": ["MaxPool2d"], "columns": ["k"]}], "select": ["topk:2"]}  # fmt: skip
    made = {}
    for model, layer in (("alexnet", "conv2"), ("vgg16", "conv2_1")):
        rows = reversenet.run({**base, "model": model, "layers": [layer]})
        made[model] = [r for r in rows if r["kind"] == "montage"]
    names = [r["file"] for rows in made.values() for r in rows]
    assert len(set(names)) == len(names) == 2 and all((tmp_path / "o" / n).is_file() for n in names)
    assert names[0] == "montages/alexnet_conv2_topk-2_MaxPool2d-by-k.png", names
    assert made["alexnet"][0]["title"].startswith("alexnet · conv2 · topk:2")
    assert made["alexnet"][0]["where"]["model"] == "alexnet"


def test_compare_and_montages_label_rules_alike():
    from reversenet.apps.compare import eight
    from reversenet.output.montage import label

    variants = [reversenet.load_variant(v) for v in eight(False)]
    rows = {label(["MaxPool2d"], (v.rules["MaxPool2d"],)) for v in variants}
    assert rows == {"MaxPool2d: switches", "MaxPool2d: center"}


def test_every_command_takes_photos_as_dash_i_and_the_network_the_same_way():
    for name, command in cli.commands.items():
        options = {o.name: o for o in command.params if isinstance(o, click.Option)}
        if name in ("diff", "variants", "run"):  # no network, or a config's
            continue
        if "image_specs" in options or "images_dir" in options:
            option = options.get("image_specs") or options["images_dir"]
            assert "-i" in option.opts and "--image" in option.opts, name
        assert options["model"].default == "vgg16" and options["device"].default == "auto", name


def test_the_library_and_the_command_line_share_their_defaults():
    from reversenet.apps import evaluation, randomisation, segmentation
    from reversenet.cli.masks import evaluate, segment

    for function in (segmentation.segment, evaluation.evaluate, randomisation.sanity, reversenet.load_network):
        params = inspect.signature(function).parameters
        assert params["weights"].default == "DEFAULT" and params["device"].default == "auto", function
    assert tuple(inspect.signature(segmentation.segment).parameters["methods"].default) == tuple(
        next(o for o in segment.params if o.name == "methods").default)  # fmt: skip
    assert tuple(inspect.signature(segmentation.Segmenter).parameters["methods"].default) == ("salinet",)
    assert tuple(inspect.signature(evaluation.evaluate).parameters["methods"].default) == tuple(
        next(o for o in evaluate.params if o.name == "methods").default)  # fmt: skip


@pytest.fixture
def scored(tmp_path):
    photos(tmp_path / "in", 1, ["cat.jpg"])
    (tmp_path / "masks").mkdir()
    truth = np.zeros((300, 451), np.uint8)
    truth[40:290, 60:400] = 255
    Image.fromarray(truth).save(tmp_path / "masks/cat.png")
    return tmp_path


def test_evaluate_and_sanity_resume_and_take_force(run, scored):
    args = ("evaluate", *ALEXNET, "-i", "in", "--masks", "masks", "-v", "salinet", "-o", "ev")
    code, first, err = run(*args)
    assert code == 0 and "wrote" in err, err
    stamp = (scored / "ev/results.csv").stat().st_mtime_ns
    code, again, err = run(*args)
    assert code == 0 and "current: skipped (--force redoes them)" in err and again == first, err
    assert (scored / "ev/results.csv").stat().st_mtime_ns == stamp
    code, _, err = run(*args, "--force")
    assert code == 0 and "wrote" in err and (scored / "ev/results.csv").stat().st_mtime_ns != stamp
    args = ("sanity", *ALEXNET, "-v", "salinet", "--test", "independent", "-l", "conv2", "-o", "sa")
    code, first, err = run(*args)
    assert code == 0 and "wrote" in err, err
    code, again, err = run(*args)
    assert code == 0 and "current: skipped (--force redoes them)" in err and again == first, err


def test_sanity_and_inspect_name_layers_as_dash_l_does(run):
    code, out, err = run("sanity", *ALEXNET, "-v", "salinet", "--test", "cascading", "-l", "conv2", "-o", "sa")
    assert code == 0, err
    assert "conv2" in out and "conv1" in out and "features.0" not in out
    code, out, err = run("inspect", "-m", "alexnet", "-l", "pool5")
    assert code == 0, err
    assert out.startswith("# alexnet, pool5,") and "\nconv1\t" in out and "features.0" not in out
    code, out, err = run("inspect", "-m", "resnet18", "-l", "layer1")
    assert code == 0, err
    assert "\nlayer1.0.add\t" in out and "\nadd\t" not in out and "\nadd_1\t" not in out
    code, out, err = run("layers", "-m", "resnet18")
    assert code == 0 and "\nlayer1.1.add\t" in out, err


def test_messages(run, tmp_path):
    code, _, err = run("visualize", "-m", "alexnet", "-w", "nothere.pth")
    assert code == 2 and err.count("DEFAULT") == 1, err
    code, _, err = run("inspect", "--help")
    assert "[default: random]" in err + _ or "[default: random]" in _, _
    photos(tmp_path / "in", 1, ["café.jpg"])
    code, _, err = run("visualize", *ALEXNET, "-l", "conv1", "-i", "in", "-o", "o")
    assert code == 0 and "wrote 1 file to o/" in err, err
    assert [p.name for p in (tmp_path / "o").glob("*.png")] == ["café_alexnet_conv1_desalinet.png"]
    (tmp_path / "c.yaml").write_text("model: alexnet\nweights: random\nimages: [in]\n")
    code, out, err = run("run", "c.yaml", "--dry-run")
    assert code == 0 and "1 photo " in out.splitlines()[0] + " " and "1 photos" not in out, out


def test_diff_sizes_are_width_by_height(run, tmp_path):
    Image.new("RGB", (30, 20)).save(tmp_path / "a.png")
    Image.new("RGB", (40, 20)).save(tmp_path / "b.png")
    code, out, _ = run("diff", "a.png", "b.png")
    assert code == 1 and "size 30×20 vs 40×20" in out, out


def test_a_long_message_stays_one_line_in_a_log(tmp_path):
    long = tmp_path / ("x" * 120)
    out = subprocess.run([sys.executable, "-m", "reversenet", "run", "c.yaml", "--merge"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300, check=False)  # fmt: skip
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    (tmp_path / "c.yaml").write_text(f"model: alexnet\nweights: random\nlayers: [conv1]\nout: {long}\nreport: false\n")
    out = subprocess.run([sys.executable, "-m", "reversenet", "run", "c.yaml"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=600, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert any(line.startswith("wrote 1 file to ") and line.endswith("x/") for line in out.stderr.splitlines()), out.stderr


def test_segment_needs_an_out_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match="out"):
        reversenet.segment([sample_image()], "alexnet", weights="random")  # type: ignore[call-arg]
    assert not list(tmp_path.iterdir())
    result = reversenet.run({"model": "alexnet", "weights": "random", "layers": ["conv1"], "out": "o", "report": False})
    assert isinstance(result, list) and result.written == 1 and result[0]["kind"] == "picture"
