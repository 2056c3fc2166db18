"""Speed and memory of reversenet side by side with autograd and captum, in one run.

    python benchmarks/speed.py [--model vgg16] [--size 224] [--repeats 3] [--device cpu]
                               [--markdown PATH] [--quick]

Every contender computes the same pictures from the same input on one network (random
weights, parameters frozen; reversenet traces it once and uses its public API):

* time: contenders are timed in small groups (a row's contender with its baseline); each
  round calls every contender of the group once, in turn, the order rotated per round (so
  load on a shared machine hits them alike), after an untimed warm-up round; medians over
  rounds, min-max, and ratios of medians. On CUDA, when there is one, again.
* peak memory: each contender once in its own process (``--memory-probe``), its peak RSS
  (VmHWM) minus that of a process that only runs the forward pass to the layer (same batch).
* bottleneck: the bytes of the tensors reversenet's recording keeps for a variant against
  the bytes autograd saves for backward on the same forward.
* scaling: one desalinet picture at pool5 against autograd, larger images and batches.

Before timing, an untimed check that the pairs compute the same pictures: reversenet's
salinet is the autograd gradient, desalinet captum's GuidedBackprop, deconvnet captum's
Deconvolution. The layer names are VGG-16's; ``--model`` takes a torchvision name or
``package.module:factory`` of a network named alike.
"""

from __future__ import annotations

import functools
import json
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import torch
from captum.attr import Deconvolution, GuidedBackprop
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

import reversenet
from reversenet.core.graph import Graph
from reversenet.inputs.models import load_network

LAYERS = {"conv3_3": "features.14", "conv4_3": "features.21", "pool5": "features.30", "fc8": "classifier.6"}
TOPK = 16
TOLERANCE = 1e-5  # relative L2 difference allowed between pictures said to be the same
FORWARD = "forward only"  # the memory probe every other probe is measured above
PROBED = ("reversenet desalinet", "autograd gradient", "captum GuidedBackprop")  # memory rows
SCALED = ("reversenet desalinet", "autograd gradient")  # scaling rows
BATCHES = (1, 8)  # of the memory rows
# captum announces on every call that it sets requires_grad and hooks the ReLUs
warnings.filterwarnings("ignore", message="(Input Tensor 0 did not|Setting backward hooks)")

Contender = Callable[[], object]
Probe = tuple[str, int, int]  # contender (or FORWARD), image size, batch


class _Stop(Exception):
    """Ends a forward pass at the layer: nothing after it is computed."""


