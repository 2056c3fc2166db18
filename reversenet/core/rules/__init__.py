"""Reversible layer pairs, one module per layer family; importing this registers them."""

# Registration order is listing order: the families a variant chooses for come first.
from . import relu, pooling, lrn, linear, batchnorm, merge, shape, fallback  # noqa: F401, I001
from .registry import FAMILIES, FUNCTIONAL, Family, Rule, call, family, family_of, functional, rule

__all__ = ["FAMILIES", "FUNCTIONAL", "Family", "Rule", "call", "family", "family_of", "functional", "rule"]
