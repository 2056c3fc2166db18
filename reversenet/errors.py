"""Errors that reach the user as one line, never as a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ReversenetError(Exception):
    """A failure the user can fix: the CLI prints its message and exits 1.

    Every error reversenet raises on purpose is one; its message is one line that says
    what went wrong and, where it can, what to do.

    Examples
    --------
    >>> import reversenet
    >>> try:
    ...     reversenet.load_variant("desalinett")
    ... except reversenet.ReversenetError as error:
    ...     print(error)
    unknown variant 'desalinett'; did you mean desalinet, salinet, desalinet-center?
    """

    exit_code = 1


class UsageError(ReversenetError):
    """A bad name, value or option: the CLI prints its message and exits 2.

    Examples
    --------
    >>> import reversenet
    >>> isinstance(reversenet.UsageError("bad"), reversenet.ReversenetError)
    True
    """

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """An exception's message cut to one line (its type's name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def unknown(kind: str, name: str, choices: Iterable[str], listing: str = "") -> UsageError:
    """An error for an unknown `name`, suggesting the closest of `choices`;
    `listing` names the command that lists them all."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if close:
        hint = "did you mean " + ", ".join(close) + "?"
    elif len(choices) <= 12:
        hint = "choose from " + ", ".join(choices)
    else:
        hint = f"{len(choices)} exist" + (f"; {listing} lists them" if listing else "")
    return UsageError(f"unknown {kind} {name!r}; {hint}")
