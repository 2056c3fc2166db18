"""The output pipeline: every file a command writes is an `Output`, a value that knows its
name and its manifest record; an `OutputFolder` writes it atomically, records it, and says
whether a rerun may skip it (current) or must redo it (stale). Commands describe what they
want; nothing else formats a file name.

One photo has one id in an output folder: its file stem, cleaned to letters, digits, ``.``
and ``-``, unless another photo of the folder (or of this run) already holds that id, compared
without case, in which case it gets ``<stem>-<8 hex digits of its path's sha256>``. The
manifest keeps the ids, so a photo keeps its id and its outputs across reruns. Names:

    pictures   <photo-id>_<model>_<layer>_<variant>[_<selector>][_<k>][-<renderer>].png|.npy
    photos     <photo-id>_<model>_<input|fourier|phase>.png
    metrics    <photo-id>_<model>_<layer>_<variant>_selectivity.json
    grids      <photo-id>_<model>_<layer>[_<selector>]_compare[-bp][-<renderer>][-<k>].png
    masks      <photo-id>_<model>_<layer>_<method>[_<selector>]-<mask|saliency|overlay>.png

The selector is left out when it is the command's default (``max``; ``objectness`` for masks).

The manifest, ``manifest.jsonl``, holds one JSON object per output file; a sharded run
writes ``manifest.rank-I-of-N.jsonl`` per rank, merged into ``manifest.jsonl`` at the end.
An output is current when the manifest's last record for its file has the same parameters
and the file's sha256 still matches.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
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
from ..tables import plural

MANIFEST = "manifest.jsonl"
PART = re.compile(r"manifest\.rank-(\d+)-of-(\d+)\.jsonl")
RESULT = ("file", "sha256", "neuron")  # a record's fields that are results, not parameters
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def slug(text: str) -> str:
    """`text` with every run of characters other than letters, digits, '.' and '-' as one '-'
    ('_' separates fields); letters of any script are kept (``café``)."""
    return re.sub(r"(?:[^\w.-]|_)+", "-", unicodedata.normalize("NFC", text)).strip("-.") or "x"


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


@dataclass(frozen=True)
class Photo:
    """A photo as an output folder knows it: its resolved path, its id there, and its
    sha256 (None: it cannot be read)."""

    path: Path
    id: str
    sha256: str | None

    def params(self) -> dict[str, Any]:
        return {"photo": str(self.path), "photo_id": self.id, "photo_sha256": self.sha256}


# The selector a kind of output names only when it is not this one.
_DEFAULT_SELECT = {"mask": "objectness", "saliency": "objectness", "overlay": "objectness"}


@dataclass(frozen=True)
class Output:
    """One file a command makes, described by what made it; it knows its name and record.

    `kind` is ``picture``, ``raw`` (.npy), ``photo`` (a photo-level picture), ``metric``,
    ``compare`` (a grid of the eight variants), ``mask``, ``saliency``, ``overlay``,
    ``montage`` or ``table``. `network` is the network's identity (model, weights, seed);
    `picture` is which of a renderer's pictures (``paper``, ``saliency``, ``overlay``, ...),
    which photo-level picture (``input``, ``fourier``, ``phase``) or which grid (``compare``,
    ``compare-bp``); `extra`, whatever else
    made it (a variant's rules, GrabCut's seeds, a montage's cells); `name`, a name given
    instead of the one made from the rest (``compare -o fig3.png``, ``montages/...``)."""

    kind: str
    photo: Photo | None = None
    network: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None
    variant: str | list[str] | None = None  # a grid's: the variants it shows
    select: str | None = None
    k: int | None = None
    render: str | None = None
    picture: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    name: str | None = None

    @property
    def file(self) -> str:
        """The file's path in the output folder (the module docstring states the names)."""
        if self.name:
            return self.name
        assert self.photo is not None  # only montages and tables, which are named, have none
        stem = f"{self.photo.id}_{slug(self.network['model'])}"
        if self.kind == "photo":
            return f"{stem}_{self.picture}.png"
        stem += f"_{slug(str(self.layer))}"
        select = self.select if self.select != _DEFAULT_SELECT.get(self.kind, "max") else None
        tag = f"_{slug(select)}" if select else ""
        suffix = "" if self.picture in (None, "paper") else f"-{self.picture}"
        if self.kind == "compare":
            rendered = "" if self.render == "paper" else f"-{self.render}"
            return f"{stem}{tag}_{self.picture}{rendered}{f'-{self.k}' if self.k else ''}.png"
        stem += f"_{slug(str(self.variant))}"
        if self.kind == "metric":
            return f"{stem}_selectivity.json"
        if self.kind in _DEFAULT_SELECT:
            return f"{stem}{tag}-{self.kind}.png"
        numbered = f"{stem}{tag}{f'_{self.k}' if self.k else ''}"
        return f"{numbered}.npy" if self.kind == "raw" else f"{numbered}{suffix}.png"

    @property
    def params(self) -> dict[str, Any]:
        """The parameters that made the file: a record without them differs is stale."""
        fields = {"layer": self.layer, "variant": self.variant, "select": self.select, "k": self.k,
                  "render": self.render, "picture": self.picture}  # fmt: skip
        return {**(self.photo.params() if self.photo else {}), **self.network,
                **{k: v for k, v in fields.items() if v is not None}, **self.extra, **versions()}  # fmt: skip

    def record(self, sha256: str, neuron: list[int] | None = None) -> dict[str, Any]:
        """The manifest record of the file as written."""
        return {"file": self.file, "sha256": sha256, "kind": self.kind, **self.params, "neuron": neuron}


def unique(outputs: Iterable[Output]) -> None:
    """Fail when two outputs would share a file (names compared without case)."""
    seen: dict[str, Output] = {}
    for output in outputs:
        other = seen.setdefault(output.file.casefold(), output)
        if other is not output and other != output:
            differ = [k for k in output.params if output.params.get(k) != other.params.get(k)]
            raise UsageError(
                f"two outputs would share the file {output.file} (they differ in {', '.join(differ) or 'nothing'}): "
                "give them different names"
            )


class OutputFolder:
    """A folder outputs are written to: atomically, each recorded in the manifest as soon as it
    is written. `part` (rank, world) writes a rank's own manifest part."""

    def __init__(self, folder: Path, part: tuple[int, int] | None = None):
        writable_folder(folder)
        self.folder = folder
        self.manifest = Manifest(folder, part)

    def current(self, output: Output) -> bool:
        """Whether `output`'s file exists, unchanged, made with the same parameters."""
        return self.manifest.current(output)

    def write(self, output: Output, data: np.ndarray | bytes | str, neuron: list[int] | None = None) -> dict:
        """Write `output` (an image array as PNG, a float array of kind ``raw`` as .npy, text,
        or bytes) atomically, then record it. Returns its record."""
        path = self.folder / output.file
        if isinstance(data, str):
            save_text(data, path)
        elif isinstance(data, bytes):
            save_bytes(data, path)
        elif output.kind == "raw":
            save_array(data, path)
        else:
            save_png(data, path)
        return self.manifest.add(output, neuron)

    def publish(self, output: Output, data: bytes | str) -> dict:
        """Write `output` unless its file already holds `data` and the manifest says so (a
        montage or table drawn again the same: left untouched)."""
        raw = data.encode() if isinstance(data, str) else data
        path = self.folder / output.file
        if not (self.current(output) and path.read_bytes() == raw):
            self.write(output, raw)
        return self.manifest.records[output.file]

    def fail(self, photo: Photo, model: str, error: str) -> dict:
        """Record that `photo` failed with `model`, and why."""
        return self.manifest.fail({**photo.params(), "model": model}, error)


class Result(list):
    """What a command made: the manifest rows of its outputs (dicts; a failure has kind
    ``failed``), the files written and current (skipped), the photos all current, the
    failures, the tables, the folder, stray files left out, and whether the work is finished
    (a ``--shard`` run is not until ``--merge``). `named`: say the files by name (a few grids)."""

    def __init__(self, rows: Iterable[dict] = (), *, written: int = 0, current: int = 0, photos_current: int = 0,
                 failed: Iterable[dict] = (), tables: Iterable[Any] = (), out: Path = Path(),
                 stray: Iterable[str] = (), finished: bool = True, named: bool = False):  # fmt: skip
        super().__init__(rows)
        self.written, self.current, self.photos_current = written, current, photos_current
        self.failed, self.tables, self.out, self.stray, self.finished = list(failed), list(tables), out, list(stray), finished
        self.named = named

    def report(self) -> tuple[list[str], str | None]:
        """What to tell: a line on what was made, then a line per failure; and the error to
        end with (None when nothing failed). Work that made nothing fails with its error alone."""
        if self.failed and not (self.written or self.current):
            first = self.failed[0]["error"]
            return [], first if len(self.failed) == 1 else f"all {len(self.failed)} photos failed; the first: {first}"
        if self.named:
            files = ", ".join(str(self.out / r["file"]) if r else str(self.out) for r in self or [None])
            verb = "is" if len(self) <= 1 else "are"
            line = f"wrote {files}" if self.written else f"{files} {verb} current: skipped (--force redoes {'it' if verb == 'is' else 'them'})"
        else:
            line = f"wrote {plural(self.written, 'file')} to {self.out}/"
            if self.current:
                line += f"; {plural(self.photos_current, 'photo')} already done, {plural(self.current, 'file')} current: skipped (--force redoes them)"
        lines = [*(f"warning: {s}" for s in self.stray), line, *(f"failed: {f['photo']} ({f['model']}): {f['error']}" for f in self.failed)]
        photos = len({f["photo"] for f in self.failed})
        error = f"{plural(photos, 'photo')} failed, the others are done; see {self.out}/manifest.jsonl" if photos else None
        return lines, error


def known_photos(paths: Iterable[Path], manifest: Manifest) -> dict[Path, Photo]:
    """Each photo (resolved paths) with its id in the manifest's folder and its sha256, read once."""
    paths = list(paths)
    ids = photo_ids(paths, manifest.photo_ids())
    return {path: Photo(path, ids[path], _sha256_or_none(path)) for path in paths}


def _sha256_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]], digits: int | None = None) -> str:
    """CSV text: a header, then a line per row (a dict; missing keys empty); floats with
    `digits` decimals when given."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    shown = lambda v: f"{v:.{digits}f}" if digits is not None and isinstance(v, float) else v
    writer.writerows({k: "" if v is None else shown(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


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

    def add(self, output: Output, neuron: list[int] | None = None) -> dict:
        """Record `output`, whose file was just written."""
        return self._append(output.record(sha256_file(self.folder / output.file), neuron))

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


def writable_folder(folder: Path, *, create: bool = True) -> None:
    """Fail early, before any work, when `folder` cannot hold our results; with `create`
    False, check without making it (its nearest existing parent must be writable)."""
    if not create:
        existing = next(p for p in [folder, *folder.absolute().parents] if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ReversenetError(f"cannot write to {folder}: {existing} is not a writable folder")
        return
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
