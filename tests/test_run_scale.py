"""`reversenet run` at scale: a killed run resumed, torchrun ranks, --shard/--merge and reruns.

Every test runs the tiny user model of tests/factories.py with random weights on a dozen
small photos cut from the bundled sample, and checks the output folder file by file: the
same names, the same bytes, one manifest record per file whose sha256 matches the disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageOps

import reversenet

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SAMPLE = Path(reversenet.__file__).resolve().parent / "data" / "chelsea.jpg"
REPORT_FILES = re.compile(
    r"(index\.html|report/page-\d+\.html)"
)  # written by the report, not in the manifest


# ----------------------------------------------------------------------------- helpers


def make_photos(folder: Path, n: int) -> Path:
    """`n` distinct small photos (crops, flips; JPEG and PNG) cut from the sample photo."""
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(SAMPLE) as image:
        src = image.convert("RGB")
    w, h = src.size
    for i in range(n):
        x, y = (i * 23) % (w // 3), (i * 11) % (h // 3)
        photo = src.crop((x, y, x + w // 2 + i, y + h // 2)).resize((64 + 2 * i, 56))
        if i % 2:
            photo = ImageOps.mirror(photo)
        if i % 3 == 2:
            photo = ImageOps.flip(photo)
        photo.save(folder / f"p{i:02d}.{'png' if i % 4 == 0 else 'jpg'}", quality=90)
    return folder


def write_config(path: Path, **values) -> Path:
    base = {"model": "factories:tiny", "weights": "random", "layers": ["4"], "device": "cpu", "workers": 0}
    path.write_text(yaml.safe_dump({**base, **values}, sort_keys=False))
    return path


def env() -> dict[str, str]:
    """The environment of a subprocess: tests/ (the factories module) and the repo on PYTHONPATH."""
    paths = [str(TESTS), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def cli(*args: str, cwd: Path) -> tuple[int, str]:
    """`reversenet ARGS` in-process, in `cwd`; (exit status, stderr).

    Not the `run` fixture of conftest.py: a module-scoped fixture uses it too, and its stderr
    misses the lines of the console (rich) that say what a run wrote."""
    from reversenet.cli import console, main

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.setattr(sys, "argv", ["reversenet", *args])
        err = _Text()
        mp.setattr(console, "_file", err)  # not `file`: undoing that would pin this test's stderr
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    return code, err.getvalue()


class _Text:
    """A text stream for rich's console."""

    def __init__(self):
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        return "".join(self.parts)


def tree(out: Path) -> dict[str, bytes]:
    """Every file under `out` (relative POSIX path -> bytes)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def stats(out: Path) -> dict[str, tuple[int, int]]:
    """Every file under `out` -> (inode, mtime_ns): an atomic rewrite changes the inode."""
    return {
        p.relative_to(out).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if p.is_file()
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_lines(out: Path, name: str = "manifest.jsonl") -> list[dict]:
    """The records of a manifest; a half-written last line (a killed run) is left out."""
    path = out / name
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return records


def wrote(stderr: str) -> int:
    found = re.findall(r"wrote (\d+) files? to", " ".join(stderr.split()))  # rich wraps lines
    assert found, stderr
    return int(found[-1])


def assert_same_tree(got: Path, want: Path) -> None:
    a, b = tree(got), tree(want)
    assert sorted(a) == sorted(b), (
        f"only in {got.name}: {sorted(set(a) - set(b))}; only in {want.name}: {sorted(set(b) - set(a))}"
    )
    differ = [f for f in a if a[f] != b[f]]
    assert not differ, f"{len(differ)} files differ, e.g. {differ[:5]}"


def assert_manifest_matches_disk(out: Path) -> list[dict]:
    """manifest.jsonl: exactly one record per output file, its sha256 the file's; no stray files."""
    records = manifest_lines(out)
    files = [r["file"] for r in records if r.get("kind") != "failed"]
    assert len(files) == len(set(files)), [f for f in files if files.count(f) > 1][:5]
    for r in records:
        if r.get("kind") != "failed":
            assert sha256(out / r["file"]) == r["sha256"], r["file"]
    on_disk = {f for f in tree(out) if f != "manifest.jsonl" and not REPORT_FILES.fullmatch(f)}
    assert on_disk == set(files)
    assert not list(out.glob("manifest.rank-*.jsonl"))
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    return records


# ----------------------------------------------------------------------------- shared config


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return make_photos(tmp_path_factory.mktemp("photos") / "photos", 12)


