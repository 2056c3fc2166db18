"""Batch runs from a config: `reversenet run CONFIG` and :func:`run`.

A run is planned in full before any work: every photo, model, layer, variant, selector and
renderer checked, every output named (:mod:`reversenet.output.files`). Then, per model, the photos
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
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..core.graph import Graph
from ..core.recording import Recording
from ..core.selectors import Mixture, Noise, Random, Selector, TopK, parse_selector
from ..core.variants import Variant, expand, load_variant
from ..errors import UsageError, first_line
from ..inputs import images
from ..inputs.fourier import fourier, phase
from ..inputs.images import sha256_file
from ..inputs.models import Network, load_network, pick_device, weights_identity
from . import files, montage
from .config import RunConfig, load_config
from .files import Manifest, Output, photo_ids, remove_temporaries, slug, unique, versions
from .render import SUFFIXES, render

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class Model:
    """A network loaded and traced once for the whole run, with the layers asked of it."""

    network: Network
    graph: Graph
    layers: list[str]
    identity: dict[str, Any]  # weights (and weights_sha256 for a file)


@dataclass
class Plan:
    """Everything a run will make, named and checked before any work."""

    config: RunConfig
    out: Path
    photos: list[Path]  # resolved, in the order found
    found: dict[Path, Path]  # each photo as found (relative, as given), for messages
    ids: dict[Path, str]
    models: list[Model]
    variants: list[Variant]
    selectors: dict[str, Selector]
    stray: list[str]  # files among the photos that are not photos, and why
    rank: int = 0
    world: int = 1
    lead: list[str] = field(default_factory=list)  # photo-level pictures: asked for, or by a montage
    hashes: dict[Path, str | None] = field(default_factory=dict)  # this rank's photos; None: unreadable

    def batches(self) -> list[list[Path]]:
        """This rank's batches: fixed chunks of the photo list, dealt round-robin."""
        size = self.config.batch_size
        chunks = [self.photos[i : i + size] for i in range(0, len(self.photos), size)]
        return chunks[self.rank :: self.world]

    def selector_name(self, select: str) -> str:
        return "" if select == "max" else "_" + slug(select)

    def photo_params(self, photo: Path, model: Model) -> dict[str, Any]:
        return {"photo": str(photo), "photo_id": self.ids[photo], "photo_sha256": self.hashes.get(photo),
                "model": model.network.name}  # fmt: skip

    def outputs(self, photo: Path, model: Model) -> list[Output]:
        """The files one photo makes with one model, in a fixed order."""
        base = self.photo_params(photo, model)
        stem = f"{self.ids[photo]}_{slug(model.network.name)}"
        seed = self.config.seed
        made = [Output(f"{stem}_{what}.png", "photo", {**base, "picture": what, "seed": seed, **versions()})
                for what in self.lead]  # fmt: skip
        common = {**base, **model.identity, "seed": seed}
        for layer, variant in itertools.product(model.layers, self.variants):
            rules = {**variant.rules, **({"fallback": variant.fallback} if variant.fallback else {})}
            params = {**common, "layer": layer, "variant": variant.name, "variant_rules": rules}
            name = f"{stem}_{slug(layer)}_{slug(variant.name)}"
            for select, selector in self.selectors.items():
                ks = range(1, selector.k + 1) if isinstance(selector, TopK) else [None]
                for k in ks:
                    numbered = name + self.selector_name(select) + (f"_{k}" if k else "")
                    p = {**params, "select": select, "k": k}
                    for how in self.config.render:
                        for suffix in SUFFIXES[how]:
                            label = suffix.lstrip("-") or how
                            made.append(Output(f"{numbered}{suffix}.png", "picture",
                                               {**p, "render": how, "picture": label, **versions()}))  # fmt: skip
                    if self.config.raw:
                        made.append(Output(f"{numbered}.npy", "raw", {**p, **versions()}))
            if "selectivity" in self.config.tables:
                made.append(Output(f"{name}_selectivity.json", "metric",
                                   {**params, "select": list(self.selectors), **versions()}))  # fmt: skip
        return made


