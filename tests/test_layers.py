"""The house's layers: a module imports only its own layer and the ones below; no import
cycles; and the command line's help and the package's import load only what they need."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reversenet"
# Lowest first. Base modules are torch-free; the core is the reversed network (torch and PyYAML
# only); inputs are photos and networks; output is the output pipeline and batch runs; apps are
# built on them; the public interop modules and the command line are on top.
LAYERS = [
    ("base", ["errors.py", "choices.py", "tables.py"]),
    ("core", ["core/"]),
    ("inputs", ["inputs/"]),
    ("output", ["output/"]),
    ("apps", ["apps/"]),
    ("interop", ["diff.py", "captum.py", "quantus.py", "regression.py"]),
    ("cli", ["cli/", "__main__.py"]),
    ("package", ["__init__.py"]),
]


def layer_of(module: str) -> int:
    """The layer of a module named relative to the package (``core/graph.py``, ``core``)."""
    for rank, (_, members) in enumerate(LAYERS):
        if any(module == m or module.startswith(m) or f"{module}/" == m for m in members):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def modules() -> dict[str, Path]:
    return {p.relative_to(PACKAGE).as_posix(): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The package modules `path` imports (paths relative to the package, ``core/graph.py``
    or a package's ``core/__init__.py``), at any depth of the file unless `top_level_only`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = path.relative_to(PACKAGE).parent.parts
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # `if TYPE_CHECKING:` blocks too: a cycle for the type checker is one
        nodes = [n for node in nodes for n in ([node, *node.body] if isinstance(node, ast.If) else [node])]
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(here[: len(here) - node.level + 1])
            elif node.module and node.module.split(".")[0] == "reversenet":
                base = []
            else:
                continue
            parts = [*base, *(node.module or "").split(".")] if node.module else base
            parts = [p for p in parts if p and p != "reversenet"] if not node.level else [p for p in parts if p]
            for alias in node.names:
                found.add(_resolve([*parts, alias.name]) or _resolve(parts) or "__init__.py")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "reversenet":
                    found.add(_resolve(alias.name.split(".")[1:]) or "__init__.py")
    return found


def _resolve(parts: list[str]) -> str | None:
    """The file of a module path (or None: a name inside a module)."""
    path = PACKAGE.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py").relative_to(PACKAGE).as_posix()
    if (path / "__init__.py").is_file():
        return (path / "__init__.py").relative_to(PACKAGE).as_posix()
    return None


def test_every_module_has_a_layer_and_imports_none_above_it():
    upward = []
    for name, path in modules().items():
        for target in imports(path):
            if target.endswith("__init__.py") and target != "__init__.py":
                target_layer = layer_of(target.removesuffix("__init__.py"))
            else:
                target_layer = layer_of(target)
            if target != "__init__.py" and target_layer > layer_of(name):
                upward.append(f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[target_layer][0]})")
    assert not upward, "\n".join(upward)


def test_the_layering_test_sees_an_upward_import(tmp_path):
    """The check above fails on a core module that imports an application (it is not vacuous)."""
    bad = PACKAGE / "core" / "_upward_probe.py"
    bad.write_text("from ..apps.segmentation import segment\n")
    try:
        found = imports(bad)
        assert "apps/segmentation.py" in found and layer_of("apps/segmentation.py") > layer_of("core/_upward_probe.py")
    finally:
        bad.unlink()


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """The import cycles of a graph (module -> modules it imports), one line each."""
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    found = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, set())):
            if state.get(target) == 1:
                found.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a -> b -> c -> a"]  # the check finds one
    graph = {name: {t for t in imports(path, top_level_only=True) if t != "__init__.py"} for name, path in modules().items()}
    assert not cycles(graph), "\n".join(cycles(graph))


def loaded(code: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after `code`."""
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
    return {m.split(".")[0] for m in json.loads(out.stdout.splitlines()[-1])}


HEAVY = {"cv2", "scipy", "skimage", "matplotlib", "jinja2", "fastapi", "uvicorn", "captum", "quantus"}


@pytest.mark.parametrize("command", ["", "visualize", "run", "compare", "segment", "evaluate", "sanity", "explore",
                                     "variants", "layers", "inspect", "diff"])  # fmt: skip
def test_help_imports_no_torch(command):
    argv = ["reversenet", *filter(None, [command]), "--help"]
    code = (f"import sys; sys.argv = {argv!r}\nfrom reversenet.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass")  # fmt: skip
    found = loaded(code)
    assert not found & {"torch", "torchvision", "numpy", "PIL", *HEAVY}, found & {"torch", "torchvision", "numpy", "PIL", *HEAVY}


def test_import_reversenet_and_the_core_load_no_application_stack():
    assert not loaded("import reversenet") & {"torch", *HEAVY}
    core = loaded("import reversenet\nreversenet.Recording, reversenet.reverse, reversenet.load_variant, reversenet.parse_selector")
    assert "torch" in core and not core & HEAVY, core & HEAVY
    assert not loaded("import reversenet.core.recording, reversenet.core.reverse, reversenet.core.variants, reversenet.core.selectors") & {"torchvision", *HEAVY}
