"""Output files that know what they are: their names, and the manifest that says how each
was made, so that a rerun skips exactly what is finished and current.

One photo has one id in an output folder: its file stem, cleaned to ``[A-Za-z0-9.-]``,
unless another photo of the folder (or of this run) already holds that id, compared without
case, in which case it gets ``<stem>-<8 hex digits of its path's sha256>``. The manifest keeps
the ids, so a photo keeps its id and its outputs across reruns. Output names are
``<photo-id>_<model>_<layer>_<variant>[_<selector>][_<k>][-<renderer>].png|.npy``.

The manifest, ``manifest.jsonl``, holds one JSON object per output file; a sharded run
writes ``manifest.rank-I-of-N.jsonl`` per rank, merged into ``manifest.jsonl`` at the end.
An output is current when the manifest's last record for its file has the same parameters
and the file's sha256 still matches.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image

from ..errors import ReversenetError, UsageError
from ..inputs.images import sha256_file

MANIFEST = "manifest.jsonl"
PART = re.compile(r"manifest\.rank-(\d+)-of-(\d+)\.jsonl")
RESULT = ("file", "sha256", "neuron")  # a record's fields that are results, not parameters
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def slug(text: str) -> str:
    """`text` with every run of characters outside [A-Za-z0-9.-] as one '-' ('_' separates fields)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-.") or "x"


@cache
def versions() -> dict[str, str]:
    """The versions every record carries."""
    return {"reversenet": metadata.version("reversenet"), "torch": torch.__version__}


def photo_ids(photos: Iterable[Path], known: dict[str, str]) -> dict[Path, str]:
    """The id of each photo (resolved paths, in a fixed order): the one `known` (photo path ->
    id, from the manifest) gives it, else its clean stem if no other photo holds it (without
    case), else the stem with a hash of its path."""
    photos = list(photos)
    ids = {p: known[str(p)] for p in photos if str(p) in known}
    taken = {i.casefold() for path, i in known.items()} | {i.casefold() for i in ids.values()}
    for path in photos:
        if path in ids:
            continue
        plain = slug(path.stem)
        if plain.casefold() in taken:
            plain = f"{plain}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
        ids[path] = plain
        taken.add(plain.casefold())
    return ids


@dataclass
class Output:
    """One file a run makes: its name in the output folder, its kind and its parameters."""

    file: str
    kind: str  # picture, raw, metric, photo, montage, table
    params: dict[str, Any]
    neuron: list[int] | None = field(default=None, compare=False)

    def record(self, sha256: str) -> dict[str, Any]:
        return {"file": self.file, "sha256": sha256, "kind": self.kind, **self.params, "neuron": self.neuron}


def unique(outputs: Iterable[Output]) -> None:
    """Fail when two outputs of one run would share a file (names compared without case)."""
    seen: dict[str, Output] = {}
    for output in outputs:
        other = seen.setdefault(output.file.casefold(), output)
        if other is not output:
            differ = [k for k in output.params if output.params.get(k) != other.params.get(k)]
            raise UsageError(
                f"two outputs would share the file {output.file} (they differ in {', '.join(differ) or 'nothing'}): "
                "give them different names"
            )


class Manifest:
    """The records of an output folder; `add` appends one as soon as its file is written."""

    def __init__(self, folder: Path, part: tuple[int, int] | None = None):
        self.folder = folder
        self.path = folder / (MANIFEST if part is None else f"manifest.rank-{part[0]}-of-{part[1]}.jsonl")
        self.records: dict[str, dict] = {}  # file -> last record
        self.failed: dict[tuple[str | None, str | None], dict] = {}  # (photo, model) -> record
        for path in self._files():
            for record in _read(path):
                self._keep(record)

    def _files(self) -> list[Path]:
        parts = sorted((p for p in self.folder.glob("manifest.rank-*.jsonl") if PART.fullmatch(p.name)), key=_part_key)
        return [p for p in [self.folder / MANIFEST, *parts] if p.is_file()]

    def _keep(self, record: dict) -> None:
        if record.get("kind") == "failed":
            self.failed[(record.get("photo"), record.get("model"))] = record
        elif isinstance(record.get("file"), str):
            self.records[record["file"]] = record
            self.failed.pop((record.get("photo"), record.get("model")), None)

    def photo_ids(self) -> dict[str, str]:
        """photo path -> id, as earlier runs named them."""
        return {r["photo"]: r["photo_id"] for r in [*self.records.values(), *self.failed.values()]
                if isinstance(r.get("photo"), str) and isinstance(r.get("photo_id"), str)}  # fmt: skip

    def current(self, output: Output) -> bool:
        """Whether `output`'s file exists, unchanged, made with the same parameters."""
        record = self.records.get(output.file)
        if record is None or {k: v for k, v in record.items() if k not in (*RESULT, "kind")} != output.params:
            return False
        path = self.folder / output.file
        return path.is_file() and sha256_file(path) == record.get("sha256")

    def add(self, output: Output) -> dict:
        """Record `output`, whose file was just written."""
        return self._append(output.record(sha256_file(self.folder / output.file)))

    def fail(self, params: dict[str, Any], error: str) -> dict:
        return self._append({"file": None, "kind": "failed", **params, "error": error})

    def _append(self, record: dict) -> dict:
        line = json.dumps(record, sort_keys=False, ensure_ascii=False) + "\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                if os.fstat(fd).st_size and _last_byte(self.path) != b"\n":
                    os.write(fd, b"\n")  # a killed run left half a line: start afresh after it
                os.write(fd, line.encode())  # one write: a line is never interleaved
            finally:
                os.close(fd)
        except OSError as exc:
            raise ReversenetError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self._keep(record)
        return record

    def merge(self, keep: set[str] | None = None) -> list[dict]:
        """Rewrite the folder's records as one ``manifest.jsonl``, sorted by file, and remove
        the rank parts. Records whose file is gone are dropped, as are those not in `keep`
        when it is given. Returns the records."""
        records = [r for f, r in sorted(self.records.items()) if (self.folder / f).is_file()]
        failed = [r for _, r in sorted(self.failed.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1])))]
        if keep is not None:
            records = [r for r in records if r["file"] in keep]
        rows = records + failed
        if not rows and not self._files():
            return rows
        save_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), self.folder / MANIFEST)
        for path in self._files():
            if path.name != MANIFEST:
                path.unlink(missing_ok=True)
        return rows


def _part_key(path: Path) -> tuple[int, int]:
    match = PART.fullmatch(path.name)
    assert match is not None  # _files keeps only the names that match
    rank, world = match.groups()
    return int(world), int(rank)


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def _read(path: Path) -> list[dict]:
    """The records of a manifest file; a line a killed run left half written is ignored."""
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def remove_temporaries(folder: Path, files: Iterable[str]) -> None:
    """Delete the temporary files (``.<name>.<random>.tmp``) a killed run left in `folder` for
    `files` (paths relative to it). Only those: another process may be writing its own."""
    mine = set(files)
    for sub in {Path(f).parent for f in mine}:
        if not (folder / sub).is_dir():
            continue
        for entry in os.scandir(folder / sub):
            target = entry.name[1:].rsplit(".", 2)[0] if entry.name.startswith(".") and entry.name.endswith(".tmp") else None
            if target and (sub / target).as_posix() in mine:
                Path(entry.path).unlink(missing_ok=True)


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
