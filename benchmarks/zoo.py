"""The model zoo against reversenet: every torchvision classifier, or every convolutional
timm model.

    python benchmarks/zoo.py [--size 224] [--only resnet18,vgg16] [--out zoo.md]
    python benchmarks/zoo.py --source timm [--size 64] [--sample 8] [--only a,b] [--out timm.md]

**torchvision** (the default): does each classifier trace, does it reverse with the built-in
variants or only with ``fallback: bp``, and is SaliNet the gradient? Random weights (seeded),
one 224×224 input. The oracles run the model's own forward: autograd's gradient for SaliNet,
guided backpropagation (tests/reference.py) for DeSaliNet; the errors are relative (L2).

**timm** (``--source timm``): is reversenet exact, does it refuse, or is it wrong?

Which timm models count as convolutional (`timm_cnns`): those registered in one of the timm
modules of `CNN_MODULES` (the families whose papers present them as convolutional networks,
ResNet to StarNet, and three mixed families with purely convolutional members: FastViT's
RepMixer models, MetaFormer's ConvFormer and PoolFormer, MobileNetV4's convolutional models in
``mobilenetv3``), less every model holding a self-attention layer: a submodule whose class
name contains ``Attn``, ``Attention`` or ``Lambda`` (timm's ``Attention``,
``MultiQueryAttention2d``, ``MobileAttention``, ``AttentionPool2d``, ``BottleneckAttn``,
``HaloAttn``, ``LambdaLayer``, ``BatNonLocalAttn``, ``SelfAttnBlock``, ``ConvAttention``,
...), except SKNet's ``SelectiveKernelAttn`` and ResNeSt's ``SplitAttn``, which weigh channels.
Channel and spatial gates (SE, ECA, ESE, CBAM, gather-excite, global context, GRN) are CNN
blocks and stay. Models are read off ``timm.list_models(module=...)`` and built on the meta
device to look at their layers, so listing them costs no weights.

Each model: ``timm.create_model(name, pretrained=False)``, seeded random initialisation, then
(``--lively``, the default) every parameter or buffer that timm initialises to a constant
(norm scales and shifts, running statistics, zero-initialised last layers of residual
branches, layer scales of 1e-6, zero heads) redrawn at random, so that every branch carries
signal and no path is checked vacuously; eval mode; a batch of 2 (``--batch``) seeded N(0, 1)
images of ``--size`` pixels (64), or the smallest of 96, 128, 160, 192 and the model's
``default_cfg`` input size where the model's own forward fails at that size. In float32, and
again in float64 where float32 is wrong (``--dtype auto``; the float64 result is the verdict,
so float32 rounding never makes a model wrong; ``--dtype float64`` throughout is up to 50
times slower: PyTorch has no fast float64 depthwise convolution on the CPU). One torch thread
(``--threads``): on a shared 2-core machine two are several times slower.

Three outcomes, and a fourth for bugs:

- **exact**: ``Recording(model, x, layer="output", variants=["salinet+bp", "desalinet+bp"])``
  reversing the top logit of each image gives SaliNet equal to ``torch.autograd.grad`` of that
  logit through the model's own forward (``model(x)``, not reversenet's torch.fx graph) and
  DeSaliNet equal to guided backpropagation by tests/reference.py's oracle (autograd through
  the model's own forward with the backward of every ReLU/ReLU6 replaced by
  ``max(ŷ, 0) ⊙ [x > 0]`` through a TorchFunctionMode): relative L2 error ≤ 1e-4 for both;
- **refused**: reversenet raised its own error (``reversenet.ReversenetError``), the reason;
  marked ``[RuntimeError]`` (...) where that error was raised from a PyTorch exception, a
  failure reversenet wrapped rather than a case it declined;
- **wrong**: reversenet made pictures and either is off by more than 1e-4: never acceptable;
- **crashed**: any other exception out of reversenet (a bug), or its worker process died or
  ran past ``--timeout``.

Each side picks the top logit of each image from its own forward; the reason of a wrong row
says whether reversenet's logits agree with the model's. A model that fails to build, or whose
own forward fails at every size tried, is *not built*, listed apart with the reason. Each
model runs in a forked worker process (``--timeout`` seconds; ``--in-process`` to debug).
"""

