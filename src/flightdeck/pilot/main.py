"""`pilot`: the owner's client on a laptop, as the guide's pilot.py: `rocks`'s owner commands.

`pilot` is the `rocks` dispatcher (`flightdeck.cli.main`) over the owner commands only
(`cli.program.PILOT`): the same modules, grammar, help and errors, without a database:

    pilot set host power host=<MAC|name> action=on|off|install|reset|shutdown [key=] [airboss=]
    pilot set cluster power host=<frontend MAC|name> action=on|off|install [key=] [airboss=]
    pilot list host macs host=<frontend MAC|name> [status=no] [key=] [airboss=]
    pilot list host isos host=<MAC|name> [key=] [airboss=]
    pilot set host cdrom host=<MAC|name> cdrom=<image>|none [key=] [airboss=]
    pilot open host console host=<MAC|name> [console=vnc|serial] [viewer=] [port=] [web=yes]
    pilot create keys key=<file> [passphrase=yes] [type=ed25519|rsa] [bits=3072]

`pilot help` lists them and `pilot <command> help` explains one. As the original pilot, `host=`
(or a bare host) is sent as given: there is no database here to turn a name into a MAC.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from flightdeck.cli.command import Context
from flightdeck.cli.main import run
from flightdeck.cli.params import Parsed
from flightdeck.cli.program import PILOT


def parse(argv: Sequence[str]) -> tuple[str, Parsed]:
    """The command's words and its parsed parameters (what `pilot` would run)."""
    from flightdeck.cli.params import parse as parse_tokens
    from flightdeck.cli.registry import resolve

    cls, rest = resolve(argv, PILOT)
    parsed = parse_tokens(
        rest, cls.args, cls.params, cls.words, program=PILOT.name, named_args=True
    )
    return cls.words, parsed


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    sys.exit(run(args, Context(program=PILOT)))
