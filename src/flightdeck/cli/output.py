"""Listings: typed records, printed as the Rocks table or as JSON and CSV for scripts.

A listing declares its `Field`s (key, type, help) and adds one record per logical row: a host,
a VM, a key, a node of a cluster. The same records make all three formats:

- JSON: a list of objects, one per record, with the fields' snake_case keys and typed values
  (integers, booleans, null, lists; times in ISO 8601 UTC). Every record carries its grouping
  key (a cluster node names its frontend), and a multi-line value (a PEM key) is one string.
- CSV: the same records, a header of the keys; null is empty, a list is joined by the field's
  separator, booleans are `true`/`false`.
- The Rocks table (`endOutput` of the original): the first column is an "owner", printed
  `owner:`; it is dropped when every record has the same owner unless the listing keeps it;
  headers are upper-case; columns are left-justified to the widest cell and joined by one
  space; an empty cell is filled with `-` to the column width. A `continued` field (a list, or
  a multi-line string) takes one row per item, the owner of the extra rows printed as `:`; a
  `group`ed listing prints the owner only on the first of consecutive records that share it.

`output-header=no` drops the header (table, CSV) and `output-col=a,b` keeps only those columns
or fields, by table column name or by key.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flightdeck.errors import UsageError

#: What a record may hold: scalars, lists of scalars, a time.
Scalar = str | int | float | bool | None
Cell = Scalar | datetime | Sequence[Scalar]

#: Type names for the help (and what a test checks each value against).
TYPES = ("string", "integer", "number", "boolean", "time", "list of strings", "list of integers")

_SNAKE = re.compile(r"[^a-z0-9]+")


def snake(name: str) -> str:
    """`client nodes`, `vm-host` -> `client_nodes`, `vm_host`."""
    return _SNAKE.sub("_", name.strip().lower()).strip("_")


@dataclass(frozen=True)
class Field:
    """One field of a listing's records, and how the table shows it.

    `column` is the table's column name (default: the key); None keeps the field out of the
    table (JSON and CSV only). `when` names the parameter (a yes/no one) that adds the field.
    """

    key: str
    help: str
    type: str = "string"
    nullable: bool = False
    column: str | None = ""
    when: str | None = None
    #: Table: one row per item of a list or line of a string, instead of one cell.
    continued: bool = False
    #: How a list is joined into one cell (table, when not continued) and in CSV.
    sep: str = " "
    #: Table: leave the column out when every record's value is empty (unless output-col).
    hide_empty: bool = False

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"field {self.key}: type {self.type!r} is not one of {TYPES}")
        if snake(self.key) != self.key:
            raise ValueError(f"field key {self.key!r} is not snake_case")
        if self.column == "":
            object.__setattr__(self, "column", self.key)

    @property
    def type_text(self) -> str:
        return f"{self.type} or null" if self.nullable else self.type


class Table:
    """Records to print. The first table column is the owner when `owner` is true."""

    def __init__(
        self,
        fields: Sequence[str | Field],
        rows: Iterable[Sequence[Cell]] = (),
        *,
        owner: bool = True,
        keep_owner: bool = False,
        dash_empty: bool = True,
        group: bool = False,
    ) -> None:
        #: Plain strings are table headers: their field key is the header in snake_case.
        self.fields = [f if isinstance(f, Field) else Field(snake(f), "", column=f) for f in fields]
        keys = [f.key for f in self.fields]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate field keys in {keys}")
        self.records: list[dict[str, Cell]] = []
        self.owner = owner
        #: Keep the owner column even when every record has the same owner (`trimOwner=0`).
        self.keep_owner = keep_owner
        #: Fill empty cells with dashes (the original's padChar); False leaves them blank.
        self.dash_empty = dash_empty
        #: Print the owner only on the first of consecutive records that share it.
        self.group = group
        self.extend(rows)

    @property
    def header(self) -> list[str]:
        return [str(f.column) for f in self.fields if f.column is not None]

    def add(self, *cells: Cell, **values: Cell) -> None:
        """Add a record: the values of every field in order, or all of them by key."""
        if cells and values:
            raise TypeError("give a record's values by position or by key, not both")
        if cells:
            if len(cells) != len(self.fields):
                raise TypeError(f"{len(cells)} values for {len(self.fields)} fields")
            self.records.append({f.key: c for f, c in zip(self.fields, cells, strict=True)})
            return
        keys = [f.key for f in self.fields]
        if set(values) != set(keys):
            raise TypeError(f"record keys {sorted(values)} are not the fields {keys}")
        self.records.append({k: values[k] for k in keys})

    def extend(self, rows: Iterable[Sequence[Cell] | Mapping[str, Cell]]) -> None:
        for row in rows:
            if isinstance(row, Mapping):
                self.add(**row)
            else:
                self.add(*row)


# Cells -------------------------------------------------------------------------------------


def _scalar_text(value: Scalar | datetime) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return _utc(value).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _items(value: Cell) -> list[str]:
    """A continued field's rows: a list's items, or a string's lines."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.strip("\n").splitlines()
    if isinstance(value, Sequence):
        return [_scalar_text(v) for v in value]
    return [_scalar_text(value)]