from __future__ import annotations

import collections
import hashlib
import math
import multiprocessing
import os
import random
import re
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import click
import torch
from rich.console import Console
from rich.table import Table

import reversenet
from reversenet.core.rules.fallback import FALLBACK
from reversenet.errors import ReversenetError
from reversenet.inputs.models import load_network, torchvision_names

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))  # tests/reference.py, the guided-backprop oracle
from reference import reference, relative_error

# --------------------------------------------------------------------------- torchvision


def survey(name: str, size: int) -> dict[str, str]:
    """One torchvision classifier: built-in variants or fallback, SaliNet against autograd."""
    row = {"model": name}
    start = time.perf_counter()
    try:
        net = load_network(name, "random", seed=0)
        row["params"] = f"{sum(p.numel() for p in net.module.parameters()) / 1e6:.1f}M"
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        try:
            rec = reversenet.Recording(net.module, x, layer="output", variants=reversenet.VARIANTS)
            row["built-in variants"], pair = "yes", ("salinet", "desalinet")
        except ReversenetError as exc:
            row["built-in variants"] = "no: " + str(exc).split(";")[0].removeprefix("no reverse rule for ")
            pair = ("salinet+bp", "desalinet+bp")
            rec = reversenet.Recording(net.module, x, layer="output", variants=pair)
            row["fallback bp layers"] = str(sum(rule is FALLBACK for _, rule in rec.rules(pair[0])))
        signal = rec.select("max")[0]
        ours, desalinet = rec.reverse_many([(variant, signal) for variant in pair])
        x_ = x.clone().requires_grad_(True)  # the oracles run the model's own forward
        (expected,) = torch.autograd.grad(net.module(x_), x_, signal)
        if expected.norm() > 0:
            row["salinet vs autograd"] = f"{float((ours - expected).norm() / expected.norm()):.1e}"
            row["desalinet vs guided backprop"] = f"{_error(desalinet, reference(net.module, x, '', 'desalinet', signal)):.1e}"
        else:  # e.g. ViT's head starts at zero: no gradient to compare
            row["salinet vs autograd"] = "both 0" if ours.norm() == 0 else f"0 vs {float(ours.norm()):.1e}"
    except ReversenetError as exc:
        row.setdefault("built-in variants", "no: " + str(exc))
    except Exception as exc:  # noqa: BLE001  (a survey: report, go on)
        row["built-in variants"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    row["seconds"] = f"{time.perf_counter() - start:.1f}"
    return row


def torchvision_survey(names: list[str], size: int, out: Path | None, console: Console) -> None:
    columns = ["model", "params", "built-in variants", "fallback bp layers", "salinet vs autograd",
               "desalinet vs guided backprop", "seconds"]
    rows = []
    for name in names:
        rows.append(survey(name, size))
        console.print(" | ".join(rows[-1].get(c, "") for c in columns))
    table = Table(*columns, title=f"torchvision classifiers, random weights, 1×3×{size}×{size}")
    for row in rows:
        table.add_row(*(row.get(c, "") for c in columns))
    console.print(table)
    if out:
        out.write_text("\n".join(_markdown_rows(columns, rows)) + "\n")


def _markdown_rows(columns: list[str], rows: list[dict[str, str]]) -> list[str]:
    cell = lambda v: str(v).replace("|", "\\|")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]


# --------------------------------------------------------------------------- timm: which models

