"""Declarations of a command's arguments and parameters, and their parsing.

The Rocks grammar: `rocks <verb> <object words...> [args...] [name=value ...]`. Tokens shaped
`name=value` are parameters; the rest are arguments. Parameters marked `positional` may also be
given as bare tokens, in their declared order (`rocks add cluster 1.2.3.4 2`), and arguments
may also be given as `<argument name>=value` (`pilot set host power host=<MAC>`), as the
original's fillPositionalArgs took either form. Everything that help and usage print is
generated from these declarations. `pilot` parses with the same grammar (`cli.program`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flightdeck.errors import UsageError, UserError

PARAM_RE = re.compile(r"^([A-Za-z0-9_+-]+)=(.*)$", re.DOTALL)
TRUE_WORDS = frozenset({"yes", "y", "on", "true", "1"})
FALSE_WORDS = frozenset({"no", "n", "off", "false", "0"})


def to_bool(value: str, name: str = "value") -> bool:
    """Parse a Rocks boolean; anything that is not clearly yes or no is an error."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise UserError(f"{name}={value!r} is not a boolean: use yes/no, on/off, true/false or 1/0")


def to_int(value: str, name: str = "value") -> int:
    try:
        return int(value.strip(), 10)
    except ValueError:
        raise UserError(f"{name}={value!r} must be an integer") from None


@dataclass(frozen=True)
class Kind:
    """A parameter type: a label for the help and a converter from the command-line text."""

    label: str
    convert: Callable[[str, str], Any]


STR = Kind("string", lambda v, _n: v)
INT = Kind("integer", to_int)
BOOL = Kind("boolean", to_bool)


def positive_int(value: str, name: str) -> int:
    n = to_int(value, name)
    if n < 1:
        raise UserError(f"{name}={value} must be a positive integer")
    return n


def non_negative_int(value: str, name: str) -> int:
    n = to_int(value, name)
    if n < 0:
        raise UserError(f"{name}={value} must be zero or a positive integer")
    return n


POSITIVE = Kind("positive integer", positive_int)
COUNT = Kind("integer >= 0", non_negative_int)


@dataclass(frozen=True)
class Param:
    """A `name=value` parameter."""

    name: str
    help: str
    kind: Kind = STR
    default: Any = None
    required: bool = False
    positional: bool = False
    #: Shown in help instead of the default, when the default is computed at run time.
    default_text: str | None = None
    #: (program, default) pairs where a program's default differs (pilot's status=yes).
    program_defaults: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")

    def default_for(self, program: str) -> Any:
        return dict(self.program_defaults).get(program, self.default)


@dataclass(frozen=True)
class Args:
    """The bare arguments of a command (usually host names)."""

    name: str
    help: str
    min: int = 0
    max: int | None = None

    def usage(self, named: bool = False) -> str:
        word = f"{self.name}=<{self.name}>" if named else f"{{{self.name}}}"
        if self.max == 1:
            return word if self.min else f"[{word}]"
        return f"{word} ..." if self.min else f"[{word} ...]"


@dataclass(frozen=True)
class Example:
    command: str
    explanation: str


#: Parameters every command accepts: they shape the output.
OUTPUT_PARAMS = (
    Param("output-header", "print the header line of a table", BOOL, default=True),
    Param("output-col", "comma-separated list of columns to print", STR),
    Param("output-format", "table (default), json or csv", STR, default="table"),
)


@dataclass
class Parsed:
    """What the command line said, converted: `args` and `params` by key."""

    args: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    given: set[str] = field(default_factory=set)

    def __getitem__(self, key: str) -> Any:
        return self.params[key]


