"""Reversible layer pairs, one module per layer family; importing this registers them."""

# Registration order is listing order: the families a variant chooses for come first.
from . import relu, pooling, lrn, linear, shape  # noqa: F401, I001
from .registry import FAMILIES, Family, Rule, family, family_of, rule

__all__ = ["FAMILIES", "Family", "Rule", "family", "family_of", "rule"]
