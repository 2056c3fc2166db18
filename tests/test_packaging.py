"""reversenet as users install it: a wheel built with `python -m build` holds every file the
package ships, and a non-editable install into a fresh virtual environment, run from
another folder, finds the built-in variants, the sample photo and the shipped configs."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "reversenet"
SHIPPED = ("configs", "data", "templates")  # folders of files that are not Python


def shipped_files() -> list[str]:
    """Every file in the source tree's data folders, as a wheel names it."""
    files = [p for folder in SHIPPED for p in (PACKAGE / folder).rglob("*") if p.is_file()]
    return sorted(str(p.relative_to(ROOT).as_posix()) for p in files if "__pycache__" not in p.parts)


def run(*command: str | Path, cwd: Path, env: dict | None = None) -> str:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend (setuptools) from this environment, no download
    # not from the checkout: its build/ folder (benchmark caches) would shadow the `build` package
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, ROOT, cwd=out)
    (found,) = out.glob("reversenet-*.whl")
    return found


def test_the_wheel_holds_every_shipped_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in shipped_files() if f not in names]
    assert shipped_files() and not missing, f"not in the wheel: {missing}"
    assert "reversenet/__init__.py" in names and "reversenet/core/rules/relu.py" in names


def test_imports_under_python_OO():
    # -OO strips docstrings: no code may build on them (AvgPoolTranspose's __doc__ once did)
    run(sys.executable, "-OO", "-c", "import reversenet", cwd=ROOT)


def test_a_non_editable_install_works_from_another_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    # torch and the other dependencies from this environment (installing them is minutes);
    # a .pth line only extends sys.path, so this environment's editable reversenet stays out
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # not this environment's PYTHONPATH: a checkout on it (with its reversenet.egg-info) is
    # an installed reversenet to pip, which would then skip the wheel
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    run(python, "-m", "pip", "install", "--no-deps", "--quiet", wheel, cwd=tmp_path, env=env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = (
        "import reversenet, reversenet.inputs.images as i, reversenet.output.config as c;"
        "from pathlib import Path;"
        "assert 'site-packages' in reversenet.__file__, reversenet.__file__;"
        "assert [reversenet.load_variant(v).name for v in reversenet.VARIANTS] == list(reversenet.VARIANTS);"
        "assert i.sample_image().is_file();"
        "print(sorted(p.name for p in (Path(reversenet.__file__).parent / 'configs' / 'experiments').glob('*.yaml')))"
    )
    shipped = sorted(p.name for p in (PACKAGE / "configs" / "experiments").glob("*.yaml"))
    assert run(python, "-c", check, cwd=elsewhere, env=env).strip() == str(shipped)
    listing = run(venv / "bin" / "reversenet", "variants", cwd=elsewhere, env=env)
    assert all(name in listing for name in ("deconvnet", "salinet", "desalinet-center"))
    # a shipped experiment runs by name, as the README shows (dry run: nothing computed)
    run(venv / "bin" / "reversenet", "run", "fig3-eight-variants", "--dry-run", "--set", "weights=random", cwd=elsewhere, env=env)
