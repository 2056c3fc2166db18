"""Batch runs from a config: `reversenet run CONFIG` and :func:`run`.

A run is planned in full before any work (reversenet.output.plan). Then, per model, the photos
whose outputs are not current go through the network in batches: one forward pass per batch
records the bottleneck up to the deepest layer asked for, and every layer, variant and selector
is reversed from it. Photos are decoded in background workers (a torch DataLoader).

Work is split in batches of the photo list, dealt round-robin to the ranks of a torchrun launch
(or to ``--shard I/N``), so that a batch holds the same photos whatever the number of ranks and
every rank computes exactly what one process would. The last step (rank 0, or ``--merge``) merges
the manifest parts and draws the montages, the tables and ``index.html``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..core.recording import Recording
from ..errors import UsageError, first_line
from ..inputs import images
from ..inputs.fourier import fourier, phase
from ..inputs.models import Network
from ..tables import Table, plural
from . import montage, selectivity
from .config import RunConfig, load_config
from .files import Manifest, Output, OutputFolder, Result, remove_temporaries
from .plan import Model, Plan, plan
from .render import render

Progress = Callable[[str, int, int], None]  # (what, files done, files in all)


class _Photos(Dataset):
    """Decodes photos in DataLoader workers; a photo that fails is returned as its error."""

    def __init__(self, photos: list[Path], network: Network):
        self.photos, self.transform = photos, network.transform  # paths as found

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i: int) -> tuple[int, Tensor | str]:
        try:
            return i, self.transform(images.load_image(self.photos[i]))
        except Exception as exc:  # noqa: BLE001 - any decode failure is that photo's, reported
            return i, first_line(exc)


class _Work:
    """This rank's share of a run under way: the folder, the failures, and the count of the
    files written, which the progress follows."""

    def __init__(self, p: Plan, force: bool, progress: Progress | None):
        self.p, self.force, self.progress = p, force, progress
        self.folder = OutputFolder(p.out, None if p.world == 1 else (p.rank, p.world))
        self.mine = [photo for batch in p.batches() for photo in batch]
        self.failures: dict[tuple[Path, str], str] = {}  # (photo, model) -> why
        self.written = self.skipped = self.photos_current = 0
        self.total = 0  # files to write
        self.at = ""  # what is being computed

    def tick(self, what: str | None = None) -> None:
        self.at = what or self.at
        if self.progress:
            self.progress(self.at, self.written, self.total)

    def write(self, output: Output, data: np.ndarray | str, neuron: list[int] | None = None) -> None:
        self.folder.write(output, data, neuron)
        self.written += 1
        self.tick()

    def fail(self, photo: Path, model: str, why: str) -> None:
        self.failures.setdefault((photo, model), why)


def execute(p: Plan, *, force: bool = False, progress: Progress | None = None) -> Result:
    """Compute every output of this rank that is not current: the files written, the files
    current (skipped), the photos (per model) whose files were all current, and the photos
    that failed (recorded in the manifest unless nothing at all was made)."""
    work = _Work(p, force, progress)
    remove_temporaries(p.out, (o.file for photo in work.mine for m in p.models for o in p.outputs(photo, m)))
    for photo in work.mine:
        if p.photos[photo].sha256 is None:
            for model in p.models:
                work.fail(photo, model.network.name, f"cannot read image {p.found[photo]}")
    pending: dict[str, dict[Path, list[Output]]] = {}
    for model in p.models:
        pending[model.network.name] = {}
        for photo in work.mine:
            if p.photos[photo].sha256 is None:
                continue
            outputs = p.outputs(photo, model)
            todo = outputs if force else [o for o in outputs if not work.folder.current(o)]
            work.skipped += len(outputs) - len(todo)
            work.total += len(todo)
            if todo:
                pending[model.network.name][photo] = todo
            else:
                work.photos_current += 1
    for model in p.models:
        _model(work, model, pending[model.network.name])
    if work.written or work.skipped:  # a run that made nothing has no outputs to record holes among
        for (photo, name), error in work.failures.items():
            work.folder.fail(p.photos[photo], name, error)
    failed = [{"photo": str(p.found[photo]), "model": name, "error": error} for (photo, name), error in work.failures.items()]
    return Result(written=work.written, current=work.skipped, photos_current=work.photos_current, failed=failed,
                  out=p.out, stray=p.stray)  # fmt: skip


def _model(work: _Work, model: Model, pending: dict[Path, list[Output]]) -> None:
    """One model's pending outputs, batch by batch, photos decoded in background workers."""
    p = work.p
    batches = [b for b in ([photo for photo in batch if photo in pending] for batch in p.batches()) if b]
    order = [photo for batch in batches for photo in batch]
    index = {photo: i for i, photo in enumerate(order)}
    loader = DataLoader(_Photos([p.found[photo] for photo in order], model.network), batch_sampler=[[index[q] for q in b] for b in batches],
                        collate_fn=list, num_workers=p.config.workers if len(batches) > 1 else 0)  # fmt: skip
    for items in loader:
        for i, x in items:
            if isinstance(x, str):
                work.fail(order[i], model.network.name, x)
        decoded = [(order[i], x) for i, x in items if isinstance(x, Tensor)]
        for shape in dict.fromkeys(tuple(x.shape) for _, x in decoded):  # one stack per input size
            group = [(photo, x) for photo, x in decoded if tuple(x.shape) == shape]
            names = ", ".join(photo.name for photo, _ in group[:3]) + (", ..." if len(group) > 3 else "")
            work.tick(f"{model.network.name} · {names}")
            _batch(work, model, group, {photo: pending[photo] for photo, _ in group})


