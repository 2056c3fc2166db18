"""The timm zoo survey (benchmarks/zoo.py --source timm) on a few models: none may be wrong
(pictures off the oracles by more than 1e-4) or crashed (an exception that is not a
ReversenetError); and the survey's verdicts are not vacuous.

Models that were silently wrong before: efficientnet_b0 (SaliNet off by 1.7e7),
mobilenetv3_large_100 (7.5e8), densenet121 (1e3), nf_resnet50 (0.9), res2net50_26w_4s (0.9:
the slice ``spx[-1]`` of a ``torch.split`` got no signal back). ~40 s on 2 cores.
"""

from __future__ import annotations

import pytest

pytest.importorskip("timm")

import torch

import reversenet
from benchmarks import zoo

KNOWN = ["efficientnet_b0", "mobilenetv3_large_100", "densenet121", "nf_resnet50", "res2net50_26w_4s"]
SAMPLE = 4  # and this many more, drawn with a fixed seed from the CNNs of at most 8M parameters


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models on a shared machine: one torch thread is several times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _verdict(row: dict[str, str]) -> str:
    return " | ".join(f"{c}: {row.get(c, '')}" for c in zoo.COLUMNS)


@pytest.mark.parametrize("name", KNOWN)
def test_known_model_is_exact_or_refused(name):
    row = zoo.survey_timm(name)
    assert row["outcome"] in ("exact", "refused"), _verdict(row)


def test_seeded_sample_is_exact_or_refused():
    names = zoo.timm_sample(SAMPLE, seed=1, max_params=8e6)
    assert len(names) == SAMPLE
    rows = [zoo.survey_timm(name) for name in names]
    assert not [r for r in rows if r["outcome"] in ("wrong", "crashed")], "\n".join(map(_verdict, rows))
    assert [r for r in rows if r["outcome"] != "not built"], "\n".join(map(_verdict, rows))


@pytest.mark.parametrize("swap", ["salinet", "desalinet"])
def test_a_wrong_picture_is_classified_wrong(monkeypatch, swap):
    """On a ReLU network guided backprop is not the gradient: passing one off as the other is
    wrong, in float64 too (so no float32 noise decides it)."""
    real = zoo.reversenet_pictures
    other = {"salinet": "desalinet", "desalinet": "salinet"}[swap]
    monkeypatch.setattr(zoo, "reversenet_pictures", lambda model, x: {**real(model, x), swap: real(model, x)[other]})
    row = zoo.survey_timm("resnet18")
    assert row["outcome"] == "wrong", _verdict(row)
    assert row["input"].endswith("float64")
    error = {"salinet": "SaliNet error", "desalinet": "DeSaliNet error"}
    assert float(row[error[swap]]) > 1e-2
    assert float(row[error[other]]) <= zoo.TOLERANCE


def test_a_picture_of_the_wrong_logit_is_wrong(monkeypatch):
    """The oracles pick each image's top logit themselves: reversing another one is wrong."""

    def second_logit(model, x):
        rec = reversenet.Recording(model, x, layer="output", variants=["salinet+bp", "desalinet+bp"])
        e = rec.select("max")[0]
        e = e.roll(1, dims=1)
        salinet, desalinet = rec.reverse_many([("salinet+bp", e), ("desalinet+bp", e)])
        return {"salinet": salinet, "desalinet": desalinet, "logits": rec.activation, "bp": 0}

    monkeypatch.setattr(zoo, "reversenet_pictures", second_logit)
    row = zoo.survey_timm("resnet18")
    assert row["outcome"] == "wrong" and "logits right" in row["reason"], _verdict(row)


def test_lively_leaves_no_constant_tensor():
    """timm zero-initialises the last norm of each residual branch (zero_init_last): with
    it a wrong reverse of the branch would go unseen. `lively` redraws such tensors."""
    model = zoo.build("resnet18", "timm")
    assert not model.get_submodule("layer1.0.bn2").weight.any()
    model = zoo.build("resnet18", "lively")
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and t.numel() > 1:
            assert (t != t.flatten()[0]).any(), name


def test_outcomes_of_errors(monkeypatch):
    def refuse(model, x):
        raise reversenet.ReversenetError("no reverse rule for layer1.0.act1 (Strange); add one")

    def crash(model, x):
        raise RuntimeError("boom")

    monkeypatch.setattr(zoo, "reversenet_pictures", refuse)
    row = zoo.survey_timm("test_resnet")
    assert (row["outcome"], row["reason"]) == ("refused", "no reverse rule for layer1.0.act1 (Strange); add one")
    assert zoo.markdown([row], ["# t"]).count("- no reverse rule for Strange (1): test_resnet") == 1
    monkeypatch.setattr(zoo, "reversenet_pictures", crash)
    row = zoo.survey_timm("test_resnet")
    assert row["outcome"] == "crashed" and row["reason"].startswith("RuntimeError: boom"), _verdict(row)
    row = zoo.survey_timm("no_such_model_anywhere")
    assert row["outcome"] == "not built", _verdict(row)


def test_a_hang_or_a_dead_worker_is_a_crash(monkeypatch):
    import os
    import time

    monkeypatch.setattr(zoo, "reversenet_pictures", lambda model, x: time.sleep(60))
    row = zoo.survey_isolated("test_resnet", timeout=8)
    assert row["outcome"] == "crashed" and row["reason"] == "ran past 8 s in phase reversenet", _verdict(row)
    monkeypatch.setattr(zoo, "reversenet_pictures", lambda model, x: os._exit(3))
    row = zoo.survey_isolated("test_resnet", timeout=60)
    assert row["outcome"] == "crashed" and row["reason"] == "worker died (exit code 3) in phase reversenet", _verdict(row)


def test_which_models_are_cnns():
    cnns, excluded = zoo.timm_cnns(["resnet18", "skresnet18", "resnest14d", "botnet26t_256", "lambda_resnet26t",
                                    "mobilenetv4_conv_small", "mobilenetv4_hybrid_medium", "resnet50_clip"])  # fmt: skip
    assert cnns == ["resnet18", "skresnet18", "resnest14d", "mobilenetv4_conv_small"]
    assert excluded == {
        "botnet26t_256": "BottleneckAttn", "lambda_resnet26t": "LambdaLayer",
        "mobilenetv4_hybrid_medium": "MobileAttention", "resnet50_clip": "AttentionPool2d",
    }  # fmt: skip
    assert "vit_base_patch16_224" not in zoo.timm_candidates()
