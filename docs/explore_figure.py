"""The README's picture of `reversenet explore`: VGG-16 (random weights) on the sample photo,
conv4_3, its strongest channel's strongest neuron clicked, as headless Chromium shows the page.

    python docs/explore_figure.py [--out docs/explore.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import reversenet
from reversenet.apps.explore import Explorer
from reversenet.apps.explore_web import app, served
from reversenet.inputs.spec import NetworkSpec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser import browser_or_skip  # the suite's headless Chromium, as its tests start it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "explore.png")
    args = parser.parse_args()
    spec = NetworkSpec("vgg16", "random")
    explorer = Explorer(spec.load(), spec, [reversenet.sample_image()])
    with served(app(explorer, token="t", hosts=["127.0.0.1"], out=Path("explore-out"))) as base:
        driver = browser_or_skip()
        try:
            driver.set_window_size(1540, 760)
            driver.get(f"{base}/?layer=conv4_3")
            WebDriverWait(driver, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid figure")) == 64)
            driver.find_elements(By.CSS_SELECTOR, "#grid figure")[0].click()
            WebDriverWait(driver, 120).until(lambda d: d.find_element(By.ID, "status").text.startswith("conv4_3 · neuron:"))
            time.sleep(0.5)
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
