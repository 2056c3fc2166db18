"""The `reversenet` command: a thin layer over the Python API.

Each command imports the API in its body, not at the top of its module: `reversenet --help`
and `reversenet COMMAND --help` start at once, without torch.
"""

from __future__ import annotations

import signal
import sys
import warnings

import click

from ..errors import ReversenetError, first_line
from .common import console
from .diff import diff
from .explore import explore
from .listing import inspect, layers, variants
from .masks import evaluate, segment
from .pictures import compare, visualize
from .run import run
from .sanity import sanity

__all__ = ["cli", "console", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="reversenet")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
def cli(debug: bool) -> None:
    """Reversed architectures of CNNs: DeConvNet, SaliNet, DeSaliNet and the five
    other variants of Mahendran & Vedaldi, "Salient deconvolutional networks"."""


for command in (visualize, run, compare, segment, evaluate, sanity, explore, variants, layers, inspect, diff):
    cli.add_command(command)


def main() -> None:
    """Entry point: errors become one line on stderr and an exit status (2 usage, 1 failure)."""
    args = sys.argv[1:]
    debug = "--debug" in args
    # SIGTERM (a scheduler's stop) unwinds like Ctrl-C: the file being written is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if not debug:  # a warning is one line, without the source line Python adds
        warnings.showwarning = lambda message, *rest: print(f"warning: {message}", file=sys.stderr)
    try:  # --debug is taken anywhere on the line, not only before the command
        cli.main(args=[a for a in args if a != "--debug"], prog_name="reversenet", standalone_mode=False)
    except click.exceptions.Abort:
        console.print("aborted")
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare `reversenet`: its help
        print(exc.ctx.get_help() if exc.ctx else exc.format_message())
        sys.exit(0)
    except click.ClickException as exc:
        if debug:
            raise
        print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(2)
    except ReversenetError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug or an unforeseen failure: still one line
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {first_line(exc)} (rerun with --debug for the traceback)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