def forward_to(net: nn.Module, layer: str, x: Tensor) -> Tensor:
    """`layer`'s output, the forward pass stopped there."""
    out = {}

    def hook(module: nn.Module, args: tuple, y: Tensor) -> None:
        out["y"] = y
        raise _Stop

    handle = net.get_submodule(layer).register_forward_hook(hook)
    try:
        net(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    return out["y"]


def forward_only(net: nn.Module, layer: str, x: Tensor) -> Tensor:
    with torch.no_grad():
        return forward_to(net, layer, x)


def autograd_gradient(net: nn.Module, layer: str, x: Tensor, rank: int = 0) -> Tensor:
    """The input gradient of each image's `rank`-th most active neuron of `layer` (0: the max)."""
    x = x.detach().requires_grad_(True)
    y = forward_to(net, layer, x)
    flat = y.detach().flatten(1)
    e = torch.zeros_like(flat).scatter_(1, flat.topk(rank + 1, dim=1).indices[:, rank:], 1.0)
    return torch.autograd.grad(y, x, e.view_as(y))[0]


def autograd_top(net: nn.Module, layer: str, x: Tensor) -> list[Tensor]:
    """The top-k pictures by autograd: one forward and backward per neuron."""
    return [autograd_gradient(net, layer, x, rank) for rank in range(TOPK)]


def picture(graph: Graph, x: Tensor, layer: str, variant: str, select: str = "max") -> Tensor:
    """reversenet as a user calls it for one variant: (K, N, C, H, W)."""
    return reversenet.Recording(graph, x, layer=layer, variants=[variant]).visualize(select, variant)


def compare(graph: Graph, x: Tensor, layer: str) -> dict[str, Tensor]:
    """The eight variants from one recording, as `reversenet compare` makes them."""
    return reversenet.Recording(graph, x, layer=layer).visualize_many("max")


class Truncated(nn.Module):
    """`net` up to `layer`, flattened, so that captum's `target` indexes the layer's neurons."""

    def __init__(self, net: nn.Module, layer: str):
        super().__init__()
        self.net, self.layer = net, layer

    def forward(self, x: Tensor) -> Tensor:
        return forward_to(self.net, self.layer, x).flatten(1)


def captum_method(method: type, net: nn.Module, layer: str, x: Tensor) -> Contender:
    """captum's `method` on each image's most active neuron of `layer`. captum needs the
    neuron beforehand: it is found on the first call (the untimed warm-up) and reused."""
    model = Truncated(net, layer)
    attribution = method(model)
    target = functools.cache(lambda: _argmax(model, x))
    return lambda: attribution.attribute(x, target=target())


def _argmax(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


def picture_contenders(net: nn.Module, graph: Graph, x: Tensor, layer: str) -> dict[str, Contender]:
    """One picture of each image at `layer`, by each library."""
    return {
        "reversenet desalinet": lambda: picture(graph, x, layer, "desalinet"),
        "reversenet deconvnet": lambda: picture(graph, x, layer, "deconvnet"),
        "autograd gradient": lambda: autograd_gradient(net, layer, x),
        "captum GuidedBackprop": captum_method(GuidedBackprop, net, layer, x),
        "captum Deconvolution": captum_method(Deconvolution, net, layer, x),
    }


def time_groups(net: nn.Module, graph: Graph, x: Tensor) -> list[dict[str, Contender]]:
    """The main table's timed contenders, named "<layer>: <contender>", in groups timed one
    after the other: a row's contender and baseline share rounds of a few seconds, so that
    changes of load on a shared machine hit them alike."""
    groups = [
        {f"{at}: {name}": fn for name, fn in picture_contenders(net, graph, x, LAYERS[at]).items()}
        for at in ("pool5", "fc8")
    ]
    pool5 = LAYERS["pool5"]
    groups.append({
        "pool5: reversenet compare": functools.partial(compare, graph, x, pool5),
        "pool5: 8 × autograd gradient": lambda: [autograd_gradient(net, pool5, x) for _ in range(8)],
    })  # fmt: skip
    for at in ("conv3_3", "conv4_3"):
        layer, top = LAYERS[at], f"topk:{TOPK}"
        groups.append({
            f"{at}: reversenet top-{TOPK}": functools.partial(picture, graph, x, layer, "desalinet", top),
            f"{at}: {TOPK} × autograd gradient": functools.partial(autograd_top, net, layer, x),
        })  # fmt: skip
    return groups


def timed_groups(groups: list[dict[str, Contender]], rounds: int, device: str) -> dict[str, Measure]:
    return {
        name: Measure(tuple(t), "s") for group in groups for name, t in timed(group, rounds, device).items()
    }


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(
    contenders: dict[str, Contender], rounds: int, device: str, warmup: bool = True
) -> dict[str, list[float]]:
    """Seconds per call of each contender. Each round calls every contender once, the
    order rotated by one per round, so that load on a shared machine hits them alike."""
    names = list(contenders)
    if warmup:
        for name in names:
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            _sync(device)
            start = time.perf_counter()
            contenders[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def relative_difference(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def check_same_pictures(net: nn.Module, graph: Graph, x: Tensor) -> float:
    """The largest relative difference between pictures that each pair says are the same."""
    pairs = []
    for at in ("pool5", "fc8"):
        layer = LAYERS[at]
        ours = picture_contenders(net, graph, x, layer)
        pairs += [
            (picture(graph, x, layer, "salinet")[0], ours["autograd gradient"]()),
            (ours["reversenet desalinet"]()[0], ours["captum GuidedBackprop"]()),
            (ours["reversenet deconvnet"]()[0], ours["captum Deconvolution"]()),
        ]
    for at in ("conv3_3", "conv4_3"):  # the top-k baseline's ranks are reversenet's order
        layer = LAYERS[at]
        top = picture(graph, x, layer, "salinet", f"topk:{TOPK}")
        pairs += [(top[rank], autograd_gradient(net, layer, x, rank)) for rank in (0, TOPK - 1)]
    return max(relative_difference(a, b) for a, b in pairs)


def autograd_saved_bytes(net: nn.Module, layer: str, x: Tensor) -> int:
    """Bytes of the distinct storages autograd saves for backward on the forward to
    `layer`; the weights and the input are not counted (reversenet keeps them too)."""
    saved: list[Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        forward_to(net, layer, x.detach().requires_grad_(True))
    kept = {_storage(p) for p in net.parameters()} | {_storage(x)}
    return _bytes([t for t in saved if _storage(t) not in kept])


def reversenet_bottleneck(graph: Graph, x: Tensor, layer: str, variant: str) -> tuple[int, float]:
    """Bytes of the tensors a recording for `variant` keeps to reverse `layer`, and the
    information they carry (1 bit per ReLU mask element, log2(window) per switch) in bytes."""
    rec = reversenet.Recording(graph, x, layer=layer, variants=[variant])
    per_image = sum(size for _, _, size in rec.bottleneck_bytes(variant))
    bits = sum(size for _, _, size in rec.bottleneck_bits(variant))
    return round(per_image * x.shape[0]), bits * x.shape[0] / 8


def _storage(t: Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _bytes(tensors: list[Tensor]) -> int:
    """Total size of the distinct storages behind `tensors` (views count once)."""
    return sum({_storage(t): t.untyped_storage().nbytes() for t in tensors}.values())


def load(model: str, device: str) -> tuple[nn.Module, Graph]:
    """The network with random weights, frozen (no contender needs their gradient), and traced."""
    net = load_network(model, "random", device=device).module.requires_grad_(False)
    return net, Graph(net)


def make_input(size: int, batch: int, device: str) -> Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)


def memory_probe(name: str, model: str, size: int, batch: int) -> None:
    """Run one contender once at pool5 and print this process's peak RSS in bytes."""
    net, graph = load(model, "cpu")
    x = make_input(size, batch, "cpu")
    pool5 = LAYERS["pool5"]
    if name == FORWARD:
        forward_only(net, pool5, x)
    else:
        picture_contenders(net, graph, x, pool5)[name]()
    # VmHWM, not getrusage's ru_maxrss: a process started by a larger one (this script after its
    # timings) inherits its parent's ru_maxrss through fork and exec; VmHWM is this process's own
    status = Path("/proc/self/status").read_text().splitlines()
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss": peak_kib * 1024}))


def peak_rss(model: str, probes: list[Probe]) -> dict[Probe, int]:
    """The peak RSS of a fresh process per probe (see memory_probe). Two run at a time: RSS
    is each process's own, and much of a probe's time is importing torch."""

    def run(probe: Probe) -> int:
        name, size, batch = probe
        command = [sys.executable, __file__, "--memory-probe", name, "--model", model,
                   "--size", str(size), "--batch", str(batch)]  # fmt: skip
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return json.loads(out.splitlines()[-1])["peak_rss"]

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(probes, pool.map(run, probes)))


def above_forward(rss: dict[Probe, int], name: str, size: int, batch: int) -> float:
    """MiB a contender needs above a process that only runs the forward pass."""
    return (rss[name, size, batch] - rss[FORWARD, size, batch]) / 2**20


def memory_probes(model: str, size: int, configs: list[tuple[int, int]], log: Callable) -> dict[Probe, int]:
    """Peak RSS of every probe the tables need: the main table's batches and the scaling rows."""
    probes = [(n, size, b) for b in BATCHES for n in (FORWARD, *PROBED)]
    probes += [(n, s, b) for s, b in configs for n in (FORWARD, *SCALED)]
    probes = list(dict.fromkeys(probes))  # the main table's input is also the first scaling row
    log(f"memory: {len(probes)} probe processes")
    return peak_rss(model, probes)


@dataclass(frozen=True)
class Measure:
    samples: tuple[float, ...]
    unit: str

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def __str__(self) -> str:
        text = f"{_num(self.median)} {self.unit}"
        if len(self.samples) == 1:
            return text
        return f"{text} ({_num(min(self.samples))}–{_num(max(self.samples))})"


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


@dataclass(frozen=True)
class Comparison:
    """One row: `contender` against `baseline`, the ratio of medians and its target."""

    what: str
    contender: str
    baseline: str
    target: float | None = None  # None: shown for information
    target_text: str = ""

    def cells(self, values: dict[str, Measure], gpu: dict[str, Measure] | str) -> list[str]:
        ours, base = values.get(self.contender), values.get(self.baseline)
        ratio = ours.median / base.median if ours and base and base.median > 0 else None
        target = met = "—"
        if self.target is not None:
            target = f"≤ {self.target_text or _num(self.target) + '×'}"
            if ratio is not None:
                met = "yes" if ratio <= self.target else f"no, by {ratio / self.target:.2f}×"
        if isinstance(gpu, str):
            on_gpu = gpu
        else:
            on_gpu = _ratio(gpu[self.contender].median, gpu[self.baseline].median)
        shown = "—" if ratio is None else f"{ratio:.3g}×"
        return [self.what, _short(self.contender), _short(self.baseline), str(ours or "not measured"),
                str(base or "not measured"), shown, target, met, on_gpu]  # fmt: skip


def _ratio(a: float | None, b: float | None) -> str:
    """a / b as "0.42×"; "—" where either was not measured or b is not positive (a memory
    difference lost in the noise of a tiny network)."""
    return f"{a / b:.3g}×" if a is not None and b is not None and b > 0 else "—"


def _short(key: str) -> str:
    """A contender's name without its "<layer>: " or "b<batch>: " prefix."""
    return key.partition(": ")[2] or key


def time_comparisons() -> list[Comparison]:
    rows = []
    for at in ("pool5", "fc8"):
        what, ours = f"one picture at {at}", f"{at}: reversenet"
        rows += [
            Comparison(what, f"{ours} desalinet", f"{at}: autograd gradient", 1.0),
            Comparison(what, f"{ours} desalinet", f"{at}: captum GuidedBackprop", 0.9),
            Comparison(what, f"{ours} deconvnet", f"{at}: captum Deconvolution", 0.9),
        ]
    rows.append(Comparison("compare: 8 variants at pool5", "pool5: reversenet compare",
                           "pool5: 8 × autograd gradient", 0.58))  # fmt: skip
    for at in ("conv3_3", "conv4_3"):
        rows.append(Comparison(f"top-{TOPK} at {at}, each on its own", f"{at}: reversenet top-{TOPK}",
                               f"{at}: {TOPK} × autograd gradient", 0.1))  # fmt: skip
    return rows


def memory_comparisons() -> list[Comparison]:
    rows = []
    for b in BATCHES:
        what = f"peak memory, one picture at pool5, batch {b}"
        rows += [
            Comparison(what, f"b{b}: reversenet desalinet", f"b{b}: autograd gradient", 0.5),
            Comparison(what, f"b{b}: captum GuidedBackprop", f"b{b}: autograd gradient"),
        ]
    what = "bottleneck kept, pool5, batch 1"
    rows += [
        Comparison(what, "reversenet desalinet recording", "autograd saved tensors", 1 / 16, "1/16"),
        Comparison(what + ", information in it", "reversenet desalinet, bits / 8", "autograd saved tensors"),
    ]
    return rows


@dataclass
class Section:
    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str

    def rich(self) -> Table:
        table = Table(title=self.title, caption=self.note, caption_justify="left")
        for i, column in enumerate(self.columns):
            table.add_column(column, justify="left" if i < 3 else "right")
        for row in self.rows:
            table.add_row(*row)
        return table

    def markdown(self) -> str:
        lines = [
            f"### {self.title}",
            "",
            "| " + " | ".join(self.columns) + " |",
            "|" + "---|" * len(self.columns),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join([*lines, "", self.note, ""])


def machine() -> str:
    cpu = platform.processor() or "CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
        cpu = names[0] if names else cpu
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def exactness(net: nn.Module, graph: Graph, x: Tensor) -> str:
    """The check line; stops the run when the pairs do not compute the same pictures."""
    worst = check_same_pictures(net, graph, x)
    line = (f"Exactness check {'passed' if worst <= TOLERANCE else 'FAILED'}: reversenet salinet = "
            "autograd gradient, desalinet = captum GuidedBackprop, deconvnet = captum Deconvolution (pool5, "
            f"fc8; top-{TOPK} ranks 1 and {TOPK}: conv3_3, conv4_3); largest relative L2 difference "
            f"{worst:.1e} (allowed {TOLERANCE:.0e}).")  # fmt: skip
    if worst > TOLERANCE:
        raise SystemExit(line + " The timings would not compare like with like.")
    return line


def scaling_configs(size: int, quick: bool) -> list[tuple[int, int]]:
    """(image size, batch): the first is the main table's input."""
    if quick:
        return [(size, 1), (2 * size, 1), (size, 2)]
    return [(size, 1), (2 * size, 1), (4 * size, 1), (size, 8), (size, 32)]


def scaling_times(
    net: nn.Module, graph: Graph, configs: list[tuple[int, int]], rounds: int, device: str
) -> dict[tuple[int, int], list[float]]:
    """Median seconds of (reversenet, autograd) per config. Every config runs in each round, so
    that the growth compares runs under like load; no warm-up: the main table warmed the
    kernels, and these runs are long."""
    contenders = {}
    for s, b in configs:
        pictures = picture_contenders(net, graph, make_input(s, b, device), LAYERS["pool5"])
        contenders |= {f"{s} {b} {name}": pictures[name] for name in SCALED}
    times = timed(contenders, rounds, device, warmup=False)
    return {(s, b): [statistics.median(times[f"{s} {b} {name}"]) for name in SCALED] for s, b in configs}


def scaling_section(
    configs: list[tuple[int, int]], seconds: dict[tuple[int, int], list[float]], rounds: int,
    rss: dict[Probe, int], device: str,
) -> Section:  # fmt: skip
    """Per image, and relative to the first row, so that growth linear in pixels shows
    (`rss` empty: memory not measured)."""
    memory = {(s, b): [above_forward(rss, n, s, b) if rss else None for n in SCALED] for s, b in configs}
    s0, b0 = configs[0]
    rows = [
        [f"{s}×{s}, batch {b}", _ratio(s * s * b, s0 * s0 * b0), *(f"{_num(t / b)} s" for t in seconds[s, b]),
         _ratio(*seconds[s, b]), " / ".join(_ratio(t, t0) for t, t0 in zip(seconds[s, b], seconds[s0, b0])),
         *("—" if m is None else f"{_num(m)} MiB" for m in memory[s, b]), _ratio(*memory[s, b]),
         " / ".join(_ratio(m, m0) for m, m0 in zip(memory[s, b], memory[s0, b0]))]
        for s, b in configs
    ]  # fmt: skip
    columns = ["input", "pixels ×", "reversenet s/image", "autograd s/image", "time ratio",
               "time × (reversenet / autograd)", "reversenet MiB", "autograd MiB", "memory ratio",
               "memory × (reversenet / autograd)"]  # fmt: skip
    memory_note = "peak RSS above a forward-only process" if rss else "not measured with --quick"
    note = ("Fully convolutional use: the forward stops at pool5. × columns: relative to the first row "
            f"(growth linear in pixels: time × = pixels ×). Time: median of {rounds} round(s), every row in "
            f"each, no warm-up. Memory: {memory_note}.")  # fmt: skip
    return Section(f"Scaling: one desalinet picture at pool5, {device}", columns, rows, note)


def main_section(
    title: str, values: dict[str, Measure], gpu: dict[str, Measure] | str, repeats: int, device: str,
    memory: bool,
) -> Section:  # fmt: skip
    columns = [
        "what",
        "contender",
        "baseline",
        "contender",
        "baseline",
        "ratio",
        "target",
        "met",
        "GPU ratio",
    ]
    rows = [c.cells(values, gpu) for c in time_comparisons()]
    rows += [c.cells(values, "—") for c in memory_comparisons()]
    probes = ("peak RSS (VmHWM) of a process running the contender once, minus that of a forward-only "
              "process, CPU" if memory else "not measured with --quick")  # fmt: skip
    note = (f"Time: median (min–max) of {repeats} round(s) after a warm-up, on {device}, each row's pair "
            "interleaved; captum gets the target neuron found in the warm-up. "
            f"Memory: {probes}. Bottleneck: distinct storages, weights and input not counted. "
            "'no, by F': the ratio is F times the target.")  # fmt: skip
    return Section(title, columns, rows, note)


@click.command()
@click.option(
    "--model", default="vgg16", show_default=True, help="torchvision name or package.module:factory"
)
@click.option("--size", default=224, show_default=True, help="image side in pixels")
@click.option("--repeats", default=3, show_default=True, help="timed rounds after the warm-up")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--markdown", type=click.Path(dir_okay=False, path_type=Path), help="also write the tables here"
)
@click.option("--quick", is_flag=True, help="smoke test: 1 round, small scaling, no memory probes")
@click.option("--memory-probe", "probe", hidden=True, help="internal: run one contender, print the peak RSS")
@click.option("--batch", default=1, hidden=True)
def main(
    model: str, size: int, repeats: int, device: str, markdown: Path | None, quick: bool, probe: str | None,
    batch: int,
) -> None:  # fmt: skip
    if probe:
        return memory_probe(probe, model, size, batch)
    if device == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("no CUDA device is available", param_hint="--device")
    repeats = 1 if quick else repeats
    out = Console(width=None if sys.stdout.isatty() else 200)
    log = Console(stderr=True).log
    net, graph = load(model, device)
    x = make_input(size, 1, device)
    check = exactness(net, graph, x)
    out.print(check)

    log(f"timing on {device}: {repeats} round(s) after a warm-up")
    values = timed_groups(time_groups(net, graph, x), repeats, device)
    gpu: dict[str, Measure] | str = "(the main columns)" if device == "cuda" else "not measured (no GPU)"
    if device == "cpu" and torch.cuda.is_available():
        log("timing on cuda")
        gpu_net, gpu_graph = load(model, "cuda")
        gpu = timed_groups(time_groups(gpu_net, gpu_graph, x.cuda()), repeats, "cuda")
    configs, rounds = scaling_configs(size, quick), max(1, repeats - 2)  # the big sizes take long
    log(f"scaling: {', '.join(f'{s}×{s} batch {b}' for s, b in configs)}, {rounds} round(s)")
    seconds = scaling_times(net, graph, configs, rounds, device)

    rss = {} if quick else memory_probes(model, size, configs, log)  # a probe is a whole process
    memory = {f"b{b}: {n}": above_forward(rss, n, size, b) for b in BATCHES for n in PROBED} if rss else {}
    values |= {key: Measure((mib,), "MiB") for key, mib in memory.items()}
    kept, information = reversenet_bottleneck(graph, x, LAYERS["pool5"], "desalinet")
    saved = autograd_saved_bytes(net, LAYERS["pool5"], x)
    values |= {
        "reversenet desalinet recording": Measure((kept / 2**20,), "MiB"),
        "reversenet desalinet, bits / 8": Measure((information / 2**20,), "MiB"),
        "autograd saved tensors": Measure((saved / 2**20,), "MiB"),
    }

    title = f"reversenet vs autograd and captum: {model}, {size}×{size}, {machine()}"
    sections = [main_section(title, values, gpu, repeats, device, bool(rss)),
                scaling_section(configs, seconds, rounds, rss, device)]  # fmt: skip
    for section in sections:
        out.print(section.rich())
    if markdown:
        markdown.write_text("\n".join([check, "", *(s.markdown() for s in sections)]), encoding="utf-8")


if __name__ == "__main__":
    main()
