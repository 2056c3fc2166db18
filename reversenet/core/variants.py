"""Variants: YAML files that pick one reverse rule per layer family.

A variant file looks like::

    description: DeSaliNet / guided backprop
    rules:
      ReLU: hybrid
      MaxPool2d: switches
      LocalResponseNorm: identity

Families with a single rule (Conv2d, Linear, ...) need not be listed. A layer
type with no rule at all stops the run (``fallback: error``, the default) or is
reversed by its exact vector-Jacobian product (``fallback: bp``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TypeVar

import yaml

from ..choices import VARIANTS
from ..errors import ReversenetError, UsageError, first_line, unknown
from ..tables import Table
from .rules import FAMILIES, Family, Rule
from .rules.fallback import FALLBACK

_VARIANT_FILES = resources.files("reversenet.configs") / "variants"
_KEYS = ("description", "rules", "fallback")
FALLBACKS = ("error", "bp")
_Node = yaml.ScalarNode | yaml.SequenceNode | yaml.MappingNode  # the nodes yaml.compose makes
_Spec = TypeVar("_Spec", bound="str | Path | Variant")


@dataclass(frozen=True)
class Variant:
    """A named choice of reverse rule per layer family: one reversed architecture.

    Variants are YAML data (``rules: {ReLU: hybrid, MaxPool2d: switches}``); make one
    with `load_variant`.

    Parameters
    ----------
    name : str
        The variant's name (the file's stem for a YAML file).
    rules : dict of str to str
        Layer family (``ReLU``, ``MaxPool2d``, ``LocalResponseNorm``, ...) to the name of
        its reverse rule; a family left out uses its only, linear, rule.
    description : str, default ""
        One line for tables and reports.
    fallback : {"error", "bp"}, default "error"
        For a layer type with no reverse rule: refuse, or backpropagate exactly.
    source : str, default ""
        Where the variant was read from, for error messages.

    Examples
    --------
    >>> import reversenet
    >>> v = reversenet.load_variant("desalinet")
    >>> v.rules["ReLU"], v.rules["MaxPool2d"]
    ('hybrid', 'switches')
    """

    name: str
    rules: dict[str, str]
    description: str = ""
    fallback: str = "error"
    source: str = field(default="", compare=False)

    @property
    def recorded(self) -> dict[str, str]:
        """Its rules, and its fallback when it has one, as a manifest records them."""
        return {**self.rules, **({"fallback": self.fallback} if self.fallback else {})}

    def rule(self, fam: Family | None, where: str) -> Rule:
        """The reverse rule this variant applies to a layer family.

        Parameters
        ----------
        fam : reversenet.core.rules.Family or None
            The layer's family; None for a layer type without rules.
        where : str
            The layer's name, for error messages.

        Returns
        -------
        reversenet.core.rules.Rule
            The rule; exact backpropagation for a layer without rules under ``fallback: bp``.

        Raises
        ------
        reversenet.ReversenetError
            The layer type has no rules and the fallback is ``error``.
        reversenet.UsageError
            The variant names no rule for a family that has no default.
        """
        if fam is None:
            if self.fallback == "bp":
                return FALLBACK
            instead = f"use {self.name}{ANY}, the variant with" if self.name in VARIANTS else "set"
            raise ReversenetError(
                f"no reverse rule for {where}; {instead} 'fallback: bp' (exact backprop there), "
                "or add a rule with reversenet.core.rules.family/rule"
            )
        name = self.rules.get(fam.name)
        if name is not None:
            return fam.rules[name]
        if fam.default is None:
            raise UsageError(
                f"variant {self.name!r} names no rule for {fam.name} ({where}); "
                f"add '{fam.name}: <{'|'.join(fam.rules)}>' under rules in {self.source}"
            )
        return fam.default


# What names a variant wherever one is taken: a built-in name, a YAML file or a Variant.
VariantSpec = str | Path | Variant


def expand(specs: Iterable[_Spec]) -> list[_Spec | str]:
    """`specs` with "all" standing for the eight built-in variants, each once, in order."""
    return list(dict.fromkeys(v for spec in specs for v in (VARIANTS if spec == "all" else [spec])))


ANY = "+bp"  # a built-in name with it: the variant with `fallback: bp`, for any network


def load_variant(spec: VariantSpec) -> Variant:
    """A variant by built-in name or from a YAML file.

    Parameters
    ----------
    spec : str, pathlib.Path or Variant
        A name of `VARIANTS` (``desalinet``), ``NAME+bp`` (the same with ``fallback: bp``,
        which reverses any network), the path of a ``.yaml`` file, or a ``Variant``
        (returned as is).

    Returns
    -------
    Variant
        Built-in variants are parsed once per process.

    Raises
    ------
    reversenet.UsageError
        An unknown name (with the closest built-in ones) or an invalid file (its line
        and key named).

    Examples
    --------
    >>> import reversenet
    >>> reversenet.load_variant("salinet-center").rules
    {'ReLU': 'bp', 'MaxPool2d': 'center', 'LocalResponseNorm': 'bp'}
    >>> reversenet.load_variant("deconvnet+bp").fallback
    'bp'
    """
    if isinstance(spec, Variant):
        return spec
    spec = str(spec)
    if spec in VARIANTS:
        return _builtin(spec)
    if spec.endswith(ANY) and spec.removesuffix(ANY) in VARIANTS:
        return dataclasses.replace(_builtin(spec.removesuffix(ANY)), name=spec, fallback="bp")
    path = Path(spec)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise unknown("variant", spec, VARIANTS)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc  # a UnicodeDecodeError has no strerror
        raise ReversenetError(f"cannot read variant file {spec}: {why}") from exc
    return parse_variant(text, path.stem, spec)


@cache
def table() -> tuple[Table, str]:
    """The built-in variants and the rule each picks per layer family with a choice (†), and a
    line naming the families with a single rule."""
    choice = [f for f in FAMILIES.values() if len(f.rules) > 1]
    rows = [[name, *(v.rules.get(f.name, "-") for f in choice), v.description] for name, v in ((n, load_variant(n)) for n in VARIANTS)]
    single = ", ".join(f"{f.name}: {f.default.name}" for f in FAMILIES.values() if f.default)
    return Table("the built-in variants", ["variant", *(f"{f.name}†" for f in choice), "what it is"], rows), (
        f"Families with a single rule (always used): {single}"
    )


def _builtin(name: str) -> Variant:
    """A built-in variant, parsed once per process."""
    return parse_variant((_VARIANT_FILES / f"{name}.yaml").read_text(encoding="utf-8"), name, f"{name}.yaml")


def parse_variant(text: str, name: str, source: str) -> Variant:
    """Validate a variant's YAML text; errors name the file, line, key and choices."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark else ""
        raise UsageError(f"{source}:{line} invalid YAML: {getattr(exc, 'problem', None) or first_line(exc)}") from exc
    except RecursionError:
        raise UsageError(f"{source}: invalid YAML: nested too deeply") from None

    def fail(node: yaml.Node, message: str) -> UsageError:
        return UsageError(f"{source}: line {node.start_mark.line + 1}: {message}")

    def entries(node: yaml.MappingNode) -> list[tuple[str, yaml.Node, _Node]]:
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise fail(key, "keys must be plain names")
        return [(key.value, key, value) for key, value in node.value]

    if not isinstance(root, yaml.MappingNode):
        raise UsageError(f"{source}: a variant is a mapping with keys {', '.join(_KEYS)}")
    top: dict[str, tuple[yaml.Node, _Node]] = {}
    for word, key, value in entries(root):
        if word not in _KEYS:
            raise fail(key, f"unknown key {word!r}; allowed: {', '.join(_KEYS)}")
        top[word] = (key, value)
    if "rules" not in top:
        raise fail(root, "missing key 'rules' (a mapping of layer family to rule)")
    rules_node = top["rules"][1]
    if not isinstance(rules_node, yaml.MappingNode):
        raise fail(rules_node, "'rules' must map layer families to rule names")
    rules = {}
    for word, key, value in entries(rules_node):
        fam = FAMILIES.get(word)
        if fam is None:
            raise fail(key, f"unknown layer family {word!r}; allowed: {', '.join(FAMILIES)}")
        if not isinstance(value, yaml.ScalarNode) or value.value not in fam.rules:
            got = value.value if isinstance(value, yaml.ScalarNode) else "a " + value.id
            raise fail(value, f"{fam.name}: unknown rule {got!r}; allowed: {', '.join(fam.rules)}")
        rules[fam.name] = value.value
    scalars: dict[str, str | None] = {}
    for word in ("description", "fallback"):
        node = top[word][1] if word in top else None
        if node is not None and not isinstance(node, yaml.ScalarNode):
            raise fail(node, f"'{word}' must be a string")
        scalars[word] = node.value if node is not None else None
    fallback = scalars["fallback"] or "error"
    if fallback not in FALLBACKS:
        raise fail(top["fallback"][1], f"unknown fallback {fallback!r}; allowed: {', '.join(FALLBACKS)}")
    return Variant(name, rules, scalars["description"] or "", fallback, source)
