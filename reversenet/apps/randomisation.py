"""Model-parameter randomisation test (Adebayo et al., 2018) for reversed architectures.

Does a picture depend on the network's weights, or only on its architecture and the
photo? The layers with parameters on the way to the reversed layer are re-initialised
(their own ``reset_parameters``, seeded) and the pictures of every variant are compared
with those of the trained network:

* ``cascading``: from the top layer down to the input, each step randomising one more;
* ``independent``: one layer at a time, the others trained.

The neuron reversed stays the one chosen on the trained network. Similarities, per photo
then averaged: Spearman rank correlation of the absolute values (SciPy), SSIM of the
per-pixel L∞ maps scaled to [0, 1] (scikit-image), and the correlation of the sign
patterns. ``deconvnet-center`` is always measured as the control without a bottleneck
(no ReLU masks, no pooling switches): how a picture changes when only the weights can
change it (design page §8).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..choices import SANITY_TESTS as TESTS
from ..choices import VARIANTS
from ..core.recording import Recording
from ..core.variants import VariantSpec, expand, load_variant
from ..errors import UsageError
from ..inputs.images import find_images, load_image, sample_image, sha256_file
from ..inputs.models import Network
from ..inputs.spec import DEVICE, MODEL, SEED, WEIGHTS, NetworkSpec, as_network
from ..output.files import Output, OutputFolder, csv_text
from ..tables import Table

CONTROL = "deconvnet-center"  # no bottleneck at all
METRICS = ("spearman", "ssim", "sign")
_NAMES = {"spearman": "Spearman rank correlation", "ssim": "SSIM", "sign": "correlation of the signs"}
ORIGINAL = "original"  # the step before any layer is randomised


def similarity(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Spearman correlation of |a| and |b|, SSIM of their L∞ maps over the colour axis
    (each scaled by its maximum), and the correlation of their sign patterns; pictures
    (C, H, W). A constant input gives NaN where a correlation is undefined."""
    from scipy.stats import ConstantInputWarning, spearmanr  # here: the CLI starts without them
    from skimage.metrics import structural_similarity

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)  # NaN says it
        rank = float(spearmanr(np.abs(a).ravel(), np.abs(b).ravel()).statistic)
        maps = [np.abs(p).max(0) for p in (a, b)]
        maps = [m / m.max() if m.max() > 0 else m for m in maps]
        ssim = float(structural_similarity(maps[0], maps[1], data_range=1.0))
        sa, sb = np.sign(a).ravel(), np.sign(b).ravel()
        if sa.std() > 0 and sb.std() > 0:
            sign = float(np.corrcoef(sa, sb)[0, 1])
        else:  # a constant pattern: 1 or −1 against another (same or opposite), 0 against a varying one
            sign = float(2 * np.mean(sa == sb) - 1) if sa.std() == sb.std() == 0 else 0.0
    return {"spearman": rank, "ssim": ssim, "sign": sign}


def randomisable(rec: Recording, layer: str) -> list[str]:
    """The modules with parameters of their own (and a ``reset_parameters``) on the way
    to `layer`, from the input up."""
    names: list[str] = []
    for step, _ in rec.rules(CONTROL, layer):
        if step.node.op != "call_module" or not hasattr(step.op, "reset_parameters"):
            continue
        name = str(step.node.target)
        if next(step.op.parameters(recurse=False), None) is not None and name not in names:
            names.append(name)
    return names


