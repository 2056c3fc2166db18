"""Pages in a real browser: Debian's headless Chromium through Selenium (the report's and the
regression summary's tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium and chromium-driver packages
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def browser_or_skip():
    """A headless Chromium (Selenium), or a skip; under CI (env CI set) a missing browser fails."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium package")
    if missing:
        why = f"the browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if "CI" in os.environ:
            pytest.fail(why + "; CI is set, so this is a failure, not a skip")
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager (which would go to the network) is never run.
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


# Scroll each image into view in turn (so that loading="lazy" ones load) and wait until it has
# loaded or failed (`complete`: a lazy image not yet fetched is not complete); return each
# one's src and naturalWidth (0: not loaded).
LOAD_IMAGES = """
const done = arguments[arguments.length - 1];
const settle = (img) => new Promise((resolve) => {
  const start = performance.now();
  img.scrollIntoView({ block: "center" });
  (function poll() {
    if (img.complete || performance.now() - start > 4000) return resolve();
    setTimeout(poll, 5);
  })();
});
(async () => {
  for (const img of document.images) await settle(img);
  done(Array.from(document.images, (img) => [img.getAttribute("src"), img.naturalWidth]));
})();
"""


def open_page(driver, path: Path):
    """Load a page; return its images' (src, naturalWidth) and its SEVERE console entries."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(path.as_uri())
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")
    images = driver.execute_async_script(LOAD_IMAGES)
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return images, severe
