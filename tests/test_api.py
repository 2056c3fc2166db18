"""The public API as documented: every public function and class has a NumPy-style docstring
with a runnable example (pytest runs them as doctests: --doctest-modules in pyproject.toml),
and its parameters and returns are checked by numpydoc when the API reference is built
(make docs)."""

import inspect
import re

import pytest
import torch

import reversenet
import reversenet.captum
import reversenet.diff
import reversenet.quantus

PUBLIC = [getattr(reversenet, name) for name in reversenet.__all__ if name not in ("VARIANTS", "diff")] + [
    reversenet.captum.ReversedNetwork, reversenet.captum.NeuronReversedNetwork, reversenet.quantus.explain, reversenet.diff.assert_images_match,
    reversenet.diff.diff_paths, reversenet.diff.verdict, reversenet.diff.Difference,
]  # fmt: skip


def _section(doc: str, title: str) -> bool:
    return re.search(rf"^{title}\n-{{{len(title)}}}$", doc, re.MULTILINE) is not None


@pytest.mark.parametrize("obj", PUBLIC, ids=lambda o: o.__name__)
def test_public_objects_have_numpy_docstrings_with_an_example(obj):
    doc = inspect.getdoc(obj) or ""
    assert doc, f"{obj.__name__} has no docstring"
    assert _section(doc, "Examples") and ">>>" in doc, f"{obj.__name__}: no Examples section with a doctest"
    if isinstance(obj, type) and issubclass(obj, Exception):
        return  # an exception's signature is Exception's
    takes = [p for p in inspect.signature(obj).parameters if p not in ("self", "args", "kwargs")]
    if takes:
        assert _section(doc, "Parameters"), f"{obj.__name__}: no Parameters section"
    if inspect.isfunction(obj) and inspect.signature(obj).return_annotation not in ("None", None):
        assert _section(doc, "Returns"), f"{obj.__name__}: no Returns section"


def test_the_public_names_are_importable_from_the_package():
    assert sorted(reversenet.__all__) == sorted(set(reversenet.__all__))
    for name in reversenet.__all__:
        assert getattr(reversenet, name) is not None


class _Pair(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, a, b):
        return self.fc(torch.relu(a) + b)


@pytest.mark.parametrize(
    "model,x",
    [
        (torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), torch.empty(0, 3, 224, 224)),
        (_Pair(), (torch.empty(0, 4), torch.empty(0, 4))),
        (_Pair(), (torch.randn(2, 4), torch.empty(0, 4))),
    ],
    ids=["images", "pair", "one-empty"],
)
def test_an_empty_batch_is_a_usage_error_of_one_line(model, x):
    for record in (lambda: reversenet.Recording(model, x, layer="output"),
                   lambda: reversenet.reverse(model, x, layer="output")):  # fmt: skip
        with pytest.raises(reversenet.UsageError, match="no images: the batch is empty") as error:
            record()
        assert "\n" not in str(error.value)