def _cell(value: Cell, f: Field) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return f.sep.join(_scalar_text(v) for v in value)
    return _scalar_text(value)


def _json_value(value: Cell) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return value


def _utc(value: datetime) -> datetime:
    """A time in UTC; a naive one (as SQLite gives them back) is UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _csv_value(value: Cell, f: Field) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _iso(value)
    return _cell(value, f)


def _empty(value: Cell) -> bool:
    return value is None or value == "" or (isinstance(value, Sequence) and len(value) == 0)


# Selecting fields --------------------------------------------------------------------------


def _pick(available: Sequence[Field], columns: str, table: bool) -> list[Field]:
    """The fields output-col names, in its order, by column name or key (case-insensitive)."""
    by_name: dict[str, Field] = {}
    for f in available:
        by_name.setdefault(f.key, f)
        if f.column is not None:
            by_name.setdefault(f.column.lower(), f)
    wanted = [c.strip().lower() for c in columns.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in by_name]
    if unknown:
        names = [str(f.column) if table else f.key for f in available]
        raise UsageError(
            f"output-col: unknown column {', '.join(unknown)} (columns: {', '.join(names)})"
        )
    out: list[Field] = []
    for c in wanted:
        if by_name[c] not in out:
            out.append(by_name[c])
    return out


def _check_format(fmt: str) -> str:
    fmt = (fmt or "table").lower()
    if fmt not in ("table", "json", "csv"):
        raise UsageError(f"output-format={fmt!r}: use table, json or csv")
    return fmt


def render(
    table: Table, *, header: bool = True, columns: str | None = None, fmt: str = "table"
) -> str:
    """The text to print for `table` (ends with a newline unless empty)."""
    fmt = _check_format(fmt)
    if fmt == "table":
        return _render_table(table, header, columns)
    fields = _pick(table.fields, columns, table=False) if columns else list(table.fields)
    if fmt == "json":
        records = [{f.key: _json_value(r[f.key]) for f in fields} for r in table.records]
        return json.dumps(records, indent=1) + "\n"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow([f.key for f in fields])
    writer.writerows([[_csv_value(r[f.key], f) for f in fields] for r in table.records])
    return buf.getvalue()


# The Rocks table ---------------------------------------------------------------------------


def _render_table(table: Table, header: bool, columns: str | None) -> str:
    shown = [f for f in table.fields if f.column is not None]
    owner_field = shown[0] if table.owner and shown else None
    owner = owner_field is not None
    owners = (
        {_cell(r[owner_field.key], owner_field) for r in table.records} if owner_field else set()
    )
    if columns:
        # Picked by name, the owner column is there even when every record shares it.
        picked = _pick(shown, columns, table=True)
        owner = owner and picked[0] is owner_field
        shown = picked
    else:
        if owner and not table.keep_owner and len(owners) == 1:
            shown, owner = shown[1:], False
        shown = [
            f for f in shown if not (f.hide_empty and all(_empty(r[f.key]) for r in table.records))
        ]
    if not shown:
        return ""
    rows = _rows(table, shown, owner)
    if owner:
        for r in rows:
            r[0] = f"{r[0]}:"
    upper = [str(f.column).upper() for f in shown]
    widths = [len(h) if header else 0 for h in upper]
    for i in range(len(shown)):
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


def _rows(table: Table, shown: Sequence[Field], owner: bool) -> list[list[str]]:
    """Text rows: one per record, more where a continued field has several items."""
    rows: list[list[str]] = []
    previous: object = object()
    for record in table.records:
        items = {f.key: _items(record[f.key]) for f in shown if f.continued}
        n = max([1, *(len(v) for v in items.values())])
        for i in range(n):
            row = []
            for f in shown:
                if f.continued:
                    lines = items[f.key]
                    row.append(lines[i] if i < len(lines) else "")
                elif i == 0:
                    row.append(_cell(record[f.key], f))
                else:
                    row.append("")
            rows.append(row)
        if owner and table.group:
            key = shown[0].key
            if record[key] == previous:
                rows[-n][0] = ""
            previous = record[key]
    return rows
