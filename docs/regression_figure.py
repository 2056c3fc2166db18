"""The README's picture of a regression summary: the example project (examples/regression/)
with DeSaliNet's ReLU rule changed, run with --reversenet-summary, the page as headless
Chromium shows it (Debian's chromium and chromium-driver).

    python docs/regression_figure.py [--out docs/regression-summary.png]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser import browser_or_skip  # the suite's headless Chromium, as its tests start it
from test_regression import CHANGED_RULE  # the change the suite's test makes, as it makes it

WAIT_FOR_IMAGES = """
const done = arguments[arguments.length - 1];
Promise.all(Array.from(document.images, (img) => img.decode().catch(() => null))).then(() => done());
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "regression-summary.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(ROOT / "examples" / "regression", project, ignore=shutil.ignore_patterns("__pycache__"))
        (project / "conftest.py").write_text(CHANGED_RULE)
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "last_feature_map",
                        "--reversenet-summary", "summary"], cwd=project, check=False, capture_output=True)  # fmt: skip
        driver = browser_or_skip()
        driver.set_window_size(820, 900)
        try:
            driver.get((project / "summary" / "index.html").as_uri())
            driver.execute_async_script(WAIT_FOR_IMAGES)
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(820, min(height + 40, 1200))
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    with Image.open(args.out) as shot:  # less the blank page below the last failure
        rgb = np.asarray(shot.convert("RGB"))
    rows = np.flatnonzero((rgb < 250).any(axis=(1, 2)))
    Image.fromarray(rgb[: rows[-1] + 24]).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
