import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/reference.py, the oracle


@pytest.fixture
def run(monkeypatch, capsys, tmp_path):
    """Run `reversenet ARGS` in-process, in tmp_path; return (exit status, stdout, stderr)."""
    from reversenet.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it: restored after

    def invoke(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["reversenet", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for a module's tests (tests/browser.py)."""
    from browser import browser_or_skip

    driver = browser_or_skip()
    driver.set_page_load_timeout(10)
    driver.set_script_timeout(10)
    yield driver
    driver.quit()
