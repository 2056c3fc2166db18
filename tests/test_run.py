"""`reversenet run`: configs, the shipped experiments, naming, the manifest and bad input.

(Killed runs, torchrun and shards: tests/test_run_scale.py.)
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import reversenet
from reversenet.apps.compare import prepare
from reversenet.inputs.fourier import fourier, phase
from reversenet.inputs.images import sample_image, sha256_file
from reversenet.inputs.models import load_network
from reversenet.output.selectivity import score as selectivity

EXPERIMENTS = Path(__file__).parent.parent / "configs" / "experiments"


def one_line_error(code: int, err: str, status: int, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert code == status, err
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[-1], err


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def photos(folder: Path, n: int) -> Path:
    """n distinct photos: crops of the sample photo."""
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(sample_image()) as image:
        for i in range(n):
            image.crop((10 * i, 5 * i, 300 - 7 * i, 300 - 3 * i)).save(folder / f"p{i}.jpg")
    return folder


# ---- the shipped experiments -----------------------------------------------------------


@pytest.mark.parametrize(
    "name,extra,montage",
    [
        ("fig3-eight-variants", [], "montages/vgg16_pool5_MaxPool2d-by-ReLU.png"),
        ("fig5-random-weights", [], "montages/vgg16_pool5_photo-by-variant-render.png"),
        ("fig7-phase", [], "montages/vgg16_pool5_noise_photo-by-variant.png"),
        ("fig4-neuron-selectivity", ["--set", "model=alexnet", "--set", "images=photos/"], None),
    ],
)
def test_shipped_experiment_runs(run, tmp_path, name, extra, montage):
    photos(tmp_path / "photos", 2)
    code, out, err = run("run", str(EXPERIMENTS / f"{name}.yaml"), "--set", "weights=random", "--set", "out=o", *extra)
    assert code == 0, err
    out_dir = tmp_path / "o"
    rows = manifest(out_dir)
    pictures = [r for r in rows if r["kind"] == "picture"]
    assert pictures and all((out_dir / r["file"]).is_file() for r in rows)
    assert all(sha256_file(out_dir / r["file"]) == r["sha256"] for r in rows)
    assert (out_dir / "index.html").is_file() and any(r["kind"] == "montage" for r in rows)
    if montage:
        assert (out_dir / montage).is_file()
    if name == "fig3-eight-variants":
        assert len(pictures) == 8 and {r["variant"] for r in pictures} == set(reversenet.VARIANTS)
        assert all(r["weights"] == "random" and r["neuron"] is not None for r in pictures)
    if name == "fig5-random-weights":  # the montage's lead column: the photo itself
        assert [r["picture"] for r in rows if r["kind"] == "photo"] == ["input"]
        assert {(r["variant"], r["render"]) for r in pictures} == {
            (v, r) for v in ("desalinet", "identity-center") for r in ("paper", "gamma")}
    if name == "fig7-phase":
        assert {r["picture"] for r in rows if r["kind"] == "photo"} == {"input", "fourier", "phase"}
        assert all(r["neuron"] is None for r in pictures)  # noise: no single neuron
    if name == "fig4-neuron-selectivity":
        # 2 photos x 3 layers x 3 variants x 3 selectors, one table row per layer and variant
        assert len(pictures) == 2 * 3 * 3 * 3
        with open(out_dir / "tables/selectivity.csv") as f:
            table = list(csv.DictReader(f))
        assert len(table) == 9 and {r["photos"] for r in table} == {"2"}
        assert all(-1 <= float(r["mean"]) <= 1 for r in table)
        assert "Neuron selectivity" in out and "max~random" in out


def test_fig3_montage_is_the_two_by_four_grid(run, tmp_path):
    code, _, err = run("run", str(EXPERIMENTS / "fig3-eight-variants.yaml"), "--set", "weights=random",
                       "--set", "model=alexnet", "--set", "out=o")  # fmt: skip
    assert code == 0, err
    grid = np.asarray(Image.open(tmp_path / "o/montages/alexnet_pool5_MaxPool2d-by-ReLU.png"))
    assert 4 * 224 < grid.shape[1] < 5 * 224 + 400 and 2 * 224 < grid.shape[0] < 3 * 224
    cell = np.asarray(Image.open(tmp_path / "o/chelsea_alexnet_pool5_desalinet.png"))
    # the montage holds the pictures themselves: DeSaliNet (switches, hybrid) is row 1, column 4
    found = [(y, x) for y in range(grid.shape[0] - 223) for x in range(grid.shape[1] - 223)
             if np.array_equal(grid[y, x : x + 3], cell[0, :3]) and np.array_equal(grid[y : y + 224, x : x + 224], cell)]  # fmt: skip
    assert len(found) == 1 and found[0][1] > 3 * 224 and found[0][0] < 224


# ---- one forward pass, many outputs; reruns ---------------------------------------------


def test_one_run_many_layers_variants_selectors_and_renderers(run, tmp_path):
    photos(tmp_path / "photos", 3)
    config = tmp_path / "c.yaml"
    config.write_text(
        "images: [photos/]\nmodel: alexnet\nweights: random\nlayers: [conv3, pool5]\n"
        "variants: [deconvnet, desalinet]\nselect: [max, 'topk:2']\nrender: [paper, saliency]\nraw: true\n"
        "batch_size: 2\nout: o\n"
    )
    code, _, err = run("run", "c.yaml")
    assert code == 0, err
    rows = manifest(tmp_path / "o")
    pictures = [r for r in rows if r["kind"] == "picture"]
    # 3 photos x 2 layers x 2 variants x (1 + 2 neurons) x (1 + 2 pictures)
    assert len(pictures) == 3 * 2 * 2 * 3 * 3 and len([r for r in rows if r["kind"] == "raw"]) == 3 * 2 * 2 * 3
    assert len({r["file"] for r in rows}) == len(rows)
    top = [r for r in pictures if r["select"] == "topk:2" and r["render"] == "paper"]
    assert all(len(r["neuron"]) == 3 and r["k"] in (1, 2) for r in top)
    # the raw result is what the engine computes for that photo alone
    row = next(r for r in rows if r["kind"] == "raw" and r["photo_id"] == "p1" and r["layer"] == "conv3"
               and r["variant"] == "deconvnet" and r["select"] == "max")  # fmt: skip
    network = load_network("alexnet", "random")
    x, _ = prepare(network, tmp_path / "photos/p1.jpg")
    expected = reversenet.Recording(network.module, x, layer="conv3", variants=["deconvnet"],
                                 aliases=network.aliases).visualize("max", "deconvnet")[0, 0]  # fmt: skip
    np.testing.assert_allclose(np.load(tmp_path / "o" / row["file"]), expected.numpy(), rtol=1e-4, atol=1e-6)

    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "o").glob("*.png")}
    code, _, err = run("run", "c.yaml")
    assert code == 0 and "wrote 0 files" in err and "3 photos already done" in err, err
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_a_changed_parameter_recomputes_and_a_changed_photo_too(run, tmp_path):
    shutil.copy(sample_image(), tmp_path / "cat.jpg")
    args = ("visualize", "-w", "random", "-m", "alexnet", "-i", "cat.jpg", "-o", "o")
    assert run(*args)[0] == 0
    png = tmp_path / "o/cat_alexnet_pool5_desalinet.png"
    first = png.read_bytes()
    code, _, err = run(*args, "--seed", "1")  # other weights: the old picture is stale
    assert code == 0 and "wrote 1 file" in err, err
    assert png.read_bytes() != first and manifest(tmp_path / "o")[0]["seed"] == 1
    with Image.open(sample_image()) as image:
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "cat.jpg")  # the same name, another photo
    code, _, err = run(*args, "--seed", "1")
    assert code == 0 and "wrote 1 file" in err, err
    png.write_bytes(b"tampered")  # a file changed behind the manifest's back is not current
    code, _, err = run(*args, "--seed", "1")
    assert code == 0 and "wrote 1 file" in err and Image.open(png).size == (224, 224), err


def test_compare_is_recorded_and_skipped_when_current(run, tmp_path):
    assert run("compare", "-w", "random", "-m", "alexnet")[0] == 0
    code, _, err = run("compare", "-w", "random", "-m", "alexnet")
    assert code == 0 and "is current: skipped" in err
    code, _, err = run("compare", "-w", "random", "-m", "alexnet", "--seed", "1", "-o", "reversenet-out/mine.png")
    assert code == 0 and "wrote reversenet-out/mine.png" in err
    code, _, err = run("compare", "-w", "random", "-m", "alexnet", "--seed", "2", "-o", "reversenet-out/mine.png")
    assert code == 0 and "wrote reversenet-out/mine.png" in err  # other weights: recomputed
    code, _, err = run("compare", "-w", "random", "-m", "alexnet", "--render", "gamma")
    assert code == 0 and "wrote reversenet-out/chelsea_alexnet_pool5_compare-gamma.png" in err
    records = {r["file"]: r for r in manifest(tmp_path / "reversenet-out")}
    assert sorted(records) == ["chelsea_alexnet_pool5_compare-gamma.png", "chelsea_alexnet_pool5_compare.png", "mine.png"]
    assert records["mine.png"]["seed"] == 2 and records["mine.png"]["variant"] == list(reversenet.VARIANTS)


def test_compare_draws_a_grid_per_photo_and_per_signal(run, tmp_path):
    for name in ("photos/a.jpg", "photos/b.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        with Image.open(sample_image()) as image:
            image.rotate(len(name)).save(tmp_path / name)
    code, _, err = run("compare", "-w", "random", "-m", "alexnet", "-i", "photos", "-s", "topk:2", "-o", "grids")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "grids").glob("*.png")) == [
        f"{photo}_alexnet_pool5_topk-2_compare-{k}.png" for photo in ("a", "b") for k in (1, 2)
    ]
    code, _, err = run("compare", "-w", "random", "-m", "alexnet", "-i", "photos", "-o", "one.png")
    assert code == 2 and "names one grid" in err and not (tmp_path / "one.png").exists()


# ---- names: two photos never share an output ----------------------------------------------


def test_photos_that_clean_up_or_fold_to_one_name_keep_apart(run, tmp_path):
    for name in ("a/x.jpg", "b/x.jpg", "x.png", "X.jpg", "p q.jpg", "p-q.jpg", "p_q.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        with Image.open(sample_image()) as image:
            image.rotate(len(name) * 7).save(tmp_path / name)
    specs = ["-i", "a", "-i", "b", "-i", "x.png", "-i", "X.jpg", "-i", "p q.jpg", "-i", "p-q.jpg", "-i", "p_q.jpg"]
    code, _, err = run("visualize", "-w", "random", "-m", "alexnet", *specs, "-o", "o")
    assert code == 0, err
    rows = manifest(tmp_path / "o")
    assert len(rows) == 7 and len({r["photo"] for r in rows}) == 7
    assert len({r["file"].casefold() for r in rows}) == 7  # distinct even on a case-folding file system
    assert len(list((tmp_path / "o").glob("*.png"))) == 7
    ids = {Path(r["photo"]).relative_to(tmp_path).as_posix(): r["photo_id"] for r in rows}
    assert ids["a/x.jpg"] == "x" and ids["p q.jpg"] == "p-q" and ids["b/x.jpg"].startswith("x-")
    # a rerun with the photos in another order keeps every photo's id, and so its files
    specs_reversed = [s for pair in reversed(list(zip(specs[::2], specs[1::2]))) for s in pair]
    code, _, err = run("visualize", "-w", "random", "-m", "alexnet", *specs_reversed, "-o", "o")
    assert code == 0 and "wrote 0 files" in err and "7 photos already done" in err, err


def test_outputs_that_would_share_a_file_are_refused(run, tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v/desalinet.yaml").write_text("rules:\n  ReLU: bp\n  MaxPool2d: switches\n  LocalResponseNorm: bp\n")
    code, _, err = run("visualize", "-w", "random", "-m", "alexnet", "-v", "desalinet", "-v", "v/desalinet.yaml")
    one_line_error(code, err, 2, "share the file chelsea_alexnet_pool5_desalinet.png", "variant_rules")


# ---- bad input ----------------------------------------------------------------------------


def test_stray_and_broken_files_in_a_folder_are_reported_and_the_run_goes_on(run, tmp_path):
    folder = photos(tmp_path / "photos", 3)
    (folder / "._p0.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / "dir.jpg").mkdir()
    (folder / "broken.jpg").write_bytes(sample_image().read_bytes()[:2000])
    code, _, err = run("visualize", "-w", "random", "-m", "alexnet", "-i", "photos", "-o", "o")
    assert code == 1, err
    assert "._p0.jpg: macOS metadata file, skipped" in err and "dir.jpg: not a regular file, skipped" in err
    assert "failed: photos/broken.jpg" in err
    assert err.strip().splitlines()[-1].startswith("error: 1 photo failed, the others are done") and "Traceback" not in err
    rows = manifest(tmp_path / "o")
    assert sorted(r["photo_id"] for r in rows if r["kind"] == "picture") == ["p0", "p1", "p2"]
    (failed,) = [r for r in rows if r["kind"] == "failed"]
    assert failed["photo"].endswith("broken.jpg") and "cannot read image" in failed["error"]
    shutil.copy(sample_image(), folder / "broken.jpg")  # the download finished: the rerun does it alone
    code, _, err = run("visualize", "-w", "random", "-m", "alexnet", "-i", "photos", "-o", "o")
    assert code == 0 and "wrote 1 file" in err, err
    assert not [r for r in manifest(tmp_path / "o") if r["kind"] == "failed"]


CONFIG_ERRORS = [
    # (config text, --set arguments, exit status, fragments)
    ("model: alexnet\nweigths: random\n", [], 2, ["c.yaml:2: unknown key 'weigths'; did you mean weights?"]),
    ("model: alexnet\nbatch_size: many\n", [], 2, ["c.yaml:2: batch_size: must be a whole number"]),
    ("model: alexnet\nweights: random\nlayers: [pool55]\n", [], 2, ["c.yaml:3: layers: unknown layer 'pool55'", "pool5"]),
    ("model: alexnet\nweights: random\nvariants: [desalinett]\n", [], 2, ["c.yaml:3: variants: unknown variant", "desalinet"]),
    ("model: alexnet\nweights: random\nselect: [max, maxx]\n", [], 2, ["c.yaml:3: select: unknown selector 'maxx'"]),
    ("model: alexnet\nweights: random\nselect: ['neuron:999,0,0']\n", [], 2, ["c.yaml:3: select:", "out of range"]),
    ("model: alexnett\n", [], 2, ["c.yaml:1: model: unknown model 'alexnett'", "alexnet"]),
    ("model: alexnet\nrender: [papper]\n", [], 2, ["c.yaml:2: render: unknown 'papper'; did you mean paper?"]),
    ("model: alexnet\nweights: random\nmontages:\n  - rows: layr\n    columns: variant\n", [], 2,
     ["c.yaml:3: montages: unknown montage axis 'layr'", "layer"]),
    ("model: alexnet\n", ["--set", "weights=random", "--set", "seed=-1"], 2, ["--set seed: must be a whole number"]),
    ("model: alexnet\n", ["--set", "weights"], 2, ["--set 'weights': write it as key=value"]),
    ("model: [alexnet\n", [], 2, ["c.yaml:2: not valid YAML"]),
    ("- alexnet\n", [], 2, ["c.yaml:1: a config is a mapping"]),
    ("model: alexnet\nweights: random\nimages: [nothere/]\n", [], 2, ["c.yaml:3: images: no such image: nothere/"]),
    ("model: alexnet\nweights: random\n", ["--shard", "2/2"], 2, ["--shard 2/2"]),
]


@pytest.mark.parametrize("text,extra,status,fragments", CONFIG_ERRORS, ids=[f[-1][0][:30] for f in CONFIG_ERRORS])
def test_config_errors_name_the_file_line_and_key(run, tmp_path, text, extra, status, fragments):
    (tmp_path / "c.yaml").write_text(text)
    code, _, err = run("run", "c.yaml", *extra)
    one_line_error(code, err, status, *fragments)
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "reversenet-out").exists() or not any((tmp_path / "reversenet-out").rglob("*.png"))


def test_missing_config_file(run):
    code, _, err = run("run", "nothere.yaml")
    one_line_error(code, err, 2, "no such config file: nothere.yaml")


def test_dry_run_counts_and_writes_nothing(run, tmp_path):
    photos(tmp_path / "photos", 2)
    (tmp_path / "c.yaml").write_text("model: alexnet\nimages: [photos/]\nvariants: all\nselect: [max, 'topk:3']\n")
    code, out, err = run("run", "c.yaml", "--set", "weights=random", "--dry-run")
    assert code == 0, err
    assert "2 photos" in out and out.count("alexnet") >= 16 and "topk:3" in out
    assert not (tmp_path / "reversenet-out/c").exists() or not any((tmp_path / "reversenet-out/c").iterdir())


def test_python_api_returns_the_manifest_rows(tmp_path):
    rows = reversenet.run({"model": "alexnet", "variants": ["salinet", "deconvnet"], "out": str(tmp_path / "o")},
                          weights="random", layers=["conv5"])  # fmt: skip
    assert [r["variant"] for r in rows] == ["salinet", "deconvnet"]
    assert sorted(rows, key=lambda r: r["file"]) == manifest(tmp_path / "o") and rows.written == 2
    with pytest.raises(reversenet.UsageError, match="unknown key 'layer'; did you mean layers"):
        reversenet.run({"model": "alexnet"}, layer="conv5")


# ---- the pieces ------------------------------------------------------------------------------


def test_fourier_round_trip_and_phase_keeps_the_phase():
    x = torch.randn(3, 16, 20, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(fourier(x), x.double())
    y = phase(x, seed=1)
    assert y.dtype == torch.float64 and y.shape == x.shape
    X, Y = torch.fft.fft2(x.double()), torch.fft.fft2(y)
    keep = X.abs() > 1e-6
    difference = torch.remainder(Y.angle() - X.angle() + torch.pi, 2 * torch.pi) - torch.pi
    assert difference[keep].abs().max() < 1e-6  # the phase is x's ...
    assert not torch.allclose(Y.abs(), X.abs())  # ... the amplitude is not
    torch.testing.assert_close(phase(x, seed=1), y)


def test_selectivity_is_the_pearson_correlation_of_the_pictures():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 5, 5))
    scores = selectivity({"max": torch.tensor(a)[None], "random": torch.tensor(2 * a + 1)[None],
                          "mixture": torch.tensor(b)[None]})  # fmt: skip
    assert scores["pairs"]["max~random"] == pytest.approx(1.0)
    expected = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert scores["pairs"]["max~mixture"] == pytest.approx(expected)
    assert scores["mean"] == pytest.approx((1 + 2 * expected) / 3)
    several = selectivity({"topk:2": torch.tensor(np.stack([a, b]))})
    assert list(several["pairs"]) == ["topk:2#1~topk:2#2"]