def plan(config: RunConfig, *, shard: tuple[int, int] | None = None) -> Plan:
    """Check `config` in full and name every output; no work yet."""
    with config.blame("images"):
        stray: list[str] = []
        specs = config.images or [str(images.sample_image())]
        found: dict[Path, Path] = {}  # resolved -> as found, for messages
        for path in images.find_images(specs, skipped=stray):
            found.setdefault(path.resolve(), path)
        photos = list(found)
    with config.blame("variants"):
        variants = [load_variant(v) for v in expand(config.variants)]
    variants = list({(v.name, repr(v.rules), v.fallback): v for v in variants}.values())  # `all` and a name: once
    selectors = {}
    with config.blame("select"):
        for select in config.select:
            selectors[select] = parse_selector(select)
    with config.blame("device"):
        device = pick_device(config.device)
    models = []
    for spec in config.model:
        with config.blame("model"):
            network = load_network(spec, config.weights, seed=config.seed, device=device)
        with config.blame("layers"):
            graph = network.graph()
            layers = list(dict.fromkeys(config.layers or [graph.default_layer()]))
            shapes = graph.shapes(torch.zeros(1, 3, *network.input_size, device=device))
            nodes = {layer: graph.resolve(layer) for layer in layers}
        with config.blame("select"):
            for layer, (select, selector) in itertools.product(layers, selectors.items()):
                _check(selector, select, layer, shapes.get(nodes[layer].name))
        with config.blame("weights"):
            identity = weights_identity(spec, config.weights)
        models.append(Model(network, graph, layers, identity))
    with config.blame("montages"):
        montage.check_axes(config.montages)
    out = Path(config.out or f"reversenet-out/{Path(config.source).stem}")
    with config.blame("out"):
        files.writable_folder(out)
    rank, world = shard or _ranks()
    manifest = Manifest(out)
    ids = photo_ids(photos, manifest.photo_ids())
    lead = list(dict.fromkeys([*config.lead, *(what for m in config.montages for what in m["lead"])]))
    p = Plan(config, out, photos, found, ids, models, variants, selectors, stray, rank, world, lead)
    unique(o for photo in photos for m in models for o in p.outputs(photo, m))
    return p


def _check(selector: Selector, select: str, layer: str, shape: tuple[int, ...] | None) -> None:
    """Fail now on a selector that does not fit the layer (an index out of range, ...)."""
    if shape is None:
        raise UsageError(f"layer {layer!r} does not output a tensor")
    if not isinstance(selector, (Random, Mixture, Noise)):
        try:
            selector.signals(torch.zeros(1, *shape), reverse=lambda e: e, seed=0)
        except UsageError as exc:
            raise UsageError(f"{select} at {layer}: {exc}") from None