def split_tokens(tokens: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Separate bare tokens from `name=value` tokens, keeping both orders."""
    bare: list[str] = []
    named: list[tuple[str, str]] = []
    for tok in tokens:
        m = PARAM_RE.match(tok)
        if m and not tok.lower().startswith("select "):
            named.append((m.group(1).lower(), m.group(2)))
        else:
            bare.append(tok)
    return bare, named


#: Parameters of the original pilot.py, and what replaces each (an owner's old scripts meet
#: a one-line answer, not "unknown parameter").
RETIRED = {
    "vm-controller": "give airboss=<host:port> instead (default localhost:8677, through the "
    "ssh tunnel of the guide)",
    "vncviewer": "give viewer=<program> instead (viewer=none prints the local address)",
    "vncflags": "start the viewer yourself with its flags on the address printed with "
    "viewer=none (or open the console in the browser with web=yes)",
}


def parse(
    tokens: Sequence[str],
    args: Args | None,
    params: Sequence[Param],
    command: str,
    *,
    program: str = "rocks",
    named_args: bool = False,
) -> Parsed:
    """Apply the declarations to the tokens after the command words.

    `program` names the program in messages and picks its defaults; `named_args` shows the
    arguments as `name=value` in messages (pilot's way of writing them).
    """
    declared = {p.name: p for p in (*params, *OUTPUT_PARAMS)}
    bare, named = split_tokens(tokens)
    raw: dict[str, str] = {}
    where = f"'{program} {command}'"
    for name, value in named:
        if args is not None and name == args.name and name not in declared:
            bare.append(value)  # an argument written as a parameter
            continue
        if name not in declared and name in RETIRED:
            raise UsageError(f"{name}= was the original pilot.py's; {RETIRED[name]}")
        if name not in declared:
            known = ", ".join(p.name for p in params) or "none"
            raise UsageError(
                f"unknown parameter {name!r} for {where} (parameters: {known}); "
                f"see '{program} {command} help'"
            )
        if name in raw:
            raise UsageError(f"parameter {name!r} given twice")
        raw[name] = value

    # Positional parameters: bare tokens fill them in declared order. When the command also
    # takes a variable number of arguments, the parameters come from the end of the line.
    missing = [p for p in params if p.positional and p.name not in raw]
    if missing and bare:
        min_args = args.min if args else 0
        fixed = args is None or args.max is not None
        if fixed:
            n_args = min(len(bare), args.max if args and args.max is not None else 0)
            n_args = max(n_args, min(min_args, len(bare)))
            extra = bare[n_args:]
            bare = bare[:n_args]
            for p, value in zip(missing, extra, strict=False):
                raw[p.name] = value
            if len(extra) > len(missing):
                raise UsageError(
                    f"too many arguments for {where}: {' '.join(extra[len(missing) :])}"
                )
        else:
            spare = max(0, len(bare) - min_args)
            take = min(spare, len(missing))
            if take:
                tail = bare[len(bare) - take :]
                bare = bare[: len(bare) - take]
                for p, value in zip(missing, tail, strict=False):
                    raw[p.name] = value

    if args is None and bare:
        raise UsageError(f"{where} takes no arguments, got: {' '.join(bare)}")
    if args is not None:
        if len(bare) < args.min:
            raise UsageError(
                f"{where} needs {args.usage(named_args)}; see '{program} {command} help'"
            )
        if args.max is not None and len(bare) > args.max:
            raise UsageError(
                f"{where} takes at most {args.max} {args.name} argument"
                f"{'s' if args.max != 1 else ''}, got {len(bare)}: {' '.join(bare)}"
            )

    out = Parsed(args=bare, given=set(raw))
    for p in declared.values():
        if p.name in raw:
            out.params[p.key] = p.kind.convert(raw[p.name], p.name)
        elif p.required:
            raise UsageError(f"{where} needs {p.name}=<{p.kind.label}>: {p.help}")
        else:
            out.params[p.key] = p.default_for(program)
    return out


#: The usual argument of host commands.
HOSTS_HELP = "hosts: names, MACs, IPs, appliances (compute), rackN, or patterns with % or *"
HOSTS = Args("host", HOSTS_HELP)
ONE_HOST = Args("host", "one host: its name, MAC or IP", min=1, max=1)
SOME_HOSTS = Args("host", HOSTS_HELP, min=1)
