"""Photos per second: a shell loop of `reversenet visualize` against `reversenet.output.batch.run`.

    python benchmarks/throughput.py [--photos 64] [--model vgg16] [--batch-sizes 1,8,32]
                                    [--rounds 1] [--device cpu] [--loop-photos N]

The photos are made here, deterministically, from the bundled sample photo (crops, flips,
rotations and resizes, saved as JPEG in a temporary folder): no download. Every contender
computes the same files (random weights, pool5, desalinet, max, paper):

* the loop: one ``reversenet visualize -i PHOTO -o OUT`` process per photo, as a user's shell
  loop would run it (each pays for starting Python, importing torch and building the network);
  ``--loop-photos N`` times it on the first N photos only and extrapolates photos/s;
* ``reversenet.output.batch.run`` in this process, at each batch size (2 DataLoader workers, no
  report), after one untimed warm-up run on one photo.

Each contender writes into a fresh folder, so nothing is skipped as current. Each round runs
every contender once, in turn (the order rotated per round, so load on a shared machine hits
them alike); the table shows medians over rounds and ratios to the loop. Then it checks that the
batch runs made the same PNG file names as the loop, and prints the largest pixel difference
between the smallest and the largest batch size (batching changes the sums' order, not the maths).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch
from PIL import Image, ImageOps
from rich.console import Console
from rich.table import Table

from reversenet import batch
from reversenet.inputs.images import sample_image
from reversenet.output.files import slug

LAYER, VARIANT, SELECT, RENDER = "pool5", "desalinet", "max", "paper"
LOOP = "shell loop: reversenet visualize per photo"


def make_photos(folder: Path, count: int) -> list[Path]:
    """`count` distinct photos of varied sizes from the sample photo, the same on every run."""
    folder.mkdir(parents=True, exist_ok=True)
    source = Image.open(sample_image()).convert("RGB")
    width, height = source.size
    photos = []
    for i in range(count):
        rng = random.Random(i)
        w, h = rng.randint(width // 2, width), rng.randint(height // 2, height)
        left, top = rng.randint(0, width - w), rng.randint(0, height - h)
        image = source.crop((left, top, left + w, top + h))
        if rng.random() < 0.5:
            image = ImageOps.mirror(image)
        image = image.rotate(rng.choice((0, 90, 180, 270)), expand=True)
        scale = rng.uniform(0.6, 2.0)
        image = image.resize((max(32, round(image.width * scale)), max(32, round(image.height * scale))),
                             Image.Resampling.BICUBIC)  # fmt: skip
        path = folder / f"photo_{i:03d}.jpg"
        image.save(path, quality=rng.randint(80, 95))
        photos.append(path)
    return photos


def reversenet_command() -> list[str]:
    """The `reversenet` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "reversenet"
    return [str(script)] if script.exists() else [sys.executable, "-m", "reversenet"]


def run_loop(photos: list[Path], out: Path, model: str, device: str) -> float:
    command = reversenet_command()
    start = time.perf_counter()
    for photo in photos:
        done = subprocess.run([*command, "visualize", "-m", model, "-w", "random", "--device", device, "-l", LAYER,
                               "-v", VARIANT, "-s", SELECT, "--render", RENDER, "-i", str(photo), "-o", str(out)],
                              check=False, capture_output=True, text=True)  # fmt: skip
        if done.returncode:
            raise click.ClickException(
                f"reversenet visualize -i {photo} failed ({done.returncode}):\n{done.stderr}"
            )
    return time.perf_counter() - start


def config(photos: list[Path], model: str, device: str, out: Path, batch_size: int) -> dict:
    return {"images": [str(p) for p in photos], "model": model, "weights": "random", "seed": 0, "layers": [LAYER],
            "variants": [VARIANT], "select": [SELECT], "render": [RENDER], "batch_size": batch_size, "workers": 2,
            "device": device, "out": str(out), "report": False}  # fmt: skip


