"""Tables in the Rocks format, plus JSON and CSV for scripts.

Rocks format (`endOutput` of the original): the first column is an "owner", printed `owner:`;
it is dropped when every row has the same owner unless the command keeps it; headers are
upper-case; columns are left-justified to the widest cell and joined by one space; an empty
cell is filled with `-` to the column width. `output-header=no` drops the header and
`output-col=a,b` keeps only those columns.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from flightdeck.errors import UsageError

Cell = str | int | float | bool | None


@dataclass
class Table:
    """Rows to print. `header[0]` names the owner column when `owner` is true."""

    header: Sequence[str]
    rows: list[Sequence[Cell]] = field(default_factory=list)
    owner: bool = True
    #: Keep the owner column even when every row has the same owner (`trimOwner=0`).
    keep_owner: bool = False
    #: Fill empty cells with dashes (the original's padChar); False leaves them blank.
    dash_empty: bool = True

    def add(self, *cells: Cell) -> None:
        self.rows.append(cells)

    def extend(self, rows: Iterable[Sequence[Cell]]) -> None:
        self.rows.extend(rows)


def _text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "yes" if cell else "no"
    return str(cell)


def _select(table: Table, columns: str | None) -> tuple[list[str], list[list[str]], bool]:
    """Apply output-col; returns headers, text rows and whether the owner column is kept."""
    headers = [h.lower() for h in table.header]
    rows = [[_text(c) for c in r] for r in table.rows]
    owner = table.owner
    if owner and not table.keep_owner and rows and len({r[0] for r in rows}) == 1:
        headers, rows, owner = headers[1:], [r[1:] for r in rows], False
    if columns:
        wanted = [c.strip().lower() for c in columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in headers]
        if unknown:
            raise UsageError(
                f"output-col: unknown column {', '.join(unknown)} (columns: {', '.join(headers)})"
            )
        idx = [headers.index(c) for c in wanted]
        keep_owner = owner and 0 in idx
        headers = [headers[i] for i in idx]
        rows = [[r[i] for i in idx] for r in rows]
        owner = keep_owner and idx[0] == 0
    return headers, rows, owner


def render(
    table: Table, *, header: bool = True, columns: str | None = None, fmt: str = "table"
) -> str:
    """The text to print for `table` (ends with a newline unless empty)."""
    fmt = (fmt or "table").lower()
    headers, rows, owner = _select(table, columns)
    if fmt == "json":
        return json.dumps([dict(zip(headers, r, strict=True)) for r in rows], indent=1) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if header:
            writer.writerow(headers)
        writer.writerows(rows)
        return buf.getvalue()
    if fmt != "table":
        raise UsageError(f"output-format={fmt!r}: use table, json or csv")
    if not headers:
        return ""
    if owner:
        for r in rows:
            r[0] = f"{r[0]}:"
    upper = [h.upper() for h in headers]
    widths = [len(h) if header else 0 for h in upper]
    for i in range(len(headers)):
        widest = max((len(r[i]) for r in rows), default=0)
        widths[i] = max(widths[i], widest, 1)
    fill = "-" if table.dash_empty else " "
    blanks = [fill * w for w in widths]
    last = len(widths) - 1
    lines: list[str] = []
    if header:
        lines.append(" ".join(h.ljust(w) for h, w in zip(upper, widths, strict=True)).rstrip())
    for r in rows:
        cells = [
            (c or blanks[i]) if i == last else (c or blanks[i]).ljust(widths[i])
            for i, c in enumerate(r)
        ]
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines) + "\n" if lines else ""
