"""Reading photos (and hashing input files)."""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from ..errors import ReversenetError, UsageError, first_line

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


def sample_image() -> Path:
    """The bundled sample photo: Chelsea the cat (scikit-image's data, CC0), 451 × 300.

    Commands and functions use it when given no photo.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import reversenet
    >>> reversenet.sample_image().name
    'chelsea.jpg'
    """
    return Path(str(resources.files("reversenet.data") / "chelsea.jpg"))


def _stray(path: Path) -> str | None:
    """Why a file with an image's extension in a folder is not a photo, if it is not."""
    if path.name.startswith("._"):
        return "macOS metadata file"
    if not path.is_file():
        return "not a regular file"
    return None


def find_images(specs: Iterable[str], *, skipped: list[str] | None = None) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns, in the order given.

    In a folder or a glob, only regular files are photos: a sub-folder named like an image or
    a macOS ``._`` file is left out, and said why in `skipped` when given."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            named = sorted(p for p in path.iterdir() if p.suffix.lower() in EXTENSIONS)
            matches = [p for p in named if not _stray(p)]
            for p in named:
                if _stray(p) and skipped is not None:
                    skipped.append(f"{p}: {_stray(p)}, skipped")
            if not matches:
                raise UsageError(f"no images in folder {spec} (looked for {', '.join(EXTENSIONS)})")
        elif path.exists():
            matches = [path]
        elif glob.has_magic(spec):
            named = [Path(p) for p in sorted(glob.glob(spec, recursive=True))]
            matches = [p for p in named if not _stray(p)]
            for p in named:
                if _stray(p) and skipped is not None and p.suffix.lower() in EXTENSIONS:
                    skipped.append(f"{p}: {_stray(p)}, skipped")
            if not matches:
                raise UsageError(f"no files match {spec}")
        else:
            raise UsageError(f"no such image: {spec}")
        found += [p for p in matches if p not in found]
    return found


def load_image(path: Path) -> Image.Image:
    """An RGB image; EXIF orientation applied, 16-bit and float images rescaled."""
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise ReversenetError(f"{path}: refused, larger than PIL's safety limit ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ReversenetError(f"cannot read image {path}: {first_line(exc)}") from exc
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = values.max() if values.max() > 0 else 1.0
        image = Image.fromarray((values / top * 255).round().astype(np.uint8))
    return image.convert("RGB")


def to_uint8(v: Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) uint8; one channel is shown as grey."""
    v = v.expand(3, -1, -1) if v.shape[0] == 1 else v
    return (v.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def sha256_file(path: Path) -> str:
    """The sha256 of a file (a photo, weights, an output), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