def _batch(work: _Work, model: Model, group: list[tuple[Path, Tensor]], todo: dict[Path, list[Output]]) -> None:
    """One forward pass for a batch of photos of one size; writes the files in `todo`."""
    p, network, seed = work.p, model.network, work.p.config.seed
    x = torch.stack([x for _, x in group]).to(network.device)
    shown = [network.picture(xi) for xi in x]
    for n, (photo, _) in enumerate(group):  # photo-level pictures (Fig. 7)
        for output in (o for o in todo[photo] if o.kind == "photo"):
            what = str(output.picture)
            work.write(output, shown[n] if what == "input" else _photo_picture(network, x[n], what, seed))
    needed = [o for outputs in todo.values() for o in outputs if o.kind != "photo"]
    if not needed:
        return
    layers = list(dict.fromkeys(str(o.layer) for o in needed))
    variants = [v for v in p.variants if any(o.variant == v.name for o in needed)]
    rec = Recording(model.graph, x, layer=layers, variants=variants)
    for layer in layers:
        at_layer = [o for o in needed if o.layer == layer]
        measured = {o.variant for o in at_layer if o.kind == "metric"}  # selectivity needs every selector
        metrics: dict[str, dict[str, Tensor]] = {str(v): {} for v in measured}
        for select, selector in p.selectors.items():
            asked = [v for v in variants if v.name in measured or any(o.variant == v.name and o.select == select for o in at_layer)]
            if not asked:
                continue
            signals = [rec.select(selector, variant=v, seed=seed, layer=layer) for v in asked]
            reversed_ = rec.reverse_many(list(zip(asked, signals)), layer=layer)  # one pass; (K, N, C, H, W) each
            for variant, signals_v, reversed_v in zip(asked, signals, reversed_):
                if variant.name in measured:
                    metrics[variant.name][select] = reversed_v
                for n, (photo, _) in enumerate(group):
                    if (photo, network.name) in work.failures:
                        continue
                    if not torch.isfinite(reversed_v[:, n]).all():
                        work.fail(photo, network.name, f"{variant.name} of {p.found[photo]} at {layer} overflowed: Inf or NaN values")
                        continue
                    for kk, result in enumerate(reversed_v[:, n]):
                        k = kk + 1 if selector.multiple else None
                        outputs = [o for o in todo[photo] if o.kind in ("picture", "raw")
                                   and (o.layer, o.variant, o.select, o.k) == (layer, variant.name, select, k)]  # fmt: skip
                        neuron = _neuron(signals_v[kk, n]) if outputs else None
                        pictures = {}  # (renderer, picture) -> array
                        for how in dict.fromkeys(o.render for o in outputs if o.kind == "picture"):
                            pictures.update({(how, s.lstrip("-") or how): a for s, a in render(result, str(how), shown[n])})
                        for output in outputs:
                            raw = output.kind == "raw"
                            work.write(output, result.float().cpu().numpy() if raw else pictures[output.render, output.picture], neuron)
        for output in (o for o in at_layer if o.kind == "metric"):
            n = next(i for i, (photo, _) in enumerate(group) if output in todo[photo])
            if (group[n][0], network.name) not in work.failures:
                scores = selectivity.score({s: r[:, n] for s, r in metrics[str(output.variant)].items()})
                work.write(output, json.dumps(scores, indent=1) + "\n")