@pytest.fixture(scope="module")
def scale_config(photos, tmp_path_factory) -> Path:
    """Two variants, three selectors (one multiple-free random draw, a mixture), a lead picture,
    a montage and the selectivity table; batches of 2 photos so that ranks interleave."""
    folder = tmp_path_factory.mktemp("config")
    return write_config(
        folder / "scale.yaml",
        images=[str(photos)],
        variants=["deconvnet", "desalinet"],
        select=["max", "random", "mixture"],
        lead=["input"],
        batch_size=2,
        tables=["selectivity"],
        montages=[{"rows": ["layer", "select"], "columns": "variant", "lead": ["input"], "max_photos": 3}],
    )


@pytest.fixture(scope="module")
def reference(scale_config, tmp_path_factory) -> Path:
    """The config run by one process, uninterrupted."""
    out = tmp_path_factory.mktemp("reference") / "out"
    code, err = cli("run", str(scale_config), "--set", f"out={out}", cwd=scale_config.parent)
    assert code == 0, err
    assert (out / "index.html").is_file() and (out / "tables" / "selectivity.csv").is_file()
    assert list((out / "montages").glob("*.png"))
    assert_manifest_matches_disk(out)
    return out


# ----------------------------------------------------------------------------- 1. SIGKILL, resume


def test_killed_run_resumes_and_recomputes_nothing_finished(tmp_path):
    photos = make_photos(tmp_path / "photos", 8)
    cfg = write_config(tmp_path / "kill.yaml", images=[str(photos)], variants="all", batch_size=2,
                       workers=1)  # fmt: skip
    code, err = cli("run", str(cfg), "--set", f"out={tmp_path / 'clean'}", cwd=tmp_path)
    assert code == 0, err
    clean = tmp_path / "clean"
    pngs = {f for f in tree(clean) if f.endswith(".png")}
    assert len(pngs) == 8 * 8  # photos × variants

    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "reversenet", "run", str(cfg), "--set", f"out={out}"],
                               cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            done = len(list(out.glob("*.png"))) if out.is_dir() else 0
            if done >= len(pngs) // 3:  # in the middle of the second batch
                break
            time.sleep(0.002)
        else:
            pytest.fail(
                f"the run ended (status {process.poll()}) before a third of its files: {process.communicate()[1][-2000:]!r}"
            )
        os.killpg(process.pid, signal.SIGKILL)  # the run and its DataLoader worker
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    assert process.returncode == -signal.SIGKILL

    finished = {p.name for p in out.glob("*.png")}
    assert 0 < len(finished) < len(pngs), len(finished)
    for name in finished:  # written atomically: every PNG there is whole
        with Image.open(out / name) as image:
            image.load()
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name
    recorded = {
        r["file"]
        for r in manifest_lines(out)
        if r.get("kind") != "failed" and sha256(out / r["file"]) == r["sha256"]
    }
    assert recorded <= finished and recorded, (len(recorded), len(finished))
    print(
        f"killed with {len(finished)} of {len(pngs)} PNGs written, {len(recorded)} recorded, {len(list(out.glob('.*.tmp')))} temporaries"
    )
    # What a kill at another instant leaves: a temporary beside its file, half a manifest line.
    (out / ".p07_factories-tiny_4_salinet.png.k1ll3d.tmp").write_bytes(b"\x89PNG\r\n")
    with open(out / "manifest.jsonl", "a") as f:
        f.write('{"file": "p07_factories-tiny_4_salinet.png", "sha2')
    before = stats(out)

    code, err = cli("run", str(cfg), "--set", f"out={out}", cwd=tmp_path)
    assert code == 0, err
    assert wrote(err) == len(pngs) - len(recorded), err  # what the manifest had is skipped, nothing else
    assert {f for f in tree(out) if f.endswith(".png")} == pngs
    assert_same_tree(out, clean)
    records = assert_manifest_matches_disk(out)
    assert {r["file"] for r in records} == pngs
    after = stats(out)
    changed = sorted(f for f in recorded if after[f] != before[f])
    assert not changed, f"finished and recorded before the kill, yet rewritten: {changed[:5]}"


# ----------------------------------------------------------------------------- 2. torchrun


