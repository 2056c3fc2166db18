"""reversenet sanity: the model-parameter randomisation test (Adebayo et al., 2018)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from reversenet.apps.randomisation import CONTROL, sanity, similarity
from reversenet.cli import cli
from reversenet.errors import UsageError
from reversenet.inputs.models import load_network


def picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(3, 16, 16))


def test_similarity_by_hand():
    a = picture(0)
    assert similarity(a, a) == pytest.approx({"spearman": 1, "ssim": 1, "sign": 1})
    # |−a| = |a|: ranks and maps agree, every sign flips
    assert similarity(a, -a) == pytest.approx({"spearman": 1, "ssim": 1, "sign": -1})
    unrelated = similarity(a, picture(1))
    assert abs(unrelated["spearman"]) < 0.15 and abs(unrelated["sign"]) < 0.15 and unrelated["ssim"] < 0.3
    # a constant sign pattern: the correlation is undefined unless both are constant
    ones = np.ones((3, 8, 8))
    assert similarity(ones, ones)["sign"] == 1 and similarity(ones, a[:, :8, :8])["sign"] == 0


@pytest.fixture(scope="module")
def alexnet_result():
    return sanity("alexnet", weights="random", variants=["salinet", "desalinet"])


def test_rows_cover_every_test_step_and_method(alexnet_result):
    result = alexnet_result
    assert result.layers == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]  # as -l names them
    methods = {"salinet", "desalinet", CONTROL}
    assert len(result.rows) == 2 * (len(result.layers) + 1) * len(methods)  # one photo
    steps = {(r["test"], r["step"]): r["randomised"] for r in result.rows}
    assert steps["cascading", 1] == "fc8" and steps["independent", 8] == "conv1"
    for row in result.rows:
        if row["step"] == 0:  # the trained network against itself
            assert row["spearman"] == pytest.approx(1) and row["sign"] == pytest.approx(1)


def test_gradient_decorrelates_and_guided_backprop_does_not(alexnet_result):
    # Adebayo et al.'s finding: randomising the logits layer changes the gradient's picture
    # completely and guided backprop's (desalinet) hardly at all
    top = {r["method"]: r["spearman"] for r in alexnet_result.rows if r["test"] == "cascading" and r["step"] == 1}
    assert top["salinet"] < 0.5 and top["desalinet"] > 0.9


def test_independent_randomisation_restores_each_layer(alexnet_result):
    rows = {(r["test"], r["step"], r["method"]): r["spearman"] for r in alexnet_result.rows}
    # both tests' first step randomise the top layer alone
    assert rows["independent", 1, "salinet"] == rows["cascading", 1, "salinet"]
    # cascading compounds, independent does not: one layer alone changes desalinet less
    assert rows["independent", 5, "desalinet"] > rows["cascading", 5, "desalinet"]


def test_the_network_passed_in_is_left_as_it_was():
    network = load_network("alexnet", "random")
    before = {k: v.clone() for k, v in network.module.state_dict().items()}
    sanity(network, variants=["salinet"], tests=["cascading"])
    assert all(torch.equal(before[k], v) for k, v in network.module.state_dict().items())


def test_cli_writes_plot_csv_and_table(tmp_path):
    result = CliRunner().invoke(cli, ["sanity", "-m", "alexnet", "-w", "random", "-v", "salinet", "--test",
                                      "cascading", "-o", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "fc8" in result.output and "deconvnet-center" in result.output
    assert (tmp_path / "sanity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((tmp_path / "sanity.csv").open()))
    assert {r["method"] for r in rows} == {"salinet", CONTROL} and len(rows) == 2 * 9
    summary = list(csv.DictReader((tmp_path / "sanity-summary.csv").open()))
    assert len(summary) == 2 * 9 and {"spearman", "ssim", "sign", "photos"} <= set(summary[0])


def test_a_layer_with_nothing_to_randomise_is_a_usage_error():
    with pytest.raises(UsageError, match="nothing to randomise"):
        sanity("factories:pool_first", weights="random", variants=["salinet"], layer="0")