def _neuron(signal: Tensor) -> list[int] | None:
    """The index of the one neuron a one-hot signal selects; None for any other signal."""
    nonzero = signal.flatten().nonzero()
    if len(nonzero) != 1:
        return None
    return [int(i) for i in np.unravel_index(int(nonzero[0]), tuple(signal.shape))]


def _photo_picture(network: Network, x: Tensor, what: str, seed: int) -> np.ndarray:
    if what == "fourier":
        return network.picture(fourier(x).to(x.dtype))
    return render(phase(x, seed), "paper")[0][1]


def finish(p: Plan) -> tuple[list[dict], list[dict]]:
    """Merge the manifest, then draw the montages, the tables and index.html (rank 0 or --merge).
    Returns this run's manifest rows and its tables."""
    folder = OutputFolder(p.out)  # every rank's part
    records = folder.manifest.records
    rows = [records[o.file] for photo in p.photos for m in p.models for o in p.outputs(photo, m)
            if o.file in records and (p.out / o.file).is_file()]  # fmt: skip
    photos = {str(photo) for photo in p.photos}
    failed = [r for r in folder.manifest.failed.values() if r.get("photo") in photos]
    tables = selectivity.tables(rows, p.out) if "selectivity" in p.config.tables else []
    remove_temporaries(p.out, [f for f in records if f.startswith(("montages/", "tables/"))])
    photo_order = [photo.id for photo in p.photos.values()]
    made = montage.montages(p.config.montages, rows, photo_order, folder)
    made += [folder.publish(Output("table", extra={"table": t["name"]}, name=t["csv"]), selectivity.csv(t)) for t in tables]
    folder.manifest.merge()  # one manifest.jsonl, the parts removed
    if p.config.report:
        from .report import write_report

        write_report(p.out, title=Path(p.config.source).stem, config_text=p.config.shown(), records=rows + failed,
                     montages=[{"file": m["file"], "title": m["title"]} for m in made if m["kind"] == "montage"],
                     tables=tables)  # fmt: skip
    return rows + made + failed, tables


@dataclass
class Counts:
    """What a run would write, per model, layer, variant and selector (or photo-level picture)."""

    source: str
    photos: int
    rows: list[tuple[str, str, str, str, int, int, int]]  # model, layer, variant, select, files, current, to do
    montages: bool

    def table(self) -> Table:
        total = [sum(int(row[i]) for row in self.rows) for i in (4, 5, 6)]
        more = " (and the montages, tables and report drawn at the end)" if self.montages else ""
        return Table(f"{self.source}: {plural(self.photos, 'photo')}{more}",
                     ["model", "layer", "variant", "select", "files", "current", "to compute"],
                     [[*row[:4], *(f"{v:,}" for v in row[4:])] for row in self.rows], right=("files", "current", "to compute"),
                     total=["total", "", "", "", *(f"{v:,}" for v in total)])  # fmt: skip


