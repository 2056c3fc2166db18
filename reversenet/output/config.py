"""Run configs: a YAML file (or a dict) naming what `reversenet run` computes.

Every key is checked before any work; an error names the file, the line and the key, and
suggests close names for a typo. ``--set key=value`` overrides a key, the value read as YAML.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..choices import RENDERERS
from ..errors import UsageError
from ..inputs.spec import DEVICE, DEVICES, MODEL, SEED, WEIGHTS

LEAD = ("input", "fourier", "phase")  # photo-level pictures (Fig. 7)
TABLES = ("selectivity",)
MONTAGE_KEYS = ("rows", "columns", "lead", "max_photos")


class Invalid(ValueError):
    pass


def _strings(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
        raise Invalid("must be a name or a non-empty list of names")
    return [str(v) for v in items]


def _choices(options: tuple[str, ...], empty: bool = False) -> Callable[[Any], list[str]]:
    def check(value: Any) -> list[str]:
        items = [] if empty and value in (None, []) else _strings(value)
        for item in items:
            if item not in options:
                close = difflib.get_close_matches(item, options, n=1)
                raise Invalid(f"unknown {item!r}; " + (f"did you mean {close[0]}?" if close else f"choose from {', '.join(options)}"))
        return items

    return check


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(f"must be one of {', '.join(options)}")
        return _choices(options)(value)[0]

    return check


def _int(low: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise Invalid(f"must be a whole number ≥ {low}")
        return value

    return check


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or value == "":
        raise Invalid("must be a non-empty string")
    return str(value)


def _folder(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        shown = f"; write out: '{value}' for a folder of that name" if isinstance(value, (int, float)) else ""
        raise Invalid(f"must be a folder name (text){shown}")
    return value


def _montages(value: Any) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise Invalid("must be a list of {rows: AXES, columns: AXES}")
    out = []
    for i, m in enumerate(value):
        unknown = [k for k in m if k not in MONTAGE_KEYS]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), MONTAGE_KEYS, n=1)
            raise Invalid(f"item {i + 1}: unknown key {unknown[0]!r}" + (f"; did you mean {close[0]}?" if close else ""))
        if "rows" not in m or "columns" not in m:
            raise Invalid(f"item {i + 1}: needs rows and columns")
        out.append({"rows": _strings(m["rows"]), "columns": _strings(m["columns"]),
                    "lead": _choices(LEAD, empty=True)(m.get("lead")),
                    "max_photos": _int(1)(m.get("max_photos", 8))})  # fmt: skip
    return out


# key: (default, check); a default of None means the run's own default (see RunConfig).
KEYS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "images": (None, _strings),
    "model": (MODEL, _strings),
    "weights": (WEIGHTS, _string),
    "seed": (SEED, _int(0)),
    "layers": (None, _strings),
    "variants": (["desalinet"], _strings),
    "select": (["max"], _strings),
    "render": (["paper"], _choices(RENDERERS)),
    "raw": (False, _bool),
    "lead": ([], _choices(LEAD, empty=True)),
    "batch_size": (8, _int(1)),
    "workers": (2, _int(0)),
    "device": (DEVICE, _one_of(DEVICES)),
    "out": (None, _folder),
    "montages": ([], _montages),
    "tables": ([], _choices(TABLES, empty=True)),
    "report": (True, _bool),
}
@dataclass
class RunConfig:
    """A checked config. `where` gives each key's place (``file:line``) for error messages."""

    values: dict[str, Any]
    source: str = "config"
    lines: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def where(self, key: str) -> str:
        return self.lines.get(key, self.source)

    @contextmanager
    def blame(self, key: str) -> Iterator[None]:
        """Prefix a UsageError raised inside with the key's file, line and name."""
        try:
            yield
        except UsageError as exc:
            raise UsageError(_at(self.where(key), key, str(exc))) from exc

    def shown(self) -> str:
        """The config as YAML, as the run used it (without `out`: the folder it is in)."""
        return yaml.safe_dump({k: v for k, v in self.values.items() if k != "out"}, sort_keys=False, allow_unicode=True)


def _at(where: str, key: str, message: str) -> str:
    """'fig4.yaml:7: layers: message'; '--set layers: message'; the message alone without a source."""
    if not where:
        return message
    return f"{where}: {message}" if where.startswith("-") else f"{where}: {key}: {message}"


def load_config(
    config: str | Path | Mapping[str, Any] | RunConfig,
    overrides: Mapping[str, Any] | None = None,
    *,
    source: str = "config",
) -> RunConfig:
    """A config from a YAML file or a dict, with `overrides` (key -> value) applied, checked.
    `source` names a dict in error messages ("" for none: the command line's own options)."""
    if isinstance(config, RunConfig):
        return load_config({**config.values, **overrides}, source=config.source) if overrides else config
    lines: dict[str, str] = {}
    if isinstance(config, Mapping):
        raw = {k: v for k, v in config.items() if v is not None}
    else:
        raw, source, lines = _read(Path(config))
    for key, value in (overrides or {}).items():
        raw[key] = value
        lines[key] = f"--set {key}"
    values = {}
    for key in raw:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), list(KEYS), n=1)
            hint = f"did you mean {close[0]}?" if close else f"the keys are {', '.join(KEYS)}"
            where = lines.get(key, source)
            raise UsageError(f"{where}: unknown key {key!r}; {hint}" if where else f"unknown key {key!r}; {hint}")
    for key, (default, check) in KEYS.items():
        if key not in raw:
            values[key] = default
            continue
        try:
            values[key] = check(raw[key])
        except Invalid as exc:
            raise UsageError(_at(lines.get(key, source), key, str(exc))) from None
    return RunConfig(values, source, lines)


def experiments() -> list[str]:
    """The paper's experiments shipped as configs, runnable by name: ``reversenet run fig3-eight-variants``."""
    return sorted(p.name.removesuffix(".yaml") for p in resources.files("reversenet.configs.experiments").iterdir()
                  if p.name.endswith(".yaml"))  # fmt: skip


def _read(path: Path) -> tuple[dict, str, dict[str, str]]:
    if not path.exists() and str(path) in experiments():
        path = Path(str(resources.files("reversenet.configs.experiments") / f"{path}.yaml"))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = f" (the shipped experiments: {', '.join(experiments())})" if path.suffix not in (".yaml", ".yml") else ""
        raise UsageError(f"no such config file: {path}{hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read config {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UsageError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if raw is None:
        raise UsageError(f"{path}: the config is empty; it needs at least images or model")
    if not isinstance(raw, dict) or not isinstance(root, yaml.MappingNode):
        raise UsageError(f"{path}:1: a config is a mapping of keys (images, model, layers, ...) to values")
    lines = {k.value: f"{path}:{k.start_mark.line + 1}" for k, _ in root.value if isinstance(k, yaml.ScalarNode)}
    return raw, str(path), lines


def parse_set(items: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs from the command line, each value read as YAML (``[a, b]``, ``4``)."""
    overrides = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--set {item!r}: write it as key=value, e.g. --set weights=random")
        try:
            overrides[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            raise UsageError(f"--set {item!r}: the value is not valid YAML") from None
    return overrides


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (I from 0 to N-1) as (I, N)."""
    i, slash, n = text.partition("/")
    if not (slash and i.isdigit() and n.isdigit() and 0 <= int(i) < int(n)):
        raise UsageError(f"--shard {text}: write I/N with 0 ≤ I < N, e.g. 0/4 … 3/4")
    return int(i), int(n)
