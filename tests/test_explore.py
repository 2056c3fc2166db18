"""`reversenet explore`: the API (FastAPI's test client), hostile requests, and the page in
headless Chromium against a live server, its pictures equal to `reversenet visualize`'s."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import numpy as np
import pytest
from browser import open_page
from PIL import Image

import reversenet
from reversenet.choices import VARIANTS

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient

from reversenet.apps.explore import UPLOAD_BYTES, Explorer
from reversenet.apps.explore_web import app, served
from reversenet.inputs.spec import NetworkSpec

SPEC = NetworkSpec("alexnet", "random")
NEURON = "neuron:3,5,5"


def decoded(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


@pytest.fixture(scope="module")
def explorer() -> Explorer:
    return Explorer(SPEC.load(), SPEC, [reversenet.sample_image()])


@pytest.fixture
def client(explorer, tmp_path) -> TestClient:
    return TestClient(app(explorer, token="secret", hosts=["testserver", "127.0.0.1"], out=tmp_path / "saved"))


def test_a_click_gives_the_pictures_visualize_writes(client, run, tmp_path):
    state = client.get("/api/state").json()
    assert state["model"] == "alexnet" and state["default_layer"] == "pool5" and state["photos"][0]["id"] == "chelsea"
    assert {"conv5", "pool5", "fc8"} <= {layer["name"] for layer in state["layers"]}  # the names -l takes
    shown = client.get("/api/reverse", params={"photo": "chelsea", "layer": "conv5", "select": NEURON}).json()
    assert set(shown["pictures"]) == set(VARIANTS) and len(shown["box"]) == 4
    code, _, err = run("visualize", "-m", "alexnet", "-w", "random", "-l", "conv5", "-s", NEURON, "-v", "all", "-o", "v")
    assert code == 0, err
    for variant, uri in shown["pictures"].items():
        written = np.asarray(Image.open(tmp_path / "v" / f"chelsea_alexnet_conv5_{variant}_neuron-3-5-5.png").convert("RGB"))
        assert np.array_equal(decoded(uri), written), variant  # pixel for pixel


def test_channels_are_sorted_by_strength_and_paged(client):
    page = client.get("/api/channels", params={"photo": "chelsea", "layer": "conv5", "page": 1}).json()
    assert page["total"] == 256 and page["pages"] == 4 and len(page["channels"]) == 64
    strengths = [c["strength"] for c in page["channels"]]
    assert strengths == sorted(strengths, reverse=True)
    first = client.get("/api/channels", params={"photo": "chelsea", "layer": "conv5"}).json()["channels"]
    assert first[-1]["strength"] >= strengths[0]


def test_save_writes_as_visualize_names_them(client, tmp_path):
    files = client.post("/api/save", params={"token": "secret", "photo": "chelsea", "layer": "conv5",
                                             "select": NEURON, "variants": "desalinet"}).json()["files"]  # fmt: skip
    assert [Path(f).name for f in files] == ["chelsea_alexnet_conv5_desalinet_neuron-3-5-5.png"]
    assert (tmp_path / "saved" / "manifest.jsonl").is_file()


@pytest.mark.parametrize(
    "method, path, params, body, headers, status, reason",
    [
        ("get", "/api/state", {}, None, {"host": "evil.example"}, 400, ""),  # DNS rebinding
        ("get", "/api/photo", {"photo": "../../../etc/passwd"}, None, {}, 404, "no photo"),
        ("get", "/api/photo", {"photo": "/etc/passwd"}, None, {}, 404, "no photo"),
        ("get", "/api/reverse", {"photo": "chelsea", "layer": "conv9"}, None, {}, 400, "unknown layer"),
        ("get", "/api/reverse", {"photo": "chelsea", "layer": "conv5", "variants": "evil"}, None, {}, 400, "unknown variant"),
        ("get", "/api/reverse", {"photo": "chelsea", "layer": "conv5", "select": "neuron:999,0,0"}, None, {}, 400, "out of range"),
        ("get", "/api/reverse", {"photo": "chelsea", "layer": "conv5", "render": "x"}, None, {}, 400, "unknown renderer"),
        ("post", "/api/upload", {}, b"\x89PNG", {}, 403, "token"),
        ("post", "/api/upload", {"token": "wrong"}, b"\x89PNG", {}, 403, "token"),
        ("post", "/api/upload", {"token": "secret"}, b"not an image at all", {}, 400, "not an image"),
        ("post", "/api/upload", {"token": "secret"}, b"\0" * (UPLOAD_BYTES + 1), {}, 413, "larger than"),
        ("post", "/api/save", {"photo": "chelsea", "layer": "conv5"}, None, {}, 403, "token"),
        ("post", "/api/save", {"token": "secret", "photo": "../x", "layer": "conv5"}, None, {}, 404, "no photo"),
    ],
)
def test_hostile_requests_get_a_4xx_with_one_line_and_the_server_keeps_serving(
    client, method, path, params, body, headers, status, reason
):
    response = getattr(client, method)(path, params=params, headers=headers, **({"content": body} if body else {}))
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text and "\n" not in response.text.strip()
    if reason:
        assert reason in response.json()["detail"]
    assert client.get("/api/state").status_code == 200


def test_an_upload_of_a_decompression_bomb_is_refused(client):
    buffer = io.BytesIO()
    Image.new("L", (9000, 9000)).save(buffer, format="PNG")  # 81 million pixels in a few kB
    response = client.post("/api/upload", params={"token": "secret"}, content=buffer.getvalue())
    assert response.status_code == 400 and "pixels" in response.json()["detail"]


def test_an_upload_becomes_a_photo(client):
    buffer = io.BytesIO()
    Image.open(reversenet.sample_image()).save(buffer, format="PNG")
    made = client.post("/api/upload", params={"token": "secret", "name": "../../my cat.png"}, content=buffer.getvalue())
    assert made.status_code == 200
    photo = made.json()["id"]
    assert ".." not in photo and "/" not in photo
    assert client.get("/api/reverse", params={"photo": photo, "layer": "pool5"}).status_code == 200


@pytest.fixture
def server(explorer, tmp_path):
    """The app served by uvicorn on a free loopback port, in a thread."""
    with served(app(explorer, token="secret", hosts=["127.0.0.1"], out=tmp_path / "saved")) as base:
        yield base


@pytest.mark.browser
def test_clicking_a_unit_in_the_browser_shows_the_eight_pictures(server, browser, run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{server}/?token=secret&layer=conv5")
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid figure")) == 64)
    first = browser.find_elements(By.CSS_SELECTOR, "#grid figure")[0]
    channel = int(first.get_attribute("data-channel"))
    first.click()
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "select").get_attribute("value").startswith(f"neuron:{channel},"))
    select = browser.find_element(By.ID, "select").get_attribute("value")
    pictures = lambda d: [img.get_attribute("src") or "" for img in d.find_elements(By.CSS_SELECTOR, "#pictures img")]
    WebDriverWait(browser, 60).until(lambda d: f"select={select.replace(':', '%3A').replace(',', '%2C')}" in d.current_url
                                     and all(src.startswith("data:image/png") for src in pictures(d)))  # fmt: skip
    code, _, err = run("visualize", "-m", "alexnet", "-w", "random", "-l", "conv5", "-s", select, "-v", "all", "-o", "v")
    assert code == 0, err
    tag = select.replace(":", "-").replace(",", "-")
    for img in browser.find_elements(By.CSS_SELECTOR, "#pictures img"):
        variant = img.get_attribute("data-variant")
        written = np.asarray(Image.open(tmp_path / "v" / f"chelsea_alexnet_conv5_{variant}_{tag}.png").convert("RGB"))
        assert np.array_equal(decoded(img.get_attribute("src")), written), variant
    assert browser.find_element(By.ID, "box").is_displayed()
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe
    assert open_page  # the report's helper module, shared (tests/browser.py)


def test_the_command_serves_on_loopback_with_a_token(tmp_path):
    import json
    import re
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    process = subprocess.Popen([sys.executable, "-m", "reversenet", "explore", "-m", "alexnet", "-w", "random"],
                               cwd=tmp_path, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = process.stderr.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=([\w-]{16,})", line)
        assert found, line
        deadline = time.monotonic() + 60
        while True:  # the URL is printed as the server starts listening
            try:
                with urllib.request.urlopen(found.group(1) + "/api/state", timeout=60) as response:
                    assert json.loads(response.read())["model"] == "alexnet"
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        with urllib.request.urlopen(found.group(0), timeout=60) as response:
            assert b"reversenet explore" in response.read()
    finally:
        process.terminate()
        process.wait(timeout=30)
