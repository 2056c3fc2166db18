"""The README's picture of `reversenet explore`: VGG-16 (random weights) on the sample photo,
conv4_3, its strongest channel's strongest neuron clicked, as headless Chromium shows the page.

    python docs/explore_figure.py [--out docs/explore.png]
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import reversenet
from reversenet.apps.explore import Explorer
from reversenet.apps.explore_web import app
from reversenet.inputs.spec import NetworkSpec

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "explore.png")
    args = parser.parse_args()
    spec = NetworkSpec("vgg16", "random")
    explorer = Explorer(spec.load(), spec, [reversenet.sample_image()])
    server = uvicorn.Server(uvicorn.Config(app(explorer, token="t", hosts=["127.0.0.1"], out=Path("explore-out")),
                                           host="127.0.0.1", port=0, log_level="warning"))  # fmt: skip
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1540,760"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/?layer=conv4_3")
        WebDriverWait(driver, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid figure")) == 64)
        driver.find_elements(By.CSS_SELECTOR, "#grid figure")[0].click()
        WebDriverWait(driver, 120).until(lambda d: d.find_element(By.ID, "status").text.startswith("conv4_3 · neuron:"))
        time.sleep(0.5)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
        server.should_exit = True
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
