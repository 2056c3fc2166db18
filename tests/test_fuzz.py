"""Property-based tests (hypothesis): random small CNNs against the autograd oracle,
random command lines against the CLI's one-line error contract, random variant YAML
against the variant validator."""

from __future__ import annotations

import io
import sys
import tempfile
import urllib.error
from pathlib import Path

import torch
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from reference import reference, relative_error
from torch import nn

import reversenet
from reversenet.cli import main
from reversenet.core.rules import FAMILIES
from reversenet.core.variants import FALLBACKS, Variant, parse_variant
from reversenet.errors import UsageError

# ---------------------------------------------------------------------------------
# 1. Random CNNs: every variant equals autograd with the variant's backward.
# ---------------------------------------------------------------------------------


def _out_size(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """Output length along one axis, as torch computes it for conv and pooling."""
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= n + p:  # the last window must start inside the input
        out -= 1
    return out


def _windows_touch_input(n: int, out: int, k: int, s: int, p: int, d: int) -> bool:
    """Every window has at least one tap on the input (not only on padding)."""
    return all(any(0 <= u * s - p + d * j < n for j in range(k)) for u in range(out))


def _fits(size: list[int], k, s, p, d, ceil=False, pool=True) -> list[int] | None:
    """The output (H, W) of a window op on `size`, or None where it would be empty (or,
    for pooling, where a window would hold padding only: -inf for max pooling)."""
    k, s, p, d = ((v, v) if isinstance(v, int) else v for v in (k, s, p, d))
    out = [_out_size(size[a], k[a], s[a], p[a], d[a], ceil) for a in (0, 1)]
    if min(out) < 1:
        return None
    if pool and not all(_windows_touch_input(size[a], out[a], k[a], s[a], p[a], d[a]) for a in (0, 1)):
        return None
    return out


def _pool_geometry(draw, kernels: tuple[int, int]):
    """kernel, stride, padding: ints, or (h, w) pairs now and then."""

    def one():
        k = draw(st.integers(*kernels))
        return k, draw(st.integers(1, 3)), draw(st.integers(0, k // 2))

    if draw(st.booleans()):
        return one()
    (kh, sh, ph), (kw, sw, pw) = one(), one()
    return (kh, kw), (sh, sw), (ph, pw)


@st.composite
def cnns(draw):
    """(specs, input shape, seed, target index): a small random Sequential CNN, as the
    (constructor, args, kwargs) of each layer, whose every layer's output is at least 1×1."""
    seed = draw(st.integers(0, 2**31 - 1))
    batch = draw(st.integers(1, 2))
    channels = draw(st.integers(1, 4))
    size = [draw(st.integers(8, 20)), draw(st.integers(8, 20))]
    shape = (batch, channels, *size)
    specs: list[tuple] = []  # (constructor, args, kwargs); built later under the seed
    for block in range(draw(st.integers(1, 3))):
        groups = draw(st.sampled_from([1, 2])) if channels % 2 == 0 else 1
        out_channels = groups * draw(st.integers(1, 3 if groups == 2 else 6))
        k, s, p, d = (draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(0, 2)),
                      draw(st.integers(1, 2)))  # fmt: skip
        new = _fits(size, k, s, p, d, pool=False)
        if new is None:
            if block == 0:  # an input of 8 always fits one convolution: unreachable
                raise AssertionError((size, k, s, p, d))
            break
        bias = draw(st.booleans())
        specs.append((nn.Conv2d, (channels, out_channels, k),
                      {"stride": s, "padding": p, "dilation": d, "groups": groups, "bias": bias}))  # fmt: skip
        size, channels = new, out_channels
        if draw(st.integers(0, 4)) == 0:  # beyond the paper's layers: eval-mode batch norm
            specs.append((_batch_norm, (channels, draw(st.integers(0, 2**16))), {}))
        relu = draw(st.sampled_from([nn.ReLU, nn.ReLU, nn.ReLU, nn.ReLU6]))
        specs.append((relu, (), {"inplace": draw(st.booleans())}))
        if draw(st.booleans()):
            specs.append((nn.LocalResponseNorm, (draw(st.integers(1, 5)),), {
                "alpha": draw(st.sampled_from([1e-4, 1e-2, 0.5])), "beta": draw(st.sampled_from([0.5, 0.75, 1.0])),
                "k": draw(st.sampled_from([1.0, 2.0]))}))  # fmt: skip
        if draw(st.booleans()):
            k, s, p = _pool_geometry(draw, (2, 3))
            d, ceil = draw(st.integers(1, 2)), draw(st.booleans())
            new = _fits(size, k, s, p, d, ceil)
            if new is not None:
                size = new
                specs.append((nn.MaxPool2d, (k, s, p, d), {"ceil_mode": ceil}))
        if draw(st.integers(0, 3)) == 0:
            k, s, p = _pool_geometry(draw, (1, 3))
            ceil = draw(st.booleans())
            new = _fits(size, k, s, p, 1, ceil)
            if new is not None:
                size = new
                divisor = draw(st.sampled_from([None, None, None, 3]))
                specs.append((nn.AvgPool2d, (k, s, p), {"ceil_mode": ceil, "count_include_pad": draw(st.booleans()),
                                                           "divisor_override": divisor}))  # fmt: skip
    if draw(st.booleans()):
        pooled = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
        ph, pw = (pooled, pooled) if isinstance(pooled, int) else pooled
        specs += [(nn.AdaptiveAvgPool2d, (pooled,), {}), (nn.Flatten, (), {}), (nn.Dropout, (), {}),
                  (nn.Linear, (channels * ph * pw, draw(st.integers(1, 5))), {"bias": draw(st.booleans())})]  # fmt: skip
    # the model's output mostly; now and then an inner layer
    target = draw(st.one_of(st.just(len(specs) - 1), st.integers(0, len(specs) - 1)))
    return specs, shape, seed, target


def _batch_norm(channels: int, seed: int) -> nn.BatchNorm2d:
    """BatchNorm2d with random statistics and affine parameters (its reverse is affine)."""
    bn = nn.BatchNorm2d(channels)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5, generator=g)
        bn.running_var.uniform_(0.25, 4.0, generator=g)
        bn.weight.uniform_(-2.0, 2.0, generator=g)
        bn.bias.uniform_(-1.0, 1.0, generator=g)
    return bn


def _describe(specs) -> str:
    return ", ".join(f"{c.__name__}{args}{kw}" for c, args, kw in specs)


@settings(max_examples=40, deadline=None)
@given(cnns())
def test_random_cnns_match_the_oracle(case):
    specs, shape, seed, target = case
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = nn.Sequential(*(ctor(*args, **kwargs) for ctor, args, kwargs in specs)).double().eval()
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        last = target == len(specs) - 1
        ours_layer, ref_layer = ("output", "") if last else (str(target), str(target))
        expected = {v: reference(model, x, ref_layer, v) for v in reversenet.VARIANTS}
        # skip an all-zero reference; where only some variants are zero (ReLU masks),
        # relative_error demands an exact zero of ours
        assume(any(e.abs().max() > 0 for e in expected.values()))
        rec = reversenet.Recording(model, x, layer=ours_layer)
        signal = rec.select("max")[0]
        for v in reversenet.VARIANTS:
            ours = rec.reverse(signal, v)
            assert ours.shape == x.shape
            err = relative_error(ours, expected[v])
            assert err < 1e-7, (v, ours_layer, err, _describe(specs), shape)
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------
# 2. Random command lines: an exit status and one line `error: ...`, never a traceback.
# ---------------------------------------------------------------------------------


def _tiny_state_dict() -> bytes:
    from factories import tiny

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = tiny().state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


TINY_PTH = _tiny_state_dict()

# Values are listed with the likely-valid ones first: _values() draws the first one
# half of the time, so that many command lines get past parsing into the model.
# Models: the factories and unknown names only (a torchvision name with DEFAULT
# weights would try to download).
MODELS = ["factories:tiny", "factories:with_gelu", "factories:not_a_module", "factories:nothing",
          "nosuchnet", "a:b:c", "", ":tiny", "factories:"]  # fmt: skip
SELECTS = ["max", "topk:2", "topk:0", "topk:x", "neuron:0,0,0", "neuron:-1", "neuron:0", "neuron:0,0",
           "neuron:7,1,1", "channel:999", "channel:0", "class:5", "class:tabby", "class:", "random", "mixture",
           "noise", "full", "garbage", "max:1", "", ":"]  # fmt: skip
YAML_TEXT = st.one_of(
    st.text(alphabet=st.one_of(st.characters(), st.sampled_from("\n\t :-[]{}")), max_size=60),
    st.sampled_from([
        "rules:\n  ReLU: hybrid\n  MaxPool2d: center\n  LocalResponseNorm: bp\n",
        "rules:\n  ReLU: bp\n  MaxPool2d: switches\n  LocalResponseNorm: identity\nfallback: bp\n",
        "rules:\n  ReLU: hybird\n", "rules: []\n", "- a\n", "rules:\n  GELU: bp\n", "",
    ]),
)  # fmt: skip


def _values(values: list[str]):
    """The first value half of the time, else any."""
    return st.one_of(st.just(values[0]), st.sampled_from(values))


def _option(names: list[str], values: list[str]):
    return st.tuples(st.sampled_from(names), _values(values)).map(list)


OPTIONS = {
    "weights": _option(["--weights", "-w"],
                       ["random", "DEFAULT", "missing.pth", "notes.txt", "tiny.pth", "IMAGENET1K_V1", ""]),
    "layer": _option(["--layer", "-l"], ["0", "1", "2", "3", "4", "7", "99", "output", "pool5", "", "garbage", "fc8"]),
    "variant": _option(["--variant", "-v"], [*reversenet.VARIANTS, "fuzz.yaml", "garbage", "missing.yaml", "notes.txt"]),
    "select": _option(["--select", "-s"], SELECTS),
    "render": _option(["--render"], ["paper", "gamma", "minmax", "saliency", "garbage"]),
    "image": _option(["--image", "-i"], ["photo.png", "missing.jpg", "fake.png", "empty", "*.png", "nomatch*.jpg"]),
    "seed": _option(["--seed"], ["0", "7", "-3", "123456789", "100000000000000000000000", "x", "1.5"]),
    "device": _option(["--device"], ["cpu", "auto", "garbage"]),
    "out": _option(["--out", "-o"], ["out", "out/sub", "out/fig.png", "notes.txt", "empty"]),
    "raw": st.just(["--raw"]),
    "force": st.just(["--force"]),
    # diff's own
    "tolerance": _option(["--tolerance", "-t"], ["0", "2", "255", "256", "-1", "x"]),
    "threshold": _option(["--threshold"], ["0", "10", "255", "300", "y"]),
    "path": st.sampled_from(["photo.png", "photo2.png", "pics", "pics2", "fake.png", "empty", "notes.txt",
                             "missing.png", "*.png"]).map(lambda path: [path]),
}  # fmt: skip
WILD = st.one_of(
    *OPTIONS.values(),
    st.sampled_from([["--frobnicate"], ["-x"], ["extra"], ["--help"], ["-h"], ["--version"], ["--layer=1"],
                     ["--"], ["-"], ["--model"], ["--model=factories:tiny"]]),
)  # fmt: skip
ACCEPTS = {  # command -> the options it takes besides --model
    "visualize": [name for name in OPTIONS if name not in ("tolerance", "threshold", "path")],
    "compare": ["weights", "layer", "select", "render", "image", "seed", "device", "out"],
    "inspect": ["weights", "layer", "variant", "seed", "device"],
    "layers": [],
    "variants": [],
    "diff": ["tolerance", "threshold", "out"],  # and two paths
}
COMMANDS = st.one_of(
    st.sampled_from(["visualize", "compare", "inspect", "layers", "variants", "diff"]),
    st.sampled_from(["visualize", "compare", "inspect"]),
    st.sampled_from(["visualize", "compare"]),
    st.sampled_from(
        ["visualize", "compare", "inspect", "layers", "variants", "diff", "visualise", "frobnicate", "-q", ""]
    ),
)


@st.composite
def command_lines(draw):
    command = draw(COMMANDS)
    accepted = [OPTIONS[name] for name in ACCEPTS.get(command, [])]
    groups = draw(st.lists(st.one_of(*accepted), max_size=6)) if accepted else []
    if command == "diff":  # two paths, now and then fewer or more
        groups += draw(
            st.lists(OPTIONS["path"], min_size=2, max_size=2) | st.lists(OPTIONS["path"], max_size=3)
        )
    elif command != "variants":
        groups.append([draw(st.sampled_from(["--model", "-m"])), draw(_values(MODELS))])
    if draw(st.integers(0, 7)) == 0:  # an option from elsewhere, a stray word, --help
        groups.append(draw(WILD))
    argv = [command] + [token for group in draw(st.permutations(groups)) for token in group]
    if draw(st.integers(0, 15)) == 0:  # now and then the command elsewhere, or missing
        argv = draw(st.permutations(argv)) if draw(st.booleans()) else argv[1:]
    return argv, draw(YAML_TEXT)


def _setup(root: Path, variant_text: str) -> None:
    from PIL import Image

    (root / "fuzz.yaml").write_text(variant_text, encoding="utf-8", newline="")
    (root / "notes.txt").write_text("not weights, not an image\n")
    (root / "fake.png").write_text("this is text, not a PNG")
    (root / "empty").mkdir()
    (root / "tiny.pth").write_bytes(TINY_PTH)
    Image.new("RGB", (7, 5), (200, 10, 90)).save(root / "photo.png")
    Image.new("RGB", (7, 5), (190, 10, 95)).save(root / "photo2.png")
    for folder, colour in (("pics", (0, 0, 0)), ("pics2", (0, 3, 0))):
        (root / folder / "sub").mkdir(parents=True)
        Image.new("RGB", (4, 4), colour).save(root / folder / "sub" / "a.png")
        Image.new("RGB", (4, 4 + len(folder)), colour).save(root / folder / "b.png")
    (root / "pics" / "only.png").write_bytes((root / "photo.png").read_bytes())


def _offline(*args, **kwargs):
    raise urllib.error.URLError("no downloads in the fuzz tests")


def _run_cli(argv: list[str], variant_text: str, capsys, monkeypatch) -> tuple[int, str, str, list[str]]:
    """`reversenet ARGV` through main() in a fresh folder: (status, stdout, stderr,
    the *.tmp files left behind)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as folder, monkeypatch.context() as mp:
            root = Path(folder)
            _setup(root, variant_text)
            mp.chdir(root)
            mp.setattr(sys, "argv", ["reversenet", *argv])
            # a safety net: a shuffled command line might leave vgg16 with DEFAULT weights
            mp.setattr(torch.hub, "load_state_dict_from_url", _offline)
            capsys.readouterr()
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if exc.code is not None else 0
            out, err = capsys.readouterr()
            leftovers = [str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".tmp")]
    finally:
        torch.set_num_threads(threads)
    return code, out, err, leftovers


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=command_lines())
def test_cli_never_shows_a_traceback(case, capsys, monkeypatch):
    argv, variant_text = case
    code, out, err, leftovers = _run_cli(argv, variant_text, capsys, monkeypatch)
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    # `diff`: status 1 says the images differ, by design
    differ = argv[:1] == ["diff"] and code == 1 and "differ beyond tolerance" in err
    if code != 0 and argv and not differ:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and lines[-1].startswith("error: "), (argv, code, err)
    assert not leftovers, (argv, leftovers)


def test_bare_command_shows_the_usage(capsys, monkeypatch):
    """`reversenet` alone prints its help on stdout, status 0."""
    code, out, err, _ = _run_cli([], "", capsys, monkeypatch)
    assert code == 0 and "Traceback" not in err + out
    assert "Usage:" in out and "visualize" in out and "error" not in err


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=command_lines())
@example(case=(["inspect", "-m", "factories:tiny", "-w", "random", "-v", "identity-center"], ""))
@example(case=(["inspect", "-m", "factories:tiny", "-w", "random", "-l", "0"], ""))
@example(case=(["layers", "-m", ":tiny"], ""))
@example(
    case=(["visualize", "-m", "factories:tiny", "-w", "random", "--seed", "100000000000000000000000"], "")
)
def test_cli_failures_are_anticipated(case, capsys, monkeypatch):
    """Every failure is one the code foresaw (a ReversenetError or click's usage
    error), not main()'s last-resort handler for unforeseen exceptions."""
    argv, variant_text = case
    _code, _out, err, _ = _run_cli(argv, variant_text, capsys, monkeypatch)
    assert "rerun with --debug for the traceback" not in err, (argv, err)


# ---------------------------------------------------------------------------------
# 3. Random variant YAML: a Variant, or a one-line UsageError naming the file.
# ---------------------------------------------------------------------------------

ALL_RULES = sorted({name for fam in FAMILIES.values() for name in fam.rules})
KEYS = st.one_of(
    st.sampled_from(["description", "rules", "fallback", "rule", "Rules", "fallbacks", "name", ""]),
    st.text(max_size=8), st.integers(-2, 2), st.booleans(), st.none(), st.floats(allow_nan=False),
    st.tuples(st.text(max_size=3), st.integers(0, 3)),  # a sequence as a mapping key
)  # fmt: skip
SCALARS = st.one_of(
    st.sampled_from([*ALL_RULES, *FALLBACKS, *FAMILIES, "hybird", "ReLU", "", "yes", "null", "~"]),
    st.text(max_size=12),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=8,
)
RULES = st.dictionaries(
    st.one_of(st.sampled_from([*FAMILIES, "relu", "GELU", "Conv2D"]), KEYS),
    st.one_of(st.sampled_from([*ALL_RULES, "hybird", "CENTER"]), VALUES),
    max_size=5,
)
STRUCTURED = st.tuples(
    st.fixed_dictionaries(
        {},
        optional={
            "rules": st.one_of(RULES, VALUES),
            "description": VALUES,
            "fallback": st.one_of(st.sampled_from([*FALLBACKS, "none", ""]), VALUES),
        },
    ),
    st.dictionaries(KEYS, VALUES, max_size=2),  # stray keys, now and then
    st.booleans(),
).map(lambda t: {**t[0], **t[1]} if t[2] else t[0])
YAML_LIKE = st.lists(  # YAML's punctuation, keywords and names, in any order
    st.one_of(st.sampled_from([*": -[]{}?&*!|>'\"%@`#,\n\t\\", "  ", "\n  ", "rules", "ReLU", "description",
                               "fallback", "hybrid", "switches", "bp", "---", "...", "&a ", "*a", "!!map ", "? "]),
              st.characters()),
    max_size=30,
).map("".join)  # fmt: skip
VARIANT_TEXTS = st.one_of(
    st.text(),
    YAML_LIKE,
    STRUCTURED.map(lambda d: yaml.safe_dump(d, allow_unicode=True, sort_keys=False)),
    STRUCTURED.map(lambda d: yaml.safe_dump(d, default_flow_style=True, sort_keys=False)),
)


@settings(max_examples=200, deadline=None)
@given(VARIANT_TEXTS)
# regressions: a control character (once a two-line error), a sequence as a key (once
# TypeError: unhashable type), deep nesting (once RecursionError)
@example("\x00")
@example("[a]: 1")
@example("rules:\n  [ReLU]: hybrid\n")
@example("[" * 1000)
def test_random_variant_yaml_is_validated(text):
    try:
        variant = parse_variant(text, "fuzz", "fuzz.yaml")
    except UsageError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml"), message
        assert "\n" not in message.strip(), message
        return
    assert isinstance(variant, Variant)
    assert variant.name == "fuzz" and variant.fallback in FALLBACKS
    for family, rule in variant.rules.items():
        assert rule in FAMILIES[family].rules
