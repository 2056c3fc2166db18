"""reversenet.quantus.explain as Quantus's explain_func: a randomisation metric (MPRT) and
a localisation metric (Pointing Game) run on it; its pictures are the engine's."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from reference import reference, relative_error
from torch import nn

from reversenet.errors import UsageError
from reversenet.quantus import explain

quantus = pytest.importorskip("quantus")


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 4),
    ).eval()  # fmt: skip


def batch(n: int = 4, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3, size, size)).astype(np.float32), rng.integers(0, 4, size=n)


@pytest.mark.parametrize("variant", ["salinet", "desalinet", "deconvnet-center"])
def test_explain_is_the_reversed_network(variant):
    model, (x, y) = small_cnn(), batch()
    ours = explain(model, x, y, variant=variant, reduce_axes=())
    assert np.allclose(explain(model, x, y, variant=variant), ours.sum(1, keepdims=True))  # colours summed, as Quantus does
    signal = torch.zeros(len(y), 4).scatter_(1, torch.as_tensor(y)[:, None], 1.0)
    theirs = reference(model, torch.from_numpy(x), "", variant, signal)
    assert ours.dtype == np.float32 and ours.shape == x.shape
    assert relative_error(torch.from_numpy(ours), theirs) < 1e-5


def test_quantus_randomisation_metric_runs_on_every_variant_asked():
    model, (x, y) = small_cnn(), batch()
    for variant in ("salinet", "desalinet"):
        scores = quantus.MPRT(disable_warnings=True, display_progressbar=False)(
            model=model, x_batch=x, y_batch=y, explain_func=explain, explain_func_kwargs={"variant": variant},
            device="cpu",
        )  # fmt: skip
        values = np.concatenate([np.asarray(v, dtype=float).ravel() for v in scores.values()])
        assert len(scores) >= 3 and np.isfinite(values).all()


def test_quantus_localisation_metric_runs():
    model, (x, y) = small_cnn(), batch()
    masks = np.zeros((len(x), 1, 16, 16), dtype=np.float32)
    masks[:, :, 4:12, 4:12] = 1
    scores = quantus.PointingGame(disable_warnings=True, display_progressbar=False)(
        model=model, x_batch=x, y_batch=y, s_batch=masks, explain_func=explain,
        explain_func_kwargs={"variant": "desalinet"}, device="cpu",
    )  # fmt: skip
    assert len(scores) == len(x) and all(s in (True, False, 0, 1) for s in scores)


def test_targets_that_do_not_fit_are_refused():
    model, (x, _) = small_cnn(), batch()
    with pytest.raises(UsageError, match="do not fit"):
        explain(model, x, np.array([0, 1, 9, 2]))


def test_the_docstring_example_runs():
    import reversenet.quantus

    assert doctest.testmod(reversenet.quantus).failed == 0
