"""Smoke test of benchmarks/speed.py on a narrow VGG-16 at 64×64: every row of its tables,
the exactness check, and one memory probe process (no timing or memory figure is asserted:
a smoke run's numbers mean nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("captum")

ROOT = Path(__file__).resolve().parents[1]
MODEL = ["--model", "benchmarks.tiny:narrow_vgg16", "--size", "64"]
ROWS = [
    "one picture at pool5", "one picture at fc8", "compare: 8 variants at pool5", "top-16 at conv3_3",
    "top-16 at conv4_3", "peak memory, one picture at pool5, batch 1", "bottleneck kept, pool5, batch 1",
    "captum GuidedBackprop", "captum Deconvolution", "Scaling", "128×128, batch 1",
]  # fmt: skip


def speed(*args: str) -> subprocess.CompletedProcess:
    """benchmarks/speed.py ARGS in a subprocess, importing this checkout's reversenet."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "benchmarks/speed.py", *args]
    result = subprocess.run(
        command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result


def test_quick_run_prints_every_row_and_passes_the_exactness_check(tmp_path: Path) -> None:
    markdown = tmp_path / "bench.md"
    stdout = speed("--quick", *MODEL, "--markdown", str(markdown)).stdout
    assert "Exactness check passed" in stdout
    written = markdown.read_text(encoding="utf-8")
    for row in ROWS:
        assert row in stdout and row in written, row


def test_memory_probe_reports_its_peak_rss() -> None:
    stdout = speed("--memory-probe", "reversenet desalinet", *MODEL).stdout
    assert json.loads(stdout.splitlines()[-1])["peak_rss"] > 0