def _ranks() -> tuple[int, int]:
    """This process's rank and the world size of a torchrun launch; (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


class Result(list):
    """The manifest rows of a run's outputs (dicts; failures have kind ``failed``), with what
    the run did: files written and current, photos all current, this process's failures,
    the tables, the folder, stray files left out, and whether the run is finished (a
    ``--shard`` run is not until ``--merge``)."""

    def __init__(self, rows: list[dict], *, written: int = 0, current: int = 0, photos_current: int = 0,
                 failed: Sequence[dict] = (), tables: Sequence[dict] = (), out: Path = Path(),
                 stray: Sequence[str] = (), finished: bool = True):  # fmt: skip
        super().__init__(rows)
        self.written, self.current, self.photos_current = written, current, photos_current
        self.failed, self.tables, self.out, self.stray, self.finished = list(failed), list(tables), out, list(stray), finished


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


def execute(p: Plan, *, force: bool = False, progress: Progress | None = None) -> tuple[int, int, int, list[dict]]:
    """Compute every output of this rank that is not current. Returns the files written, the
    files current (skipped), the photos (per model) whose files were all current, and the
    photos that failed (recorded in the manifest unless nothing at all was made)."""
    manifest = Manifest(p.out, None if p.world == 1 else (p.rank, p.world))
    mine = [photo for batch in p.batches() for photo in batch]
    remove_temporaries(p.out, (o.file for photo in mine for m in p.models for o in p.outputs(photo, m)))
    failures: dict[tuple[Path, str], str] = {}  # (photo, model) -> why
    for photo in mine:
        try:
            p.hashes[photo] = sha256_file(photo)
        except OSError as exc:
            p.hashes[photo] = None
            for model in p.models:
                failures[photo, model.network.name] = f"cannot read image {p.found[photo]}: {exc.strerror or exc}"
    written = skipped = done = photos_current = 0
    total = len(mine) * len(p.models)
    for model in p.models:
        pending: dict[Path, list[Output]] = {}
        for photo in mine:
            if p.hashes[photo] is None:
                done += 1
                continue
            outputs = p.outputs(photo, model)
            todo = outputs if force else [o for o in outputs if not manifest.current(o)]
            skipped += len(outputs) - len(todo)
            if todo:
                pending[photo] = todo
            else:
                done += 1
                photos_current += 1
        batches = [[photo for photo in batch if photo in pending] for batch in p.batches()]
        batches = [b for b in batches if b]
        order = [photo for batch in batches for photo in batch]
        index = {photo: i for i, photo in enumerate(order)}
        loader = DataLoader(_Photos([p.found[photo] for photo in order], model.network), batch_sampler=[[index[q] for q in b] for b in batches],
                            collate_fn=list, num_workers=p.config.workers if len(batches) > 1 else 0)  # fmt: skip
        for items in loader:
            for i, x in items:
                if isinstance(x, str):
                    failures[order[i], model.network.name] = x
            decoded = [(order[i], x) for i, x in items if isinstance(x, Tensor)]
            for shape in dict.fromkeys(tuple(x.shape) for _, x in decoded):  # one stack per input size
                group = [(photo, x) for photo, x in decoded if tuple(x.shape) == shape]
                written += _batch(p, model, group, {photo: pending[photo] for photo, _ in group}, manifest, failures)
            done += len(items)
            if progress:
                progress(f"{model.network.name} · {order[items[-1][0]].name}", done, total)
    if written or skipped:  # a run that made nothing has no outputs to record holes among
        models = {m.network.name: m for m in p.models}
        for (photo, name), error in failures.items():
            manifest.fail(p.photo_params(photo, models[name]), error)
    return written, skipped, photos_current, [{"photo": str(p.found[photo]), "model": name, "error": error}
                                             for (photo, name), error in failures.items()]  # fmt: skip


def _batch(
    p: Plan,
    model: Model,
    group: list[tuple[Path, Tensor]],
    todo: dict[Path, list[Output]],
    manifest: Manifest,
    failures: dict[tuple[Path, str], str],
) -> int:
    """One forward pass for a batch of photos of one size; writes the files in `todo`."""
    network, seed = model.network, p.config.seed
    device = next(network.module.parameters(), torch.empty(0)).device
    x = torch.stack([x for _, x in group]).to(device)
    shown = [network.picture(xi) for xi in x]
    wanted = {photo: {o.file: o for o in outputs} for photo, outputs in todo.items()}
    written = 0

    def save(output: Output, array: np.ndarray | str, neuron: list[int] | None = None) -> None:
        nonlocal written
        path = p.out / output.file
        if isinstance(array, str):
            files.save_text(array, path)
        elif output.kind == "raw":
            files.save_array(array, path)
        else:
            files.save_png(array, path)
        output.neuron = neuron
        manifest.add(output)
        written += 1

    for n, (photo, _) in enumerate(group):  # photo-level pictures (Fig. 7)
        for output in wanted[photo].values():
            if output.kind == "photo":
                what = output.params["picture"]
                array = shown[n] if what == "input" else _photo_picture(network, x[n], what, seed)
                save(output, array)
    needed = [o for outputs in wanted.values() for o in outputs.values() if o.kind != "photo"]
    if not needed:
        return written
    layers = list(dict.fromkeys(o.params["layer"] for o in needed))
    variants = [v for v in p.variants if any(o.params["variant"] == v.name for o in needed)]
    rec = Recording(model.graph, x, layer=layers, variants=variants)
    for layer in layers:
        at_layer = [o for o in needed if o.params["layer"] == layer]
        measured = {o.params["variant"] for o in at_layer if o.kind == "metric"}  # selectivity needs every selector
        metrics: dict[str, dict[str, Tensor]] = {v: {} for v in measured}
        for select, selector in p.selectors.items():
            asked = [v for v in variants if v.name in measured
                     or any(o.params["variant"] == v.name and o.params["select"] == select for o in at_layer)]  # fmt: skip
            if not asked:
                continue
            signals = [rec.select(selector, variant=v, seed=seed, layer=layer) for v in asked]
            reversed_ = rec.reverse_many(list(zip(asked, signals)), layer=layer)  # one pass; (K, N, C, H, W) each
            for variant, signals_v, reversed_v in zip(asked, signals, reversed_):
                if variant.name in measured:
                    metrics[variant.name][select] = reversed_v
                for n, (photo, _) in enumerate(group):
                    if (photo, network.name) in failures:
                        continue
                    images_n = reversed_v[:, n]
                    if not torch.isfinite(images_n).all():
                        failures[photo, network.name] = f"{variant.name} of {p.found[photo]} at {layer} overflowed: Inf or NaN values"
                        continue
                    for kk, result in enumerate(images_n):
                        k = kk + 1 if selector.multiple else None
                        outputs = [o for o in wanted[photo].values() if o.kind in ("picture", "raw")
                                   and (o.params["layer"], o.params["variant"], o.params["select"], o.params["k"])
                                   == (layer, variant.name, select, k)]  # fmt: skip
                        neuron = _neuron(signals_v[kk, n]) if outputs else None
                        pictures = {}  # (renderer, picture) -> array
                        for how in dict.fromkeys(o.params["render"] for o in outputs if o.kind == "picture"):
                            pictures.update({(how, s.lstrip("-") or how): a for s, a in render(result, how, shown[n])})
                        for output in outputs:
                            if output.kind == "raw":
                                save(output, result.float().cpu().numpy(), neuron)
                            else:
                                save(output, pictures[output.params["render"], output.params["picture"]], neuron)
        for output in (o for o in at_layer if o.kind == "metric"):
            n = next(i for i, (photo, _) in enumerate(group) if photo == Path(output.params["photo"]))
            if (group[n][0], network.name) not in failures:
                scores = montage.selectivity({s: r[:, n] for s, r in metrics[output.params["variant"]].items()})
                save(output, json.dumps(scores, indent=1) + "\n")
    return written


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
    manifest = Manifest(p.out)  # every rank's part
    records = manifest.records
    rows = [records[o.file] for photo in p.photos for m in p.models for o in p.outputs(photo, m)
            if o.file in records and (p.out / o.file).is_file()]  # fmt: skip
    photos = {str(photo) for photo in p.photos}
    failed = [r for r in manifest.failed.values() if r.get("photo") in photos]
    tables = montage.tables(p, rows)
    remove_temporaries(p.out, [f for f in records if f.startswith(("montages/", "tables/"))])
    made = montage.montages(p, rows, manifest) + [montage.save_table(p, t, manifest) for t in tables]
    manifest.merge()  # one manifest.jsonl, the parts removed
    if p.config.report:
        from .report import write_report

        write_report(p.out, title=Path(p.config.source).stem, config_text=p.config.shown(), records=rows + failed,
                     montages=[{"file": m["file"], "title": m["title"]} for m in made if m["kind"] == "montage"],
                     tables=tables)  # fmt: skip
    return rows + made + failed, tables


@dataclass
class Counts:
    photos: int
    rows: list[tuple[str, str, str, str, int, int, int]]  # model, layer, variant, select, files, current, to do


def dry_run(config: str | Path | Mapping[str, Any] | RunConfig, /, **overrides: Any) -> Counts:
    """What a run would compute, per model, layer, variant and selector; nothing written."""
    p = plan(load_config(config, overrides), shard=(0, 1))
    manifest = Manifest(p.out)
    for photo in p.photos:
        try:
            p.hashes[photo] = sha256_file(photo)
        except OSError:
            p.hashes[photo] = None
    counts: dict[tuple[str, str, str, str], list[int]] = {}
    for photo, model in itertools.product(p.photos, p.models):
        for o in p.outputs(photo, model):
            if o.kind in ("picture", "raw"):
                key = (model.network.name, o.params["layer"], o.params["variant"], o.params["select"])
                tally = counts.setdefault(key, [0, 0])
                tally[0] += 1
                tally[1] += manifest.current(o)
    return Counts(len(p.photos), [(*key, n, cur, n - cur) for key, (n, cur) in counts.items()])


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
    written, current, photos_current, failed = execute(p, force=force, progress=progress) if not merge else (0, 0, 0, [])
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
    return Result(rows, written=written, current=current, photos_current=photos_current, failed=failed,
                  tables=tables, out=p.out, stray=p.stray, finished=finished)  # fmt: skip
