"""`rocks`: parse the command line, run one command, report errors as one line."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from flightdeck import config
from flightdeck.cli.command import Context
from flightdeck.errors import FlightdeckError

HELP_WORDS = ("help", "--help", "-h")
#: Exit status for a bug (not a user error): EX_SOFTWARE.
EXIT_INTERNAL = 70


def run(argv: Sequence[str], ctx: Context | None = None) -> int:
    """Run one command; returns the exit status. Used by `main` and by the tests."""
    from flightdeck.cli import help as helptext
    from flightdeck.cli import registry
    from flightdeck.cli.params import parse

    ctx = ctx or Context()
    try:
        if not argv or argv[0] in HELP_WORDS:
            prefix = " ".join(argv[1:])
            ctx.out.write(helptext.command_list(list(registry.iter_commands()), prefix))
            return 0
        cls, rest = registry.resolve(argv)
        if rest and (rest[0] in HELP_WORDS or rest[-1] in HELP_WORDS):
            ctx.out.write(helptext.command_help(cls))
            return 0
        cmd = cls(ctx)
        cmd.parsed = parse(rest, cls.args, cls.params, cls.words)
        cmd.check_root()
        cmd.run(cmd.parsed)
        return 0
    except FlightdeckError as exc:
        ctx.err.write(f"error - {exc.message}\n")
        if config.debug():
            raise
        return exc.exit_code
    except KeyboardInterrupt:
        ctx.err.write("error - interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: say so in one line unless asked for the traceback
        if config.debug():
            raise
        ctx.err.write(
            f"error - internal error ({type(exc).__name__}: {exc}); "
            "rerun with FLIGHTDECK_DEBUG=1 for the traceback and report it\n"
        )
        return EXIT_INTERNAL


def main() -> None:
    sys.exit(run(sys.argv[1:]))
