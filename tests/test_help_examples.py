"""Every example in `reversenet COMMAND --help` runs as shown, in a folder holding the
files the examples name (photos/, masks/, my.yaml, …). Offline, torchvision's DEFAULT
weights are replaced by the architecture's random ones: the examples' options, files and
outputs are what is tested. The torchrun example is tests/test_run_scale.py's."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from reversenet.cli import cli
from reversenet.inputs import models
from reversenet.inputs.images import sample_image

ROOT = Path(__file__).resolve().parents[1]


def examples() -> list[tuple[str, str]]:
    """(command, example line) for every line starting with `reversenet` under Examples."""
    found = []
    for name, command in sorted(cli.commands.items()):
        lines = (command.help or "").splitlines()
        start = next((i for i, line in enumerate(lines) if line.strip().rstrip(":") in ("Example", "Examples")), None)
        assert start is not None, f"`reversenet {name} --help` shows no example"
        found += [(name, line.strip()) for line in lines[start + 1 :] if line.strip().startswith("reversenet ")]
    return found


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """photos/, more/, photo.jpg, masks/, imagenet/, my.yaml, resnet18.pth, out/ and
    tests/golden/vgg16, a.png and b.png."""
    root = tmp_path_factory.mktemp("examples")
    with Image.open(sample_image()) as photo:
        small = photo.resize((160, 120))
    for path in ("photos/cat.jpg", "photos/dog.jpg", "more/x.jpg", "photo.jpg", "imagenet/images/cat.jpg"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        small.rotate(len(path)).save(root / path)
    mask = np.zeros((120, 160), np.uint8)
    mask[30:90, 40:120] = 255
    for path in ("masks/cat.png", "masks/dog.png", "imagenet/masks/cat.png"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(root / path)
    (root / "my.yaml").write_text(
        "model: alexnet\nweights: random\nlayers: [pool5]\nvariants: [desalinet]\nimages: [photos/]\nout: my-out\n"
    )
    torch.save(torchvision.models.resnet18().state_dict(), root / "resnet18.pth")
    shutil.copytree(ROOT / "tests/golden/vgg16", root / "tests/golden/vgg16")
    shutil.copytree(ROOT / "tests/golden/vgg16", root / "out")
    first = min((root / "out").glob("*.png"))
    shutil.copy(first, root / "a.png")
    shutil.copy(first, root / "b.png")
    return root


@pytest.mark.parametrize("command, example", examples(), ids=[f"{c}-{i}" for i, (c, _) in enumerate(examples())])
def test_every_help_example_runs_as_shown(command, example, folder, run, monkeypatch):
    monkeypatch.chdir(folder)
    monkeypatch.setattr(models, "_download", lambda name, weights: torchvision.models.get_model(name).state_dict())
    served = []
    if command == "explore":  # the server answers one request, then the example ends (it would serve on)
        import webbrowser

        import uvicorn
        from fastapi.testclient import TestClient

        def serve(app, host: str, port: int, log_level: str) -> None:
            served.append(TestClient(app, base_url=f"http://{host}").get("/api/state").status_code)

        monkeypatch.setattr(uvicorn, "run", serve)
        monkeypatch.setattr(webbrowser, "open", lambda url: True)
    code, _, err = run(*shlex.split(example)[1:])
    assert code == 0, f"{example}: {err}"
    assert served == ([200] if command == "explore" else []), err