def test_torchrun_two_ranks_equal_one_process(scale_config, reference, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "reversenet", "run", str(scale_config), "--set", f"out={out}"]  # fmt: skip
    result = subprocess.run(
        command, check=False, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    written = [int(n) for n in re.findall(r"wrote (\d+) files? to", result.stderr)]
    assert len(written) == 2 and all(written), result.stderr[-2000:]  # both ranks worked
    assert_same_tree(out, reference)
    assert_manifest_matches_disk(out)


# ----------------------------------------------------------------------------- 3. --shard, --merge


def test_shards_then_merge_equal_one_process(scale_config, reference, tmp_path):
    out = tmp_path / "out"
    ids = {}
    for i in range(2):
        code, err = cli("run", str(scale_config), "--set", f"out={out}", "--shard", f"{i}/2", cwd=tmp_path)
        assert code == 0, err
        assert "shard done" in err and "--merge" in " ".join(err.split())
        part = manifest_lines(out, f"manifest.rank-{i}-of-2.jsonl")
        assert part, sorted(tree(out))
        ids[i] = {r["photo_id"] for r in part}
    assert not ids[0] & ids[1]  # each photo computed once
    assert sorted(ids[0] | ids[1]) == [f"p{i:02d}" for i in range(12)]
    assert ids[0] == {f"p{i:02d}" for i in range(12) if i // 2 % 2 == 0}  # batches of 2, dealt round-robin
    assert (
        not (out / "index.html").exists()
        and not (out / "montages").exists()
        and not (out / "tables").exists()
    )
    assert not (out / "manifest.jsonl").exists()

    code, err = cli("run", str(scale_config), "--set", f"out={out}", "--merge", cwd=tmp_path)
    assert code == 0, err
    assert not list(out.glob("manifest.rank-*.jsonl"))
    assert_same_tree(out, reference)
    assert_manifest_matches_disk(out)


# ----------------------------------------------------------------------------- 4. reruns


def test_changed_parameters_recompute_exactly_what_changed(tmp_path):
    four = make_photos(tmp_path / "photos", 4)
    cfg = write_config(tmp_path / "rerun.yaml", images=[str(four)], variants=["deconvnet", "desalinet"],
                       lead=["input"], batch_size=2)  # fmt: skip
    out = tmp_path / "out"
    code, err = cli("run", str(cfg), "--set", f"out={out}", cwd=tmp_path)
    assert code == 0, err
    first = assert_manifest_matches_disk(out)
    outputs = {r["file"] for r in first}
    assert len(outputs) == 4 * (1 + 2) and wrote(err) == len(outputs)
    at_first, first_bytes = stats(out), tree(out)

    code, err = cli("run", str(cfg), "--set", f"out={out}", cwd=tmp_path)  # unchanged
    assert code == 0, err
    assert wrote(err) == 0 and "12 files current" in " ".join(err.split()), err
    assert {f: stats(out)[f] for f in outputs} == {f: at_first[f] for f in outputs}
    assert manifest_lines(out) == first

    code, err = cli(
        "run", str(cfg), "--set", f"out={out}", "--set", "seed=1", cwd=tmp_path
    )  # every record has the seed
    assert code == 0, err
    assert wrote(err) == len(outputs), err
    records = assert_manifest_matches_disk(out)
    assert {r["file"] for r in records} == outputs and all(r["seed"] == 1 for r in records)
    now = stats(out)
    assert all(now[f] != at_first[f] for f in outputs)
    code, err = cli("run", str(cfg), "--set", f"out={tmp_path / 'seed1'}", "--set", "seed=1", cwd=tmp_path)
    assert code == 0, err
    assert_same_tree(out, tmp_path / "seed1")  # as if seed 1 had been the first run
    assert any(
        first_bytes[f] != (out / f).read_bytes() for f in outputs if not f.endswith("_input.png")
    )  # new weights

    # one more renderer: only its files; one photo changed: only that photo's files
    with Image.open(four / "p01.jpg") as image:
        ImageOps.flip(image.convert("RGB")).save(four / "p01.jpg", quality=90)
    at_seed1 = stats(out)
    code, err = cli(
        "run",
        str(cfg),
        "--set",
        f"out={out}",
        "--set",
        "seed=1",
        "--set",
        "render=[paper, gamma]",
        cwd=tmp_path,
    )
    assert code == 0, err
    records = assert_manifest_matches_disk(out)
    gamma = {r["file"] for r in records if r.get("render") == "gamma"}
    assert len(gamma) == 4 * 2  # photos × variants
    now = stats(out)
    rewritten = {f for f in outputs if now[f] != at_seed1[f]}
    assert rewritten == {f for f in outputs if f.startswith("p01_")}, sorted(rewritten)
    assert wrote(err) == len(gamma) + len(rewritten), err
    p01 = [r for r in records if r["photo_id"] == "p01"]
    assert {r["photo_sha256"] for r in p01} == {sha256(four / "p01.jpg")}
