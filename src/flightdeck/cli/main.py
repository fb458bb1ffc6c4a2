"""`rocks` (and `pilot`): parse the command line, run one command, report errors as one line.

Imports are deferred: `rocks help` reads only the generated command index, and a command pays
only for the modules it uses. `pilot` is this same dispatcher over the owner commands
(`cli.program.PILOT`, from `pilot.main`).
"""

from __future__ import annotations

import os
import sys

from flightdeck.cli.program import HELP_WORDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from flightdeck.cli.command import Context
    from flightdeck.cli.program import Program

#: Exit status for a bug (not a user error): EX_SOFTWARE.
EXIT_INTERNAL = 70


def _debug() -> bool:
    return os.environ.get("FLIGHTDECK_DEBUG", "") not in ("", "0", "no", "false")


def command_list(prefix: str = "", program: Program | None = None) -> str:
    """The `rocks help` listing, from the generated index alone (no command is imported)."""
    from flightdeck.cli.program import ROCKS
    from flightdeck.cli.registry import index

    program = program or ROCKS
    commands = index(program)
    rows = [(w, s) for w, (_module, s) in sorted(commands.items()) if w.startswith(prefix)]
    width = max((len(w) for w, _ in rows), default=0)
    name = program.name
    head = f"Flightdeck commands ({name} <command> help for the parameters of one):"
    text = "\n".join([head, *(f"  {name} {w:<{width}}  {s}" for w, s in rows)]) + "\n"
    if program.owner_only and not prefix:
        text += _owner_params(name)
    return text


def _owner_params(name: str) -> str:
    """The parameters every owner command takes, with their defaults (pilot's help)."""
    from flightdeck.cli.owner import AIRBOSS_PARAMS

    lines = [f"\nParameters of every command that asks the Airboss ({name} <command> help):"]
    for p in AIRBOSS_PARAMS:
        default = f" (default {p.default_text})" if p.default_text else ""
        lines.append(f"  {p.name + '=':<10} {p.help}{default}")
    return "\n".join(lines) + "\n"


def run(argv: Sequence[str], ctx: Context | None = None) -> int:
    """Run one command; returns the exit status. Used by `main`, `pilot` and the tests."""
    out = ctx.out if ctx else sys.stdout
    err = ctx.err if ctx else sys.stderr
    from flightdeck.errors import FlightdeckError

    try:
        if not argv or argv[0] in HELP_WORDS:
            out.write(command_list(" ".join(argv[1:]), ctx.program if ctx else None))
            return 0
        return _run_command(argv, ctx)
    except FlightdeckError as exc:
        err.write(f"error - {exc.message}\n")
        if _debug():
            raise
        return exc.exit_code
    except KeyboardInterrupt:
        err.write("error - interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except ModuleNotFoundError as exc:
        from flightdeck.errors import missing_extra

        extra = missing_extra(exc)
        if extra is None or _debug():
            raise
        err.write(f"error - {extra.message}\n")
        return extra.exit_code
    except Exception as exc:
        if _debug():
            raise
        if _is_database_error(exc):
            # The database itself failed (locked past the timeout, server gone, disk full):
            # not a bug in Flightdeck, and the driver's first line says what happened.
            err.write(f"error - database: {_first_line(getattr(exc, 'orig', None) or exc)}\n")
            return 1
        err.write(
            f"error - internal error ({type(exc).__name__}: {_first_line(exc)}); "
            "rerun with FLIGHTDECK_DEBUG=1 for the traceback and report it\n"
        )
        return EXIT_INTERNAL


def _first_line(exc: object) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _is_database_error(exc: BaseException) -> bool:
    """An SQLAlchemy OperationalError/InterfaceError (checked by name: no import needed)."""
    return type(exc).__module__.startswith("sqlalchemy") and type(exc).__name__ in (
        "OperationalError",
        "InterfaceError",
        "DisconnectionError",
        "TimeoutError",
    )


def _run_command(argv: Sequence[str], ctx: Context | None) -> int:
    from flightdeck.cli.command import Context
    from flightdeck.cli.params import parse
    from flightdeck.cli.registry import resolve

    ctx = ctx or Context()
    program = ctx.program
    cls, rest = resolve(argv, program)
    if rest and (rest[0] in HELP_WORDS or rest[-1] in HELP_WORDS):
        from flightdeck.cli.help import command_help

        ctx.out.write(command_help(cls, program))
        return 0
    cmd = cls(ctx)
    cmd.parsed = parse(
        rest, cls.args, cls.params, cls.words, program=program.name, named_args=program.named_args
    )
    cmd.check_root()
    try:
        cmd.run(cmd.parsed)
    finally:
        cmd.close()
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":  # `python -m flightdeck.cli.main ...` is `rocks ...`
    sys.argv[0] = "rocks"
    main()
