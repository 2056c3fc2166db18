"""A table of results as plain text cells: results format themselves into one (the command
line only prints it), drawn by rich on a terminal or written as tab-separated lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    """A titled table; every cell is text, numbers formatted by the result they belong to.
    `right` names the columns aligned right (numbers); `total`, a last row set apart."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    right: tuple[str, ...] = ()
    total: list[str] | None = None

    @classmethod
    def of(cls, title: str, columns: list[str], rows: list[list[Any]]) -> Table:
        """A table of values: floats with 3 decimals, None as '–', numbers aligned right."""
        shown = lambda v: "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
        numeric = tuple(c for i, c in enumerate(columns) if any(isinstance(r[i], (int, float)) for r in rows))
        return cls(title, [str(c) for c in columns], [[shown(v) for v in row] for row in rows], right=numeric)

    def tsv(self) -> str:
        """``# title``, then a header line and a line per row, tab-separated, nothing cut."""
        rows = [self.columns, *self.rows, *([self.total] if self.total else [])]
        return "\n".join([f"# {self.title}", *("\t".join(row) for row in rows)])


def plural(n: int, word: str, words: str | None = None) -> str:
    """'1 photo', '2 photos'."""
    return f"{n:,} {word if n == 1 else words or word + 's'}"
