"""What the commands share: the options of the network specification and of a reverse, the
console, tables, progress and the summary of what was written. No torch here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from ..choices import RENDERERS
from ..errors import ReversenetError
from ..inputs.spec import DEVICE, DEVICES, MODEL, SEED, WEIGHTS, NetworkSpec
from ..tables import Table

if TYPE_CHECKING:
    from ..output.files import Result

# soft_wrap: a message is one line also in a log file (a console that is no terminal is 80 wide)
console = Console(stderr=True, soft_wrap=True, highlight=False)

images_option = click.option("--image", "-i", "image_specs", multiple=True,
                             help="Image file, folder or glob; repeatable. Default: the bundled sample photo.")
force_option = click.option("--force", is_flag=True, help="Recompute files that are current (by default they are skipped).")


def out_option(help: str) -> Callable:
    return click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("reversenet-out"),
                        show_default=True, help=help)  # fmt: skip


def model_options(fn: Callable | None = None, *, weights: str = WEIGHTS) -> Callable:
    """--model, --weights, --seed, --device: a reversenet.NetworkSpec, its defaults."""

    def add(fn: Callable) -> Callable:
        options = [
            click.option("--model", "-m", default=MODEL, show_default=True,
                         help="torchvision model name, or package.module:factory for your own."),
            click.option("--weights", "-w", default=weights, show_default=True,
                         help="DEFAULT (torchvision's ImageNet weights), random, or a state_dict file."),
            click.option("--seed", default=SEED, show_default=True, type=click.IntRange(0, 2**63 - 1),
                         help="Seed for --weights random and random selectors."),
            click.option("--device", type=click.Choice(DEVICES), default=DEVICE, show_default=True,
                         help="auto: CUDA when there is one."),
        ]  # fmt: skip
        for option in reversed(options):
            fn = option(fn)
        return fn

    return add(fn) if fn else add


def spec(options: dict[str, Any]) -> NetworkSpec:
    """The network specification of a command's options (popped from them)."""
    return NetworkSpec(*(options.pop(k) for k in ("model", "weights", "seed", "device")))


def reverse_options(fn: Callable) -> Callable:
    """--layer, --select, --render."""
    options = [
        click.option("--layer", "-l", default=None,
                     help="Module name (features.30, layer4), paper alias (pool5) or graph node. "
                          "Default: the last feature map before global pooling (pool5, layer4)."),
        click.option("--select", "-s", default="max", show_default=True,
                     help="max, neuron:C,Y,X, channel:C, topk:K, random, mixture, noise, full, class:I|NAME."),
        click.option("--render", "how", type=click.Choice(RENDERERS), default="paper", show_default=True,
                     help="paper (footnote 4 sigmoid), gamma, minmax or saliency (heat map + overlay)."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def photos(specs: tuple[str, ...]) -> list[Path]:
    """The photos of -i options; the sample photo without any."""
    from ..inputs.images import find_images, sample_image

    return find_images(specs or [str(sample_image())])


def show(table: Table) -> None:
    """A table on stdout: drawn by rich on a terminal; piped or redirected, its title as a
    `# ` line, then tab-separated lines with a header, nothing cut (names are what users
    copy into --layer)."""
    out = Console()
    if not out.is_terminal:
        click.echo(table.tsv())
        return
    drawn = RichTable(title=table.title, title_justify="left")
    for column in table.columns:
        drawn.add_column(column, justify="right" if column in table.right else "left", overflow="fold")
    for row in table.rows:
        drawn.add_row(*row)
    if table.total:
        drawn.add_section()
        drawn.add_row(*table.total)
    out.print(drawn)


@contextmanager
def progress(start: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback, (what, done, total): a bar on a terminal; otherwise a line on
    stderr at every tenth of the work done, so that a log follows a run (none before any:
    bad input stays one line)."""
    if console.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:  # fmt: skip
            task = bar.add_task(start, total=None)
            yield lambda what, done, total: bar.update(task, description=what, completed=done, total=total)
        return
    shown = [-1]

    def line(what: str, done: int, total: int) -> None:
        tenth = 10 * done // total if total else 0
        if done and total and tenth > shown[0]:
            shown[0] = tenth
            console.print(f"{start}: {done:,} of {total:,} ({100 * done // total}%) · {what}")

    yield line


def summary(result: Result) -> None:
    """What a command wrote, then its failures, a line each; exit 1 if any failed."""
    lines, error = result.report()
    for text in lines:
        console.print(text)
    if error:
        raise ReversenetError(error)
