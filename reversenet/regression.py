"""Image regression tests in pytest's conventions: the ``reversenet_regression`` fixture.

Installed with reversenet (a ``pytest11`` entry point: no import, no conftest)::

    def test_my_model_still_looks_where_it_did(reversenet_regression):
        model = MyNet()
        model.load_state_dict(torch.load("mynet.pth", weights_only=True))
        reversenet_regression.check(model, ["photos/"], layers=["layer4"], variants=["desalinet"])

``pytest --reversenet-generate`` renders the pictures and keeps them as the test's baselines
beside the test file, in ``reversenet_baselines/<test file>/<test name>/``: the PNGs and a
``manifest.json`` of what made each (model, the sha256 of its weights, layer, variant and its
rules, selector, renderer, photo and its sha256, reversenet and torch versions). Commit them.
Later runs render again, with one recording per batch of photos, and compare: a picture
passes when at most `share` of its pixels differ by more than `tolerance` levels
(`reversenet.diff`; the defaults pass another CPU's rounding and fail a changed rule), set
per call or for a project in ``pytest.ini``/``pyproject.toml`` (``reversenet_tolerance``,
``reversenet_share``). A failure names every picture that changed and what changed in its
manifest (other weights, another model, another variant's rules) besides the pixels;
``--reversenet-summary=DIR`` writes ``DIR/index.html``: each failure's baseline, result and
heat map of the difference with its numbers. It works under pytest-xdist.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from .choices import SEED, SHARE, TOLERANCE, WEIGHTS

if TYPE_CHECKING:
    from torch import Tensor, nn

    from .diff import Difference
    from .inputs.models import Network
    from .inputs.spec import NetworkSpec

BASELINES = "reversenet_baselines"
MANIFEST = "manifest.json"
_ENTRY = "reversenet"  # the key of what a check reports (user_properties travel through xdist)
_VERSIONS = ("reversenet", "torch")  # a record's fields that say where, not what


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reversenet", "reversenet image regression (the reversenet_regression fixture)")
    group.addoption("--reversenet-generate", action="store_true",
                    help="write or refresh the baselines of reversenet_regression checks (and say which changed)")
    group.addoption("--reversenet-summary", metavar="DIR", default=None,
                    help="write DIR/index.html: every failing picture beside its baseline and their difference")  # fmt: skip
    parser.addini("reversenet_tolerance", f"levels a pixel may differ by and count as unchanged (default {TOLERANCE})",
                  default=str(TOLERANCE))  # fmt: skip
    parser.addini("reversenet_share", f"share of a picture's pixels that may change (default {SHARE})", default=str(SHARE))


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_Run(config), "reversenet-regression-run")


@pytest.fixture
def reversenet_regression(request: pytest.FixtureRequest) -> Regression:
    """Checks a model's reversed pictures against baselines kept beside the test."""
    return Regression(request)