#: timm modules of convolutional families (and of FastViT, MetaFormer and MobileNetV4, mixed
#: families with purely convolutional members); `timm_cnns` drops their self-attention models.
CNN_MODULES = (
    "byoanet", "byobnet", "convmixer", "convnext", "cpubone", "cspnet", "cspnext", "densenet", "dla", "dpn",
    "efficientnet", "fasternet", "fastvit", "ghostnet", "hardcorenas", "hgnet", "hrnet", "inception_next",
    "inception_resnet_v2", "inception_v3", "inception_v4", "lcnetv2", "mambaout", "metaformer", "mobilenetv3",
    "mobilenetv5", "nasnet", "nfnet", "pnasnet", "rdnet", "regnet", "repghost", "repvit", "res2net", "resnest",
    "resnet", "resnetv2", "rexnet", "selecsls", "senet", "sknet", "starnet", "tresnet", "vgg", "vovnet",
    "xception", "xception_aligned",
)  # fmt: skip
#: A submodule class that makes a model a transformer (or hybrid): self-attention.
SELF_ATTENTION = re.compile(r"attn|attention|lambda", re.IGNORECASE)
#: ... except these, which weigh channels (SKNet's kernel selection, ResNeSt's split attention).
CHANNEL_ATTENTION = {"SelectiveKernelAttn", "SplitAttn"}


def self_attention(model: torch.nn.Module) -> str | None:
    """The class name of `model`'s first self-attention layer (not a block holding one), or
    None: a CNN."""
    found = [type(m).__name__ for m in model.modules()]
    found = [name for name in found if SELF_ATTENTION.search(name) and name not in CHANNEL_ATTENTION]
    return next((name for name in found if not name.endswith("Block")), found[0] if found else None)


def _meta_model(name: str) -> torch.nn.Module:
    import timm

    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        return timm.create_model(name, pretrained=False)


def timm_candidates() -> list[str]:
    """Every model of the `CNN_MODULES` (sorted), before the self-attention test."""
    import timm

    known = set(timm.list_modules())
    return sorted({name for module in CNN_MODULES if module in known for name in timm.list_models(module=module)})


def _inspect(name: str) -> str | None:
    """`self_attention` of a model built on the meta device (on the CPU where that fails)."""
    try:
        return self_attention(_meta_model(name))
    except Exception:  # noqa: BLE001  (some models compute at build time)
        import timm

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return self_attention(timm.create_model(name, pretrained=False))
        except Exception:  # noqa: BLE001  (it does not build: the survey says why)
            return None


