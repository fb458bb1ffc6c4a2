"""The base class of every `rocks` command.

A command module (`flightdeck/commands/<verb>/<object...>.py`, or a package `__init__.py` when
longer commands extend it) defines one class named `Command`. It declares its arguments,
parameters and examples, and its `run` calls one service. The framework does the parsing,
help, root check, output and error reporting.
"""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from flightdeck.cli.output import Field, Table, render
from flightdeck.cli.params import Args, Example, Param, Parsed
from flightdeck.cli.program import ROCKS, Program
from flightdeck.errors import FlightdeckError, PermissionDenied

if TYPE_CHECKING:
    from flightdeck.db.engine import Database


class Context:
    """What a running command may use: its program, its output streams and, lazily, the
    database."""

    def __init__(
        self, out: TextIO | None = None, err: TextIO | None = None, program: Program = ROCKS
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.program = program
        self._db: object | None = None

    @property
    def db(self):  # type: ignore[no-untyped-def]  # returns flightdeck.db.engine.Database
        """The site database, opened on first use (commands that never touch it pay nothing)."""
        if self._db is None:
            from flightdeck.db.engine import open_database

            self._db = open_database()
        return self._db

    def local_db(self) -> Database | None:
        """This machine's database where the program reads one and it opens (owner commands:
        anyone may run them, so a database that is not there, or not theirs, is no error)."""
        if self.program.owner_only:
            return None
        try:
            db: Database = self.db
        except Exception:
            return None
        return db

    def warn(self, line: str) -> None:
        """A line on standard error (a failure among several results, a hint)."""
        self.err.write(line + "\n")

    @property
    def interactive(self) -> bool:
        """True when stdout is a terminal: progress is shown only then."""
        return self.out.isatty()


class Command(ABC):
    """Subclasses set the class attributes and implement `run`."""

    summary: ClassVar[str] = ""
    description: ClassVar[str] = ""
    args: ClassVar[Args | None] = None
    params: ClassVar[Sequence[Param]] = ()
    examples: ClassVar[Sequence[Example]] = ()
    #: Commands that change the database (or hosts) need root.
    writes: ClassVar[bool] = True
    #: An owner command (through the Airboss, with a key): `pilot` offers it too.
    owner: ClassVar[bool] = False
    #: A listing's records: their fields (JSON keys, types, help) and what one record is.
    #: The help's "Fields" section is generated from these.
    fields: ClassVar[Sequence[Field]] = ()
    records: ClassVar[str] = ""
    #: Filled in by the registry: the command's words, e.g. "list host interface".
    words: ClassVar[str] = ""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.parsed = Parsed(args=[])

    def check_root(self) -> None:
        if self.writes and os.geteuid() != 0:
            raise PermissionDenied(
                f"'{self.ctx.program.name} {self.words}' changes the cluster database and must "
                "be run as root (use sudo)"
            )

    @abstractmethod
    def run(self, p: Parsed) -> None:
        """Do the work: call one service and print its result."""

    def close(self) -> None:
        """Release what the command opened (the database engine)."""
        db = self.ctx._db
        if db is not None:
            db.dispose()  # type: ignore[attr-defined]
            self.ctx._db = None

    # Output helpers -----------------------------------------------------------------------

    def table(
        self,
        *,
        owner: bool = True,
        keep_owner: bool = False,
        dash_empty: bool = True,
        group: bool = False,
    ) -> Table:
        """An empty table of the declared fields that this run's parameters switch on."""
        p = self.parsed.params
        fields = [f for f in self.fields if f.when is None or p.get(f.when.replace("-", "_"))]
        return Table(fields, owner=owner, keep_owner=keep_owner, dash_empty=dash_empty, group=group)

    def emit(self, table: Table) -> None:
        p = self.parsed.params
        self.ctx.out.write(
            render(
                table,
                header=bool(p.get("output_header", True)),
                columns=p.get("output_col"),
                fmt=p.get("output_format") or "table",
            )
        )

    def say(self, text: str) -> None:
        self.ctx.out.write(text + "\n")

    def outcomes(self, results: Sequence[Any]) -> None:
        """Print one line per VM (`.ok`, `.message`); any failure makes the command fail."""
        failed = [r for r in results if not r.ok]
        for r in results:
            if getattr(r, "warning", None):
                self.ctx.err.write(f"warning - {r.warning}\n")
            if r.ok:
                self.say(r.message)
            else:
                self.ctx.err.write(f"error - {r.message}\n")
        if failed:
            raise FlightdeckError(
                f"{len(failed)} of {len(results)} VM(s) failed: " + ", ".join(r.vm for r in failed)
            )