class _Run:
    """What the checks of a run reported, gathered where the run ends (the controller of an
    xdist run: the reports of its workers reach it, with what checks put in them)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.failed: list[dict[str, Any]] = []
        self.generated: list[dict[str, Any]] = []
        self.summary = config.getoption("--reversenet-summary", None)
        self.controller = not hasattr(config, "workerinput")
        if self.summary and self.controller:
            shutil.rmtree(self.summary, ignore_errors=True)  # a summary says what this run found, nothing older

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":  # each phase's report carries the test's properties
            return
        for key, value in report.user_properties:
            if key == _ENTRY and isinstance(value, dict):
                (self.generated if value.get("generated") else self.failed).append(value)

    def pytest_sessionfinish(self) -> None:
        if self.summary and self.controller:
            _write_summary(Path(self.summary), self.failed)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.config.getoption("--reversenet-generate"):
            new = [f for g in self.generated for f in g["new"]]
            changed = [f for g in self.generated for f in g["changed"]]
            kept = sum(g["unchanged"] for g in self.generated)
            terminalreporter.write_sep("-", "reversenet baselines")
            terminalreporter.write_line(f"{len(new)} new, {len(changed)} changed, {kept} unchanged")
            for name in changed:
                terminalreporter.write_line(f"changed: {name}")
        if self.summary and self.failed:
            terminalreporter.write_line(f"reversenet: {len(self.failed)} pictures differ; see {Path(self.summary) / 'index.html'}")


class Regression:
    """The fixture: `check` renders a model's pictures and compares them with the test's
    baselines (or, with ``--reversenet-generate``, writes them).

    Parameters
    ----------
    request : pytest.FixtureRequest
        The test's (pytest makes it; a test asks for ``reversenet_regression``).
    """

    def __init__(self, request: pytest.FixtureRequest):
        self._node, self._config = request.node, request.config
        test = Path(str(request.path))
        self.folder = test.parent / BASELINES / test.stem / _safe(request.node.name)
        self._calls = 0

    def check(
        self,
        model: str | nn.Module | Network | NetworkSpec,
        images: str | Path | Iterable[str | Path] | Tensor,
        *,
        layers: Sequence[str] | None = None,
        variants: Sequence[str] = ("desalinet",),
        select: str = "max",
        render: str = "paper",
        weights: str = WEIGHTS,
        seed: int = SEED,
        tolerance: int | None = None,
        share: float | None = None,
        name: str | None = None,
    ) -> list[Difference]:
        """Render the pictures of `model` and compare them with this test's baselines.

        Parameters
        ----------
        model : str, torch.nn.Module, reversenet.Network or reversenet.NetworkSpec
            A torchvision name or ``package.module:factory`` (loaded with `weights` and
            `seed`), or a model of your own (ImageNet's preprocessing; a ``Network`` for
            another).
        images : str, pathlib.Path, iterable of them, or torch.Tensor
            Photo files, folders or globs; or a normalised batch (N, C, H, W).
        layers : sequence of str, optional
            Layers to reverse from; default the network's last feature map.
        variants : sequence of str, default ("desalinet",)
            Variants (names, ``all``, YAML files).
        select : str, default "max"
            The selector.
        render : str, default "paper"
            The renderer.
        weights : str, default "DEFAULT"
            For a model given by name.
        seed : int, default 0
            For random weights and random selectors.
        tolerance : int, optional
            Levels a pixel may differ by; default the ini's ``reversenet_tolerance`` (2).
        share : float, optional
            Share of pixels that may change; default the ini's ``reversenet_share`` (0.001).
        name : str, optional
            A name for this check among several in one test (their own baseline folder).

        Returns
        -------
        list of reversenet.diff.Difference
            One per picture (empty when generating).
        """
        tolerance = int(self._config.getini("reversenet_tolerance")) if tolerance is None else tolerance
        share = float(self._config.getini("reversenet_share")) if share is None else share
        self._calls += 1
        folder = self.folder / _safe(name) if name else self.folder if self._calls == 1 else self.folder / f"check-{self._calls}"
        network = _network(model, weights, seed)
        pictures, records = _render(network, images, layers, variants, select, render, seed)
        if self._config.getoption("--reversenet-generate"):
            self._node.user_properties.append((_ENTRY, _generate(folder, pictures, records, tolerance)))
            return []
        return self._compare(folder, pictures, records, tolerance, share)

    def _compare(self, folder: Path, pictures: dict[str, np.ndarray], records: dict[str, dict], tolerance: int,
                 share: float) -> list[Difference]:  # fmt: skip
        from .diff import compare_arrays
        from .inputs.images import load_image

        command = f"pytest '{self._node.nodeid}' --reversenet-generate"
        manifest = folder / MANIFEST
        if not manifest.is_file():
            pytest.fail(f"no baselines for this test in {folder}: write them with {command}", pytrace=False)
        baseline = json.loads(manifest.read_text(encoding="utf-8"))
        results, failed = [], []
        for file, picture in pictures.items():
            if file not in baseline or not (folder / file).is_file():
                failed.append(self._entry(folder, file, picture, None, records[file], {}, tolerance, share,
                                          f"no baseline (write it with {command})"))  # fmt: skip
                continue
            before = np.asarray(load_image(folder / file))
            found, per_pixel = compare_arrays(picture, before, file, tolerance)
            results.append(found)
            if not found.within(tolerance, share):
                failed.append(self._entry(folder, file, picture, per_pixel, records[file], baseline[file], tolerance, share,
                                          found.problem, found))  # fmt: skip
        failed += [self._entry(folder, f, None, None, {}, baseline[f], tolerance, share, "baseline no longer made")
                   for f in baseline if f not in pictures]  # fmt: skip
        if failed:
            pytest.fail(_message(failed, len(pictures), folder, tolerance, share), pytrace=False)
        moved = {k: (b.get(k), r.get(k)) for f, r in records.items() for b in [baseline[f]] for k in r
                 if k not in (*_VERSIONS, "file") and b.get(k) != r.get(k)}  # fmt: skip
        if moved:  # the pictures match, yet what made them is not what made the baselines
            changes = "; ".join(f"{_what(k)}: {_short(a)} -> {_short(b)}" for k, (a, b) in moved.items())
            warnings.warn(f"the pictures match their baselines in {folder}, but {changes}", stacklevel=2)
        return results

    def _entry(self, folder: Path, file: str, picture: np.ndarray | None, per_pixel: np.ndarray | None, now: dict,
               before: dict, tolerance: int, share: float, problem: str = "",
               found: Difference | None = None) -> dict[str, Any]:  # fmt: skip
        """A failure, as the message and the summary show it; its pictures copied into the
        summary folder when there is one."""
        fields = [[k, before.get(k), now.get(k)] for k in dict.fromkeys([*before, *now])
                  if k != "file" and before.get(k) != now.get(k) and before and now]  # fmt: skip
        entry = {"test": self._node.nodeid, "file": file, "problem": problem, "tolerance": tolerance, "share": share,
                 "fields": fields, "max_abs": found.max_abs if found else None, "psnr": found.psnr if found else None,
                 "changed": found.changed(tolerance) if found else None}  # fmt: skip
        summary = self._config.getoption("--reversenet-summary", None)
        if summary:
            entry |= _summary_pictures(Path(summary), self._node.nodeid, file, folder, picture, per_pixel)
        self._node.user_properties.append((_ENTRY, entry))
        return entry


def _safe(name: str) -> str:
    """A test's name as a folder name: letters, digits, '_', '.' and '-' kept (its parameters
    too), any other run of characters made one '-'."""
    return re.sub(r"[^\w.-]+", "-", name).strip("-.") or "test"


def _network(model: Any, weights: str, seed: int) -> Network:
    """The network a check reverses: loaded by name or spec, or a model of one's own."""
    from torch import nn

    from .inputs.models import Network
    from .inputs.spec import NetworkSpec

    if isinstance(model, (str, NetworkSpec)):
        return NetworkSpec.of(model, weights, seed).load()
    if isinstance(model, Network):
        return model
    if isinstance(model, nn.Module):
        return Network.of(model)
    raise TypeError(f"model must be a name, an nn.Module, a Network or a NetworkSpec, not {type(model).__name__}")


