"""Variant YAML files: the built-ins as docs/design.md §2 defines them, and schema errors."""

from __future__ import annotations

import pytest
import torch

import reversenet
from reversenet import ReversenetError, UsageError, load_variant
from reversenet.core.variants import VARIANTS

EXPECTED = {  # docs/design.md §2
    "identity": ("identity", "switches", "identity"),
    "deconvnet": ("relu", "switches", "identity"),
    "salinet": ("bp", "switches", "bp"),
    "desalinet": ("hybrid", "switches", "identity"),
    "identity-center": ("identity", "center", "identity"),
    "deconvnet-center": ("relu", "center", "identity"),
    "salinet-center": ("bp", "center", "bp"),
    "desalinet-center": ("hybrid", "center", "identity"),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builtin_variants_pick_the_papers_rules(name):
    v = load_variant(name)
    assert (v.rules["ReLU"], v.rules["MaxPool2d"], v.rules["LocalResponseNorm"]) == EXPECTED[name]
    assert v.description


def test_eight_builtins():
    assert set(VARIANTS) == set(EXPECTED)


def test_user_file_loads(tmp_path):
    path = tmp_path / "footnote5.yml"
    path.write_text("description: DeSaliNet with LRN bp\nrules:\n  ReLU: hybrid\n  LocalResponseNorm: bp\n")
    v = load_variant(path)
    assert v.name == "footnote5" and v.rules == {"ReLU": "hybrid", "LocalResponseNorm": "bp"}


def test_a_file_not_in_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("description: d\xe9conv\nrules: {}\n".encode("latin-1"))
    with pytest.raises(ReversenetError, match="cannot read variant file .*latin1.yaml: 'utf-8' codec"):
        load_variant(path)


@pytest.mark.parametrize(
    "text,fragments",
    [
        ("rules:\n  ReLU: [hybrid\n", ["line 3", "invalid YAML"]),
        ("rules:\n  ReLU: hybrid\ncolour: red\n", ["line 3", "unknown key 'colour'", "description, rules"]),
        ("description: x\n", ["missing key 'rules'"]),
        ("rules: hybrid\n", ["line 1", "'rules' must map"]),
        ("rules:\n  Relu: hybrid\n", ["line 2", "unknown layer family 'Relu'", "ReLU"]),
        ("rules:\n  ReLU: guided\n", ["line 2", "ReLU: unknown rule 'guided'", "identity, relu, bp, hybrid"]),
        ("rules:\n  MaxPool2d: [switches]\n", ["line 2", "unknown rule 'a sequence'", "switches, center"]),
        ("- ReLU\n", ["a variant is a mapping"]),
    ],
)
def test_schema_errors_name_file_line_key_and_choices(tmp_path, text, fragments):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        load_variant(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_unknown_name_suggests_close_names():
    with pytest.raises(UsageError, match="did you mean desalinet"):
        load_variant("desalinett")


def test_missing_family_rule_is_reported_where_it_is_needed(tmp_path):
    import torch
    import torchvision

    import reversenet

    path = tmp_path / "partial.yaml"
    path.write_text("rules:\n  ReLU: hybrid\n")
    model = torchvision.models.alexnet().eval()
    with pytest.raises(UsageError, match=r"names no rule for MaxPool2d \(features.2 \(MaxPool2d\)\)"):
        reversenet.reverse(model, torch.randn(1, 3, 96, 96), layer="features.5", variant=path)
    # a layer before any pooling needs no pooling rule
    out = reversenet.reverse(model, torch.randn(1, 3, 96, 96), layer="features.1", variant=path)
    assert out.shape == (1, 3, 96, 96)


def test_every_builtin_variant_has_a_form_for_any_network():
    from factories import three_gelus

    variant = load_variant("salinet+bp")
    assert variant.name == "salinet+bp" and variant.fallback == "bp"
    assert variant.rules == load_variant("salinet").rules and load_variant("salinet").fallback == "error"
    # GELU has no rule: salinet+bp reverses it by its exact gradient, so the whole is the gradient
    torch.manual_seed(0)
    model = three_gelus().eval()
    x = torch.randn(2, 3, 8, 8)
    with pytest.warns(UserWarning, match="no reverse rule for GELU; variant 'salinet\\+bp'"):
        rec = reversenet.Recording(model, x, layer="5", variants=["salinet+bp"])
    signal = torch.randn_like(rec.activation)
    x_ = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(model(x_), x_, signal)
    assert torch.allclose(rec.reverse(signal, "salinet+bp"), expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(UsageError, match="unknown variant"):
        load_variant("salinet+bq")