@dataclass
class Sanity:
    """The outcome of `sanity`.

    Parameters
    ----------
    network : str
        The network's name.
    layer : str
        The layer the pictures were reversed from.
    layers : list of str
        The layers randomised, from the input up.
    rows : list of dict
        One per test, step, method and photo: ``test``, ``step`` (0: nothing randomised),
        ``randomised`` (the last layer randomised), ``method``, ``photo``, and the
        similarities ``spearman``, ``ssim`` and ``sign`` (1 = unchanged).
    params : dict, optional
        What made it: the network, the photos (their sha256) and the options.
    current : bool, default False
        Read back from files a rerun found current, not computed.

    Examples
    --------
    >>> import reversenet
    >>> result = reversenet.sanity("alexnet", weights="random", variants=["desalinet"], tests=["independent"])
    >>> sorted(path.name for path in result.save("sanity"))
    ['sanity-summary.csv', 'sanity.csv', 'sanity.json', 'sanity.png']
    >>> sorted({row["method"] for row in result.summary()})
    ['deconvnet-center', 'desalinet']
    """

    network: str
    layer: str
    layers: list[str]
    rows: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)  # what made it: the network, photos and options
    current: bool = False  # read back from files found current, not computed

    def summary(self) -> list[dict[str, Any]]:
        """Each similarity averaged over the photos.

        Returns
        -------
        list of dict
            Per test, step and method: ``test``, ``step``, ``randomised``, ``method``,
            ``photos`` and the mean ``spearman``, ``ssim`` and ``sign``.
        """
        groups: dict[tuple, list[dict]] = {}
        for row in self.rows:
            groups.setdefault((row["test"], row["step"], row["randomised"], row["method"]), []).append(row)
        return [
            {"test": t, "step": s, "randomised": r, "method": m, "photos": len(rows),
             **{k: float(np.nanmean([row[k] for row in rows])) for k in METRICS}}
            for (t, s, r, m), rows in groups.items()
        ]  # fmt: skip

    def table(self, test: str, metric: str = "spearman") -> Table:
        """One test's similarity as a table: a row per step, a column per method.

        Parameters
        ----------
        test : {"cascading", "independent"}
            The test.
        metric : {"spearman", "ssim", "sign"}, default "spearman"
            The similarity (its mean over the photos).

        Returns
        -------
        reversenet.tables.Table
            Cells as text, 3 decimals.
        """
        lines = [s for s in self.summary() if s["test"] == test]
        methods = list(dict.fromkeys(s["method"] for s in lines))
        steps = dict.fromkeys((s["step"], s["randomised"]) for s in lines)
        value = {(s["step"], s["method"]): s[metric] for s in lines}
        rows = [[str(step), name, *(f"{value[step, m]:.3f}" for m in methods)] for step, name in steps]
        title = f"{self.network}, {test} randomisation: {_NAMES[metric]} with the trained network's pictures"
        return Table(title, ["step", "randomised (top first)", *methods], rows, right=tuple(methods))

    def csv(self) -> str:
        """The rows as CSV text.

        Returns
        -------
        str
            A header, then one line per test, step, method and photo.
        """
        return csv_text(["test", "step", "randomised", "method", "photo", *METRICS], self.rows)

    def plot(self) -> bytes:
        """The plot, as in Adebayo et al.'s figures.

        Returns
        -------
        bytes
            A PNG: per test (rows) and similarity (columns), one line per method against
            the last layer randomised.
        """
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        summary = self.summary()
        tests = [t for t in TESTS if any(s["test"] == t for s in summary)]
        fig, axes = plt.subplots(len(tests), len(METRICS), figsize=(5 * len(METRICS), 3.6 * len(tests)), squeeze=False)
        for row, test in enumerate(tests):
            lines = [s for s in summary if s["test"] == test]
            labels = [ORIGINAL, *[f"{name}" for name in reversed(self.layers)]]
            for column, metric in enumerate(METRICS):
                ax = axes[row][column]
                for method in dict.fromkeys(s["method"] for s in lines):
                    points = sorted((s["step"], s[metric]) for s in lines if s["method"] == method)
                    style = {"linestyle": "--", "color": "black"} if method == CONTROL else {}
                    label = f"{method} (no bottleneck)" if method == CONTROL else method
                    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=label, **style)
                ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
                ax.set_ylim(-1.05 if metric == "sign" else -0.2, 1.05)
                ax.set_title(f"{test}: {metric}", fontsize=10)
                ax.grid(alpha=0.3)
        fig.legend(*axes[0][0].get_legend_handles_labels(), loc="center right", fontsize=8)
        fig.suptitle(f"{self.network}, reversed from {self.layer}: similarity to the trained network's pictures")
        fig.tight_layout(rect=(0, 0, 0.84, 1))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
        return buffer.getvalue()

    def save(self, out: Path | str) -> list[Path]:
        """Write sanity.csv, sanity-summary.csv, sanity.png and sanity.json (all of it, for a
        rerun to find current), each atomically, recorded in the folder's manifest.

        Parameters
        ----------
        out : str or pathlib.Path
            The folder (made if missing).

        Returns
        -------
        list of pathlib.Path
            The files written.
        """
        folder = OutputFolder(Path(out))
        summary = csv_text(["test", "step", "randomised", "method", "photos", *METRICS], self.summary())
        made: list[str | bytes] = [self.csv(), summary, self.plot(), json.dumps(dataclasses.asdict(self), ensure_ascii=False)]
        for output, data in zip(_outputs(self.params), made):
            folder.write(output, data)
        return [folder.folder / o.file for o in _outputs(self.params)]

    @classmethod
    def load(cls, out: Path) -> Sanity:
        """The outcome that `save` wrote into `out`.

        Parameters
        ----------
        out : pathlib.Path
            The folder.

        Returns
        -------
        Sanity
        """
        return cls(**json.loads((out / _FILES[-1]).read_text(encoding="utf-8")))


