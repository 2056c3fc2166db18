"""The README's Python blocks run as shown, in order, in one namespace (as a reader pastes
them into one session), in a folder that holds what they name as the user's own."""

import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

import reversenet

README = Path(__file__).parent.parent / "README.md"


def test_the_readmes_python_blocks_run(monkeypatch, tmp_path):
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    for folder in ("photos", "masks"):  # "your folders": a photo and its mask
        Path(folder).mkdir()
    shutil.copy(reversenet.sample_image(), "photos/cat.jpg")
    truth = np.zeros((300, 451), np.uint8)
    truth[40:290, 60:400] = 255
    Image.fromarray(truth).save("masks/cat.png")
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - running the README is the test
    assert namespace["images"].shape == (5, 1, 3, 224, 224)
