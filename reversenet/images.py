"""Reading photos and writing results; every file is written atomically."""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ReversenetError, UsageError, first_line

_UMASK = os.umask(0o022)
os.umask(_UMASK)
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


@contextmanager
def _atomic(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Write to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a killed run
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a result is an ordinary file
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _write(path: Path, save: Callable[[IO], object]) -> None:
    try:
        with _atomic(path) as f:
            save(f)
    except OSError as exc:
        raise ReversenetError(f"cannot write {path}: {exc.strerror or exc}") from exc


def writable_folder(folder: Path) -> None:
    """Fail early, before any work, when `folder` cannot hold our results."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise ReversenetError(f"cannot write to {folder}: {exc.strerror or exc}") from exc


def save_png(rgb: np.ndarray, path: Path) -> None:
    """Save an (H, W, 3) or (H, W) uint8 array as PNG, atomically."""
    _write(path, lambda f: Image.fromarray(rgb).save(f, format="PNG"))


def save_array(array: np.ndarray, path: Path) -> None:
    """Save a float array as .npy, atomically."""
    _write(path, lambda f: np.save(f, array))


def save_bytes(data: bytes, path: Path) -> None:
    """Save bytes, atomically."""
    _write(path, lambda f: f.write(data))


def save_text(text: str, path: Path) -> None:
    """Save UTF-8 text (HTML, CSV, JSON), atomically."""
    save_bytes(text.encode("utf-8"), path)
