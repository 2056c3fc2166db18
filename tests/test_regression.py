"""The pytest plugin (reversenet/regression.py), as a user's project meets it: a copy of
examples/regression/ in a temporary folder, run by pytest in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from browser import open_page

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "regression"
# The ReLU hybrid rule (DeSaliNet's) made bp: a changed rule, as a refactor could make it.
CHANGED_RULE = '''
import pytest
from reversenet.core.rules import FAMILIES


@pytest.fixture(autouse=True)
def hybrid_made_bp(monkeypatch):
    hybrid = type(FAMILIES["ReLU"].rules["hybrid"])
    monkeypatch.setattr(hybrid, "reverse", lambda self, relu, grad, mask: grad * mask)
    monkeypatch.setattr(hybrid, "reverse_", lambda self, relu, grad, mask: mask.mask_(grad))
'''


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the example project, baselines and all."""
    shutil.copytree(EXAMPLE, tmp_path / "project", ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return tmp_path / "project"


def pytest_in(folder: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args], cwd=folder,
                          capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})},
                          check=False)  # fmt: skip


def test_the_example_passes_against_its_committed_baselines(project):
    done = pytest_in(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_another_kernel_and_thread_count_pass(project):
    """The baselines were written on this machine's fastest kernels (AVX-512 here) with 2
    threads; the plain kernels (no vector instructions) and AVX2, with 1 and 3 threads, round
    differently and still pass."""
    for capability, threads in (("default", "1"), ("avx2", "3")):
        done = pytest_in(project, env={"ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": threads})
        assert done.returncode == 0, f"{capability}, {threads} threads: " + done.stdout + done.stderr


def test_a_changed_rule_fails_naming_the_pictures_and_the_summary_shows_them(project, browser):
    (project / "conftest.py").write_text(CHANGED_RULE)
    done = pytest_in(project, "--reversenet-summary", "summary")
    assert done.returncode == 1, done.stdout
    out = done.stdout
    assert "3 of 3 pictures" not in out and "1 of 3 pictures differ" in out  # DeSaliNet only; DeConvNet, SaliNet kept
    assert "chelsea_Sequential_7_desalinet_full.png: " in out and "% of the pixels shown changed" in out
    assert "2 of 2 pictures differ" in out  # topk:2 of DeSaliNet at the second pooling
    assert "the weights" not in out  # pixels alone changed: nothing else is blamed
    page = project / "summary" / "index.html"
    html = page.read_text()
    assert html.count('class="failure"') == 3 and "desalinet" in html and "deconvnet" not in html
    images, severe = open_page(browser, page)
    assert len(images) == 9 and all(width > 0 for _, width in images), images  # baseline, result, difference
    assert severe == [], severe


def test_changed_weights_are_reported_as_such(project):
    test = project / "test_tiny.py"
    test.write_text(test.read_text().replace("tiny_cnn()", "tiny_cnn(seed=1)"))
    done = pytest_in(project, "--reversenet-summary", "summary")
    assert done.returncode == 1
    assert "the weights (sha256) changed: " in done.stdout, done.stdout
    html = (project / "summary" / "index.html").read_text()
    assert "the weights (sha256)" in html


def test_a_missing_baseline_fails_with_the_command_that_writes_it(project):
    shutil.rmtree(project / "reversenet_baselines" / "test_tiny" / "test_the_variants_at_the_last_feature_map")
    done = pytest_in(project)
    assert done.returncode == 1
    assert "pytest 'test_tiny.py::test_the_variants_at_the_last_feature_map' --reversenet-generate" in done.stdout
    written = pytest_in(project, "--reversenet-generate")
    assert written.returncode == 0 and "3 new, 0 changed, 2 unchanged" in written.stdout, written.stdout
    assert pytest_in(project).returncode == 0


def test_generate_says_which_baselines_changed(project):
    (project / "conftest.py").write_text(CHANGED_RULE)
    done = pytest_in(project, "--reversenet-generate")
    assert done.returncode == 0, done.stdout
    assert "0 new, 3 changed, 2 unchanged" in done.stdout
    assert "changed: " in done.stdout and "desalinet" in done.stdout.split("changed: ", 1)[1]
    assert pytest_in(project).returncode == 0  # the refreshed baselines are the new truth
    manifest = json.loads(next((project / "reversenet_baselines").rglob("manifest.json")).read_text())
    assert all(r["photo"] == "chelsea.jpg" and len(r["weights_sha256"]) == 64 for r in manifest.values())


def test_the_tolerance_is_set_per_call_and_per_project(project):
    (project / "conftest.py").write_text(CHANGED_RULE)
    (project / "pytest.ini").write_text("[pytest]\nreversenet_share = 1.0\n")  # any share of pixels may change
    assert pytest_in(project).returncode == 0
    (project / "pytest.ini").write_text("[pytest]\n")
    test = project / "test_tiny.py"
    test.write_text(test.read_text().replace('select="full")', 'select="full", tolerance=255)'))
    done = pytest_in(project)
    assert "1 failed, 1 passed" in done.stdout, done.stdout  # the call with tolerance=255 passes


def test_under_xdist_the_summary_gathers_every_worker(project):
    pytest.importorskip("xdist")
    (project / "conftest.py").write_text(CHANGED_RULE)
    done = pytest_in(project, "-n", "2", "--reversenet-summary", "summary")
    assert done.returncode == 1 and "2 failed" in done.stdout, done.stdout
    html = (project / "summary" / "index.html").read_text()
    assert html.count('class="failure"') == 3 and html.count("<h2>") == 2
    assert "reversenet: 3 pictures differ" in done.stdout
    generated = pytest_in(project, "-n", "2", "--reversenet-generate")
    assert "0 new, 3 changed, 2 unchanged" in generated.stdout, generated.stdout


def test_matching_pictures_of_another_model_say_so(project):
    """The pixels pass, but the baselines were made with other weights: a warning says it."""
    manifest = project / "reversenet_baselines/test_tiny/test_the_variants_at_the_last_feature_map/manifest.json"
    records = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({f: {**r, "weights_sha256": "0" * 64} for f, r in records.items()}))
    done = pytest_in(project)
    assert done.returncode == 0 and "the weights (sha256): 000000000000… -> " in done.stdout, done.stdout