def timm_cnns(names: Iterable[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """The convolutional models among `names` (default: `timm_candidates`), and the others
    with their self-attention class."""
    cnns, excluded = [], {}
    for name in timm_candidates() if names is None else names:
        attention = _inspect(name)
        if attention:
            excluded[name] = attention
        else:
            cnns.append(name)
    return cnns, excluded


def timm_sample(n: int, seed: int, max_params: float = math.inf) -> list[str]:
    """`n` convolutional models drawn at random (seeded) with at most `max_params` parameters."""
    names = timm_candidates()
    random.Random(seed).shuffle(names)
    chosen = []
    for name in names:
        try:
            model = _meta_model(name)
        except Exception:  # noqa: BLE001, S112  (a sample takes the models that build on meta)
            continue
        if self_attention(model) is None and sum(p.numel() for p in model.parameters()) <= max_params:
            chosen.append(name)
            if len(chosen) == n:
                break
    return sorted(chosen)


# --------------------------------------------------------------------------- timm: one model

TOLERANCE = 1e-4
OUTCOMES = ("exact", "refused", "wrong", "crashed", "not built")
COLUMNS = ["model", "outcome", "SaliNet error", "DeSaliNet error", "input", "bp layers", "reason", "seconds"]


def _line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def lively(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Redraw every float parameter and buffer that holds one value throughout (timm's constant
    initialisations: norm scales and shifts, running statistics, zero-initialised last layers,
    layer scales, zero heads), so that every path of the network carries signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if not t.is_floating_point() or t.numel() == 0 or not bool((t == t.flatten()[0]).all()):
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var":
                new = torch.rand(t.shape, generator=g, dtype=torch.float64) * 1.5 + 0.5
            elif leaf in ("running_mean", "bias") or leaf.endswith("bias"):
                new = torch.randn(t.shape, generator=g, dtype=torch.float64) * 0.1
            elif t.dim() >= 2:  # a zero-initialised conv or linear weight
                fan_in = t[0].numel()
                new = torch.randn(t.shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in)
            else:  # a scale or gain: norm weight, layer scale, skip-init gain
                new = torch.rand(t.shape, generator=g, dtype=torch.float64) + 0.5
            t.copy_(new.to(t.dtype))
    return model


def build(name: str, init: str) -> torch.nn.Module:
    import timm

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)
    if init == "lively":
        lively(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _input(model: torch.nn.Module, size: int, batch: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded batch at `size`, else at the smallest of 96, 128, 160, 192 and the model's
    default input size where its own forward works: (x, model(x))."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    default = tuple(cfg.get("input_size", (3, 224, 224)))
    larger = [s for s in (96, 128, 160, 192) if size < s < min(default[1:])]
    shapes = list(dict.fromkeys([*((default[0], s, s) for s in (size, *larger)), default]))
    failures = []
    for shape in shapes:
        x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
        try:
            with torch.no_grad():
                y = model(x)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{shape[1]}×{shape[2]}: {type(exc).__name__}: {_line(exc, 100)}")
            continue
        if not isinstance(y, torch.Tensor) or y.dim() != 2:
            raise RuntimeError(f"the output is not (N, classes) logits: {type(y).__name__}")
        if not torch.isfinite(y).all():
            failures.append(f"{shape[1]}×{shape[2]}: non-finite logits")
            continue
        return x, y
    raise RuntimeError("own forward fails at " + "; ".join(failures))


def oracles(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(gradient, guided backprop) of each image's top logit, by autograd through the model's
    own forward; guided: tests/reference.py's oracle, the ReLU backward replaced."""
    x_ = x.detach().clone().requires_grad_(True)
    y = model(x_)
    flat = y.detach()
    e = torch.zeros_like(flat).scatter_(1, flat.argmax(1, keepdim=True), 1.0)
    (grad,) = torch.autograd.grad(y, x_, e)
    guided = reference(model, x, "", "desalinet")
    return grad, guided


def reversenet_pictures(model: torch.nn.Module, x: torch.Tensor) -> dict[str, object]:
    """reversenet's SaliNet and DeSaliNet of each image's top logit, with the logits and how
    many steps each variant backpropagates exactly (no rule)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = reversenet.Recording(model, x, layer="output", variants=["salinet+bp", "desalinet+bp"])
        signal = rec.select("max")[0]
        salinet, desalinet = rec.reverse_many([("salinet+bp", signal), ("desalinet+bp", signal)])
    bp = sum(rule is FALLBACK for _, rule in rec.rules("desalinet+bp"))
    return {"salinet": salinet, "desalinet": desalinet, "logits": rec.activation, "bp": bp}


def _error(ours: torch.Tensor, expected: torch.Tensor) -> float:
    if ours.shape != expected.shape:
        return math.inf
    if expected.norm() == 0:
        return 0.0 if ours.norm() == 0 else math.inf
    error = relative_error(ours, expected)
    return error if math.isfinite(error) else math.inf


def survey_timm(
    name: str, size: int = 64, *, batch: int = 2, dtype: str = "auto", init: str = "lively",
    phase: Callable[[str], None] = lambda p: None,
) -> dict[str, str]:
    """One timm model: a row of `COLUMNS`, its outcome one of `OUTCOMES`. `dtype` "auto":
    float32, and float64 again where float32 is wrong (the float64 row is the verdict)."""
    if dtype != "auto":
        return _survey_timm(name, size, batch, getattr(torch, dtype), init, phase)
    row = _survey_timm(name, size, batch, torch.float32, init, phase)
    if row["outcome"] != "wrong":
        return row
    first = f"float32: SaliNet {row['SaliNet error']}, DeSaliNet {row['DeSaliNet error']}"
    row64 = _survey_timm(name, size, batch, torch.float64, init, phase)
    row64["reason"] = "; ".join(filter(None, [row64.get("reason", ""), first]))
    row64["seconds"] = f"{float(row['seconds']) + float(row64['seconds']):.1f}"
    return row64


def _survey_timm(
    name: str, size: int, batch: int, dtype: torch.dtype, init: str, phase: Callable[[str], None]
) -> dict[str, str]:
    row = {"model": name}
    start = time.perf_counter()
    try:
        phase("build")
        try:
            model = build(name, init).to(dtype)
            phase("forward")
            x, logits = _input(model, size, batch, dtype)
        except Exception as exc:  # noqa: BLE001
            row.update(outcome="not built", reason=f"{type(exc).__name__}: {_line(exc)}")
            return row
        row["input"] = f"{batch}×{x.shape[1]}×{x.shape[2]}×{x.shape[3]} {str(dtype).removeprefix('torch.')}"
        phase("oracle")
        grad, guided = oracles(model, x)
        phase("reversenet")
        try:
            ours = reversenet_pictures(model, x)
        except ReversenetError as exc:
            cause = exc.__cause__
            wrapped = f"[{type(cause).__name__}] " if cause and not isinstance(cause, ReversenetError) else ""
            row.update(outcome="refused", reason=wrapped + _line(exc, 400))
            return row
        except Exception as exc:  # noqa: BLE001
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
            row.update(outcome="crashed", reason=f"{type(exc).__name__}: {_line(exc)} ({where})")
            traceback.print_exc()
            return row
        phase("compare")
        sal, des = _error(ours["salinet"], grad), _error(ours["desalinet"], guided)
        row.update({"SaliNet error": f"{sal:.1e}", "DeSaliNet error": f"{des:.1e}", "bp layers": str(ours["bp"])})
        notes = []
        if grad.norm() == 0 or guided.norm() == 0:
            notes.append("zero gradient: nothing to compare")
        if sal <= TOLERANCE and des <= TOLERANCE:
            row["outcome"] = "exact"
        else:
            row["outcome"] = "wrong"
            forward = _error(ours["logits"], logits)
            notes.append(f"logits off by {forward:.1e}" if forward > TOLERANCE else "logits right")
        row["reason"] = "; ".join(notes)
    except Exception as exc:  # noqa: BLE001  (the oracle failed: not reversenet's doing)
        row.update(outcome="not built", reason=f"oracle failed: {type(exc).__name__}: {_line(exc)}")
    finally:
        row["seconds"] = f"{time.perf_counter() - start:.1f}"
    return row


# --------------------------------------------------------------------------- timm: many models


def _worker(conn, name: str, kwargs: dict, threads: int) -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(threads)
    try:
        row = survey_timm(name, phase=lambda p: conn.send(("phase", p)), **kwargs)
    except BaseException as exc:  # noqa: BLE001
        row = {"model": name, "outcome": "crashed", "reason": f"survey failed: {type(exc).__name__}: {_line(exc)}"}
    conn.send(("row", row))
    conn.close()


def survey_isolated(name: str, timeout: float, **kwargs) -> dict[str, str]:
    """`survey_timm` in a forked process: a hang, a segfault or running out of memory is a
    row too (crashed when it happens in reversenet, not built before)."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_worker, args=(child, name, kwargs, torch.get_num_threads()), daemon=True)
    start = time.perf_counter()
    process.start()
    child.close()
    current, row = "start", None
    deadline = start + timeout
    while row is None:
        left = deadline - time.perf_counter()
        if left <= 0 or not parent.poll(min(left, 1.0)):
            if left <= 0:
                process.kill()
                why = f"ran past {timeout:.0f} s"
                break
            if not process.is_alive() and not parent.poll():
                why = f"worker died (exit code {process.exitcode})"
                break
            continue
        try:
            kind, value = parent.recv()
        except EOFError:
            process.join(5)
            why = f"worker died (exit code {process.exitcode})"
            break
        if kind == "phase":
            current = value
        else:
            row = value
    process.join(5)
    if row is None:
        outcome = "crashed" if current in ("reversenet", "compare") else "not built"
        row = {"model": name, "outcome": outcome, "reason": f"{why} in phase {current}"}
        row["seconds"] = f"{time.perf_counter() - start:.1f}"
    return row


def _state() -> str:
    """The git commit and a hash of reversenet/ as it is on disk: what was measured."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "reversenet").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "reversenet"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "?", ""
    return f"commit {commit}{' with uncommitted changes to reversenet/' if dirty else ''}, reversenet/*.py sha256 {digest.hexdigest()[:12]}"


def counts(rows: list[dict[str, str]]) -> collections.Counter:
    return collections.Counter(row["outcome"] for row in rows)


def summary(rows: list[dict[str, str]]) -> str:
    c = counts(rows)
    surveyed = sum(c[o] for o in OUTCOMES[:4])
    wrapped = sum(r["outcome"] == "refused" and r.get("reason", "").startswith("[") for r in rows)
    text = f"{surveyed} models: " + ", ".join(
        f"{c[o]} {o}" + (f" ({wrapped} of them wrapping a PyTorch exception)" if o == "refused" and wrapped else "")
        for o in OUTCOMES[:4]
    )
    return text + f"; {c['not built']} not built"


def _reason_key(reason: str) -> str:
    """A refusal's reason without what names one model's layers: the first clause, with module
    paths, node numbers, sizes and numbers left out; `no reverse rule for X (Kind)` -> Kind."""
    m = re.match(r"(\[\w+\] )?no reverse rule for .*?\(([^()]*)\)(?:[,;]|$)", reason)
    if m:
        return f"{m.group(1) or ''}no reverse rule for {m.group(2)}"
    text = reason.split(";")[0].split(".  ")[0]
    text = re.sub(r"torch\.Size\(\[[^\]]*\]\)", "Size", text)
    text = re.sub(r"\bin [\w.]+ \(", "in … (", text)  # in layer3.0.bn2 (Kind)
    text = re.sub(r"\b\w+(?:\.\w+)+\b", "…", text)  # module paths (and decimals)
    text = re.sub(r"\b(\w+?)_\d+\b", r"\1", text)  # torch.fx node names: permute_23, mul__62
    return re.sub(r"\b\d+\b", "#", text)


def markdown(rows: list[dict[str, str]], header: list[str], excluded: dict[str, str] | None = None) -> str:
    lines = [*header, "", "**" + summary(rows) + "**", ""]
    bad = [r for r in rows if r["outcome"] in ("wrong", "crashed")]
    if bad:
        lines += ["Wrong or crashed (bugs):", ""]
        lines += [f"- **{r['model']}** {r['outcome']}: SaliNet {r.get('SaliNet error', '-')}, "
                  f"DeSaliNet {r.get('DeSaliNet error', '-')}; {r.get('reason', '')}" for r in bad]  # fmt: skip
        lines.append("")
    refused = collections.defaultdict(list)
    for r in rows:
        if r["outcome"] == "refused":
            refused[_reason_key(r.get("reason", ""))].append(r["model"])
    if refused:
        note = "`[RuntimeError]`: reversenet's error was raised from that PyTorch exception, a failure it wrapped"
        lines += [f"Refused, by reason ({note}, not a case it declined):", ""]
        for key, models in sorted(refused.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            lines.append(f"- {key.replace('|', '/')} ({len(models)}): {', '.join(models)}")
        lines.append("")
    unbuilt = [r for r in rows if r["outcome"] == "not built"]
    if unbuilt:
        lines += ["Not built (not counted):", ""] + [f"- {r['model']}: {r.get('reason', '')}" for r in unbuilt] + [""]
    lines += _markdown_rows(COLUMNS, rows)
    if excluded:
        lines += ["", f"Excluded, self-attention ({len(excluded)}):", ""]
        lines += [f"{name} ({why})" + ("," if i < len(excluded) - 1 else "") for i, (name, why) in enumerate(sorted(excluded.items()))]
    return "\n".join(lines) + "\n"


def timm_survey(
    names: list[str], *, size: int, batch: int, dtype: str, init: str, timeout: float, isolate: bool,
    out: Path | None, console: Console, header: list[str], excluded: dict[str, str] | None = None,
) -> list[dict[str, str]]:
    kwargs = {"size": size, "batch": batch, "dtype": dtype, "init": init}
    rows: list[dict[str, str]] = []
    started = time.perf_counter()
    for i, name in enumerate(names):
        row = survey_isolated(name, timeout, **kwargs) if isolate else survey_timm(name, **kwargs)
        rows.append(row)
        style = {"wrong": "bold red", "crashed": "bold magenta", "refused": "yellow", "exact": "green"}
        console.print(
            f"[{i + 1}/{len(names)}] " + " | ".join(str(row.get(c, "")) for c in COLUMNS),
            style=style.get(row["outcome"], ""), markup=False, highlight=False, soft_wrap=True,
        )
        if out:  # rewritten after each model: the file shows the progress
            done = f"{i + 1}/{len(names)} models done in {time.perf_counter() - started:.0f} s"
            out.write_text(markdown(rows, [*header, "", done], excluded))
    table = Table(*COLUMNS, title="timm CNNs: " + summary(rows))
    style = {"wrong": "bold red", "crashed": "bold magenta", "refused": "yellow", "exact": "green"}
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in COLUMNS), style=style.get(row["outcome"]))
    console.print(table)
    console.print(summary(rows) + f", {time.perf_counter() - started:.0f} s")
    return rows


@click.command()
@click.option("--source", type=click.Choice(["torchvision", "timm"]), default="torchvision", show_default=True)
@click.option("--size", type=int, default=None, help="Input size  [default: 224 torchvision, 64 timm]")
@click.option("--only", default="", help="Comma-separated model names (default: all).")
@click.option("--sample", type=int, default=0, help="timm: this many CNNs drawn at random (seeded).")
@click.option("--seed", default=0, show_default=True, help="timm: the seed of --sample.")
@click.option("--max-params", type=float, default=math.inf, help="timm: --sample draws models this small only.")
@click.option("--batch", default=2, show_default=True, help="timm: images per model.")
@click.option("--dtype", type=click.Choice(["auto", "float64", "float32"]), default="auto", show_default=True,
              help="timm: auto = float32, and float64 where float32 is wrong.")  # fmt: skip
@click.option("--lively/--timm-init", default=True, show_default=True,
              help="timm: redraw the parameters timm initialises to a constant (see the docstring).")  # fmt: skip
@click.option("--timeout", default=600.0, show_default=True, help="timm: seconds per model.")
@click.option("--isolate/--in-process", default=True, show_default=True, help="timm: one forked worker per model.")
@click.option("--threads", default=1, show_default=True,
              help="timm: torch threads (more than one is slower on a busy machine).")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write a Markdown table.")
def main(
    source: str, size: int | None, only: str, sample: int, seed: int, max_params: float, batch: int, dtype: str,
    lively: bool, timeout: float, isolate: bool, threads: int, out: Path | None,
) -> None:
    warnings.simplefilter("ignore")
    torch.set_grad_enabled(True)
    console = Console(width=None if sys.stdout.isatty() else 200)
    if source == "torchvision":
        torchvision_survey(only.split(",") if only else torchvision_names(), size or 224, out, console)
        return
    import timm

    torch.set_num_threads(threads)
    excluded = None
    if only:
        names = only.split(",")
        chosen = f"--only {only}"
    elif sample:
        names = timm_sample(sample, seed, max_params)
        chosen = f"{sample} drawn with seed {seed}" + (f", ≤ {max_params:g} parameters" if max_params < math.inf else "")
    else:
        names, excluded = timm_cnns()
        chosen = f"all {len(names)} CNNs of {len(names) + len(excluded)} models in the CNN modules"
    console.print(f"{len(names)} timm models ({chosen})", soft_wrap=True)
    header = [
        f"`python benchmarks/zoo.py {' '.join(sys.argv[1:])}`",
        "",
        (
            f"timm {timm.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}; "
            f"reversenet {_state()}; {chosen}; input {batch}×3×{size or 64}² (else the smallest size that works), "
            f"{'float32, float64 where float32 is wrong' if dtype == 'auto' else dtype}, "
            f"{'lively' if lively else 'timm'} init, tolerance {TOLERANCE:g} (relative L2)."
        ),
    ]
    timm_survey(
        names, size=size or 64, batch=batch, dtype=dtype, init="lively" if lively else "timm",
        timeout=timeout, isolate=isolate, out=out, console=console, header=header, excluded=excluded,
    )


if __name__ == "__main__":
    main()