def run_batch(photos: list[Path], out: Path, model: str, device: str, batch_size: int) -> float:
    start = time.perf_counter()
    result = batch.run(config(photos, model, device, out, batch_size))
    seconds = time.perf_counter() - start
    if result.failed:
        raise click.ClickException(f"batch run (batch {batch_size}) failed on {result.failed[0]}")
    return seconds


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def pngs(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.png")}


def max_pixel_difference(a: Path, b: Path, names: set[str]) -> int:
    worst = 0
    for name in sorted(names):
        x = np.asarray(Image.open(a / name), dtype=np.int16)
        y = np.asarray(Image.open(b / name), dtype=np.int16)
        if x.shape != y.shape:
            raise click.ClickException(f"{name}: {x.shape} in {a} but {y.shape} in {b}")
        worst = max(worst, int(np.abs(x - y).max()))
    return worst


@click.command()
@click.option("--photos", "count", default=64, show_default=True, help="Photos in the run.")
@click.option("--model", default="vgg16", show_default=True)
@click.option(
    "--batch-sizes", default="1,8,32", show_default=True, help="Comma-separated batch sizes for batch.run."
)
@click.option(
    "--rounds", default=1, show_default=True, help="Runs of each contender; the table shows medians."
)
@click.option("--device", default="cpu", show_default=True)
@click.option("--loop-photos", default=None, type=int, help="Time the loop on the first N photos only and "
              "extrapolate its photos/s. Default: all.")  # fmt: skip
@click.option("--keep", type=click.Path(path_type=Path), default=None, help="Write photos and outputs here "
              "(kept) instead of a temporary folder.")  # fmt: skip
def main(count: int, model: str, batch_sizes: str, rounds: int, device: str, loop_photos: int | None,
         keep: Path | None) -> None:  # fmt: skip
    sizes = list(dict.fromkeys(int(s) for s in batch_sizes.split(",") if s.strip()))
    if count < 1 or rounds < 1 or not sizes or min(sizes) < 1:
        raise click.BadParameter("--photos, --rounds and every batch size must be at least 1")
    looped = min(count, loop_photos or count)
    console = Console()
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="reversenet-throughput-"))
    try:
        photos = make_photos(root / "photos", count)
        shapes = sorted({Image.open(p).size for p in photos})
        console.print(f"{count} photos, {len(shapes)} sizes from {shapes[0][0]}×{shapes[0][1]} to "
                      f"{shapes[-1][0]}×{shapes[-1][1]}, in {root / 'photos'}", highlight=False)  # fmt: skip
        console.print(f"load average before: {_load()}", highlight=False)
        torch.set_grad_enabled(True)
        # Untimed warm-up: lazy imports and first allocations, paid once per process.
        batch.run(config(photos[:1], model, device, root / "warm-up", 1))

        names = [LOOP] + [f"batch.run, batch {s}" for s in sizes]
        times: dict[str, list[float]] = {name: [] for name in names}
        folders: dict[str, Path] = {}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                out = root / f"round{r}" / ("loop" if name == LOOP else f"batch{name.rsplit(' ', 1)[1]}")
                console.print(f"round {r + 1}/{rounds}: {name} …", highlight=False)
                if name == LOOP:
                    seconds = run_loop(photos[:looped], out, model, device)
                else:
                    seconds = run_batch(photos, out, model, device, int(name.rsplit(" ", 1)[1]))
                times[name].append(seconds)
                folders[name] = out
                console.print(f"  {seconds:.1f} s", highlight=False)

        loop_rate = looped / statistics.median(times[LOOP])
        title = (f"{model} {LAYER} {VARIANT} {SELECT} {RENDER}, weights random, {device}, {torch.get_num_threads()} "
                 f"threads, {os.cpu_count()} CPUs, " + (f"median of {rounds} rounds" if rounds > 1 else "1 round"))  # fmt: skip
        caption = (f"the loop timed on {looped} of {count} photos; its photos/s extrapolated"
                   if looped < count else None)  # fmt: skip
        table = Table(title=title, caption=caption)
        for column in ("contender", "photos", "seconds", "photos/s", "× loop"):
            table.add_column(column, justify="left" if column == "contender" else "right")
        for name in names:
            n = looped if name == LOOP else count
            seconds = statistics.median(times[name])
            rate = n / seconds
            table.add_row(name, str(n), f"{seconds:.1f}", f"{rate:.2f}", f"{rate / loop_rate:.2f}")
        console.print(table)
        console.print(f"load average after: {_load()}", highlight=False)

        loop_names = pngs(folders[LOOP])
        for name in names[1:]:
            made = pngs(folders[name])
            if looped < count:  # only the looped photos' files are comparable
                # photo-NNN_: fixed width, so no id is a prefix of another
                ids = tuple(slug(p.stem) + "_" for p in photos[:looped])
                made = {f for f in made if f.startswith(ids)}
            same = made == loop_names
            console.print(f"{name}: {len(made)} PNGs, " + ("the same file names as the loop" if same else
                          f"NOT the same file names as the loop: only batch {sorted(made - loop_names)[:5]}, "
                          f"only loop {sorted(loop_names - made)[:5]}"), highlight=False)  # fmt: skip
        if len(sizes) > 1:
            small, large = f"batch.run, batch {min(sizes)}", f"batch.run, batch {max(sizes)}"
            common = pngs(folders[small]) & pngs(folders[large])
            diff = max_pixel_difference(folders[small], folders[large], common)
            console.print(f"max |pixel difference| batch {min(sizes)} vs batch {max(sizes)}: {diff} (0-255, over "
                          f"{len(common)} PNGs)", highlight=False)  # fmt: skip
        small = f"batch.run, batch {min(sizes)}"
        common = pngs(folders[LOOP]) & pngs(folders[small])
        diff = max_pixel_difference(folders[LOOP], folders[small], common)
        console.print(f"max |pixel difference| loop vs batch {min(sizes)}: {diff} (0-255, over {len(common)} PNGs)",
                      highlight=False)  # fmt: skip
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