_FILES = ("sanity.csv", "sanity-summary.csv", "sanity.png", "sanity.json")


def _outputs(params: dict[str, Any]) -> list[Output]:
    return [Output("table" if f.endswith("csv") else "metric", extra=params, name=f) for f in _FILES]


def sanity(
    model: str | Network | NetworkSpec = MODEL,
    photos: Iterable[str | Path] | None = None,
    *,
    weights: str = WEIGHTS,
    seed: int = SEED,
    device: str = DEVICE,
    variants: Sequence[VariantSpec] = VARIANTS,
    layer: str | None = None,
    select: str = "max",
    tests: Sequence[str] = TESTS,
    out: Path | str | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Sanity:
    """The model-parameter randomisation test (Adebayo et al., 2018) for every variant.

    The layers with parameters below `layer` are re-initialised, from the top down
    (cascading) and one at a time (independent), and each picture is compared with the
    trained network's (docs/design.md §8). The Python side of ``reversenet sanity``.

    Parameters
    ----------
    model : str, reversenet.Network or NetworkSpec, default "vgg16"
        A torchvision name or ``package.module:factory``, loaded with `weights`, or a
        network (left unchanged: a copy is randomised).
    photos : iterable of str or pathlib.Path, optional
        Files, folders or globs; default the bundled sample photo.
    weights : str, default "DEFAULT"
        As in `reversenet.load_network`.
    seed : int, default 0
        Seeds the re-initialisations (and `random` weights).
    device : str, default "auto"
        ``auto`` (CUDA when there is one), ``cpu`` or ``cuda``.
    variants : sequence of str, pathlib.Path or Variant, default VARIANTS
        The variants to test; ``deconvnet-center`` (no bottleneck) is always added.
    layer : str, optional
        The layer reversed from; default the network's output (the logits).
    select : str, default "max"
        Which neuron, chosen once on the trained network.
    tests : sequence of str, default ("cascading", "independent")
        Which tests.
    out : str or pathlib.Path, optional
        Where to write sanity.csv, sanity-summary.csv, sanity.png and sanity.json; a
        rerun with the same network, photos and options finds them current and
        computes nothing.
    force : bool, default False
        Recompute when the files in `out` are current.
    progress : callable, optional
        Called with (steps done, steps in all).

    Returns
    -------
    Sanity

    Raises
    ------
    reversenet.UsageError
        An unknown test, variant or layer, or a layer with nothing to randomise below.

    Examples
    --------
    >>> import reversenet
    >>> result = reversenet.sanity("alexnet", weights="random", variants=["salinet"], tests=["cascading"])
    >>> result.layers[-1], result.layers[0]  # the paper's names, as -l takes them
    ('fc8', 'conv1')
    >>> table = result.table("cascading")
    >>> table.columns
    ['step', 'randomised (top first)', 'salinet', 'deconvnet-center']
    >>> table.rows[0]
    ['0', 'original', '1.000', '1.000']
    """
    unknown = [t for t in tests if t not in TESTS]
    if unknown or not tests:
        raise UsageError(f"unknown test {unknown[0] if unknown else ''!r}; choose from {', '.join(TESTS)}")
    spec = NetworkSpec.of(model, weights, seed, device)
    paths = find_images([str(p) for p in photos] if photos else [str(sample_image())])
    methods = list({v.name: v for v in map(load_variant, expand([*variants, CONTROL]))}.values())
    params = {**spec.identity(), "photos": {str(p.resolve()): sha256_file(p) for p in paths}, "layer": layer,
              "select": select, "tests": list(tests), "variants": [m.name for m in methods]}  # fmt: skip
    if out is not None and not force and all(OutputFolder(Path(out)).current(o) for o in _outputs(params)):
        return dataclasses.replace(Sanity.load(Path(out)), current=True)
    network = as_network(model, weights, seed=seed, device=device)
    x = torch.stack([network.transform(load_image(p)) for p in paths]).to(network.device)

    work = copy.deepcopy(network.module).eval()  # the network passed in stays as it is
    graph = network.graph(work)
    layer = layer or "output"
    rec = Recording(graph, x, layer=layer, variants=methods)
    names = randomisable(rec, layer)
    if not names:
        raise UsageError(f"no layer with parameters on the way to {layer!r}: nothing to randomise")
    trained = {n: copy.deepcopy(work.get_submodule(n).state_dict()) for n in names}
    signal = rec.select(select, variant=methods[0], seed=seed, layer=layer)  # fixed: the trained network's

    def pictures(now: Recording) -> dict[str, np.ndarray]:
        out = now.reverse_many([(m, signal) for m in methods], layer=layer)
        return {m.name: p.flatten(0, p.dim() - 4).cpu().double().numpy() for m, p in zip(methods, out)}

    reference = pictures(rec)  # the trained network's, from the recording already made
    rows: list[dict[str, Any]] = []

    def measure(test: str, step: int, randomised: str, now: dict[str, np.ndarray]) -> None:
        for method in methods:
            for i, (a, b) in enumerate(zip(reference[method.name], now[method.name])):
                rows.append({"test": test, "step": step, "randomised": randomised, "method": method.name,
                             "photo": paths[i % len(paths)].name, **similarity(a, b)})  # fmt: skip

    total, done = len(tests) * len(names), 0
    for test in tests:
        measure(test, 0, ORIGINAL, reference)
        for step, name in enumerate(reversed(names), 1):  # the top first
            _randomise(work.get_submodule(name), 1_000_003 * (seed + 1) + names.index(name))
            measure(test, step, name, pictures(Recording(graph, x, layer=layer, variants=methods)))
            if test == "independent":
                work.get_submodule(name).load_state_dict(trained[name])
            done += 1
            if progress:
                progress(done, total)
        for name in names:  # trained again for the next test
            work.get_submodule(name).load_state_dict(trained[name])
    shown = {module: name for name, module in network.aliases.items()}  # the paper's names where there are
    result = Sanity(network.name, graph.name_of(graph.resolve(layer)), [shown.get(n, n) for n in names],
                    [{**row, "randomised": shown.get(row["randomised"], row["randomised"])} for row in rows], params)  # fmt: skip
    if out is not None:
        result.save(out)
    return result


def _randomise(module: nn.Module, seed: int) -> None:
    """The module's parameters re-initialised its own way, from `seed`."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)  # a stream of its own: not the seed that made random weights
        # randomisable keeps only modules that have one; nn.Module does not declare it
        cast(Callable[[], None], module.reset_parameters)()