def weights_sha256(module: nn.Module) -> str:
    """The sha256 of a model's state: every parameter and buffer, by name, as bytes."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _render(network: Network, images: Any, layers: Sequence[str] | None, variants: Sequence[str], select: str,
            render: str, seed: int) -> tuple[dict[str, np.ndarray], dict[str, dict]]:  # fmt: skip
    """Every picture (file name -> RGB uint8) and its record, one recording per batch of one size."""
    import torch

    from .core.recording import Recording
    from .core.selectors import parse_selector
    from .core.variants import expand, load_variant
    from .inputs.images import find_images, load_image, sha256_file
    from .output.files import Output, Photo, photo_ids
    from .output.render import render as draw

    named: dict[Path, tuple[Tensor, str | None]]
    if isinstance(images, torch.Tensor):
        named = {Path(f"image-{i}"): (x, None) for i, x in enumerate(images)}
    else:
        specs = [str(images)] if isinstance(images, (str, Path)) else [str(i) for i in images]
        named = {p.resolve(): (network.transform(load_image(p)), sha256_file(p)) for p in find_images(specs)}
    ids = photo_ids(named, {})
    loaded = [load_variant(v) for v in expand(variants)]
    selector = parse_selector(select)
    identity = {"model": network.name, "weights_sha256": weights_sha256(network.module)}
    layers = list(layers or [network.default_layer])
    pictures: dict[str, np.ndarray] = {}
    records: dict[str, dict] = {}
    for shape in dict.fromkeys(tuple(x.shape) for x, _ in named.values()):
        group = [(path, x, digest) for path, (x, digest) in named.items() if tuple(x.shape) == shape]
        x = torch.stack([x for _, x, _ in group]).to(network.device)
        rec = Recording(network.module, x, layer=layers, variants=loaded, aliases=network.aliases)
        for layer in layers:
            signals = [rec.select(selector, variant=v, seed=seed, layer=layer) for v in loaded]
            for variant, result in zip(loaded, rec.reverse_many(list(zip(loaded, signals)), layer=layer)):
                rules = {"variant_rules": variant.recorded}
                for n, (path, _, digest) in enumerate(group):
                    photo = Photo(path, ids[path], digest)
                    for kk, reversed_ in enumerate(result[:, n]):
                        k = kk + 1 if selector.multiple else None
                        for suffix, array in draw(reversed_, render, network.picture(x[n])):
                            picture = suffix.lstrip("-") or render
                            output = Output("picture", photo, identity, layer, variant.name, select, k, render, picture, rules)
                            pictures[output.file] = array
                            # the photo by name: a baseline is the same on every machine
                            records[output.file] = {"file": output.file, **output.params, "photo": path.name}
    return pictures, records


def _generate(folder: Path, pictures: dict[str, np.ndarray], records: dict[str, dict], tolerance: int) -> dict:
    """Write the baselines (removing those no longer made); which are new and which changed."""
    from .diff import compare_arrays
    from .inputs.images import load_image
    from .output.files import save_png, save_text

    new, changed, unchanged = [], [], 0
    for file, picture in pictures.items():
        path = folder / file
        if not path.is_file():
            new.append(str(path))
        elif not compare_arrays(picture, np.asarray(load_image(path)), file, tolerance)[0].within(tolerance):
            changed.append(str(path))
        else:
            unchanged += 1
        save_png(picture, path)
    for stale in folder.glob("*.png"):
        if stale.name not in pictures:
            stale.unlink()
    save_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", folder / MANIFEST)
    return {"generated": True, "new": new, "changed": changed, "unchanged": unchanged}


def _message(failed: list[dict], total: int, folder: Path, tolerance: int, share: float) -> str:
    """One line per picture that failed, then what changed besides the pixels."""
    head = (f"{len(failed)} of {total} pictures differ from the baselines in {folder} "
            f"(a pixel changed: more than {tolerance} levels; a picture: more than {share:.2%} of the pixels it shows):")  # fmt: skip
    lines = [head]
    for entry in failed:
        numbers = f"{entry['changed']:.2%} of the pixels shown changed, max |difference| {entry['max_abs']}" if entry["max_abs"] is not None else ""
        lines.append(f"  {entry['file']}: {entry['problem'] or numbers}")
    fields = {k: (a, b) for entry in failed for k, a, b in entry["fields"] if k not in _VERSIONS}
    for key, (before, now) in fields.items():
        lines.append(f"  {_what(key)} changed: {_short(before)} -> {_short(now)}")
    return "\n".join(lines)


def _what(key: str) -> str:
    return {"weights_sha256": "the weights (sha256)", "model": "the model", "variant_rules": "the variant's rules",
            "photo_sha256": "the photo (sha256)"}.get(key, key)  # fmt: skip


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text[:12] + "…" if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text


def _summary_pictures(summary: Path, test: str, file: str, folder: Path, picture: np.ndarray | None,
                      per_pixel: np.ndarray | None) -> dict[str, str | None]:  # fmt: skip
    """The failure's pictures in the summary folder (baseline, result, heat map of the
    difference), as paths relative to it."""
    from .diff import heat_map
    from .output.files import save_png, slug

    where = Path(slug(test)) / slug(file)
    shown: dict[str, str | None] = {"baseline": None, "result": None, "diff": None}
    if (folder / file).is_file():
        (summary / where).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / file, summary / where / "baseline.png")
        shown["baseline"] = (where / "baseline.png").as_posix()
    if picture is not None:
        save_png(picture, summary / where / "result.png")
        shown["result"] = (where / "result.png").as_posix()
    if per_pixel is not None and per_pixel.max() > 0:
        save_png(heat_map(per_pixel), summary / where / "diff.png")
        shown["diff"] = (where / "diff.png").as_posix()
    return shown


def _write_summary(summary: Path, failed: list[dict]) -> None:
    """DIR/index.html: every failure, grouped by test."""
    import jinja2

    from .output.files import save_text

    env = jinja2.Environment(loader=jinja2.PackageLoader("reversenet", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)  # fmt: skip
    tests: dict[str, list[dict]] = {}
    for entry in failed:
        tests.setdefault(entry["test"], []).append({**entry, "fields": [[_what(k), _short(a), _short(b)] for k, a, b in entry["fields"]]})
    summary.mkdir(parents=True, exist_ok=True)
    page = env.get_template("regression.html.j2").render(tests=tests, failures=len(failed), inf=math.inf)
    save_text(page, summary / "index.html")