def dry_run(config: str | Path | Mapping[str, Any] | RunConfig, /, **overrides: Any) -> Counts:
    """What a run would compute, per model, layer, variant and selector; nothing written."""
    cfg = load_config(config, overrides)
    p = plan(cfg, shard=(0, 1), create=False)
    manifest = Manifest(p.out)
    counts: dict[tuple[str, str, str, str], list[int]] = {}
    for photo, model in itertools.product(p.photos, p.models):
        for o in p.outputs(photo, model):
            select = {"photo": o.picture, "metric": "selectivity"}.get(o.kind, o.select)
            key = (model.network.name, o.layer or "-", str(o.variant or "-"), str(select))
            tally = counts.setdefault(key, [0, 0])
            tally[0] += 1
            tally[1] += manifest.current(o)
    rows = [(*key, n, cur, n - cur) for key, (n, cur) in counts.items()]
    return Counts(str(cfg.source), len(p.photos), rows, bool(cfg.montages or cfg.tables or cfg.report))


def run(
    config: str | Path | Mapping[str, Any] | RunConfig,
    /,
    *,
    force: bool = False,
    shard: tuple[int, int] | None = None,
    merge: bool = False,
    progress: Progress | None = None,
    **overrides: Any,
) -> Result:
    """Run a batch config: photos × models × layers × variants × selectors × renderers.

    The Python side of ``reversenet run``; docs/design.md §5 states the names, the reuse of
    current outputs and the split across processes.

    Parameters
    ----------
    config : str, pathlib.Path or mapping
        A YAML file, the name of a shipped experiment (``fig3-eight-variants``,
        ``fig4-neuron-selectivity``, ``fig5-random-weights``, ``fig7-phase``) or a dict of
        config keys (``images``, ``model``, ``weights``, ``layers``, ``variants``,
        ``select``, ``render``, ``batch_size``, ``device``, ``out``, ``montages``,
        ``tables``, ``report``, ...; the README lists them all).
    force : bool, default False
        Recompute outputs that are current.
    shard : (int, int), optional
        (I, N): compute the I-th of N shares of the photos (I from 0) and leave montages,
        tables and the report to a ``merge=True`` run.
    merge : bool, default False
        Only the last step of a sharded run.
    progress : rich.progress.Progress, optional
        Shows the run's progress there.
    **overrides
        Config keys that replace the config's (``weights="random"``).

    Returns
    -------
    reversenet.output.batch.Result
        A list of the manifest rows (dicts) of the run's outputs, failures with kind
        ``failed`` (a photo that cannot be read is recorded and skipped, not raised), with
        attributes ``written``, ``current``, ``failed``, ``tables``, ``out``, ``finished``.

    Raises
    ------
    reversenet.UsageError
        A bad config: the file, line, key and choices named.

    Examples
    --------
    >>> import reversenet
    >>> rows = reversenet.run({"model": "alexnet", "weights": "random", "layers": ["pool5"],
    ...                        "variants": ["deconvnet", "desalinet"], "out": "out"}, report=False)
    >>> sorted(row["variant"] for row in rows)
    ['deconvnet', 'desalinet']
    >>> reversenet.run({"model": "alexnet", "weights": "random", "layers": ["pool5"],
    ...                 "variants": ["deconvnet", "desalinet"], "out": "out"}, report=False).current
    2
    """
    cfg = load_config(config, overrides)
    p = plan(cfg, shard=shard)
    if merge and not list(p.out.glob("manifest.rank-*-of-*.jsonl")):
        raise UsageError(f"nothing to merge: {p.out} holds no shard manifests (manifest.rank-I-of-N.jsonl); "
                         "run the shards (--shard I/N) into this folder first")  # fmt: skip
    done = execute(p, force=force, progress=progress) if not merge else Result(out=p.out, stray=p.stray)
    if dist.is_initialized():
        dist.barrier()
    finished = shard is None or merge
    if finished and p.rank == 0:
        rows, tables = finish(p)
    else:  # a shard, or a rank other than 0: the rows of its own photos
        records = Manifest(p.out).records
        mine = [photo for batch in p.batches() for photo in batch]
        rows = [records[o.file] for photo in mine for m in p.models for o in p.outputs(photo, m) if o.file in records]
        tables = []
    if dist.is_initialized():
        dist.barrier()
    return Result(rows, written=done.written, current=done.current, photos_current=done.photos_current,
                  failed=done.failed, tables=tables, out=p.out, stray=p.stray, finished=finished)  # fmt: skip
