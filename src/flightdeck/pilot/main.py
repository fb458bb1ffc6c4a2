"""`pilot`: the owner's client on a laptop, as the guide's pilot.py, on the same client library.

    pilot set host power host=<MAC|name> action=on|off|install|reset|shutdown [key=] [airboss=]
    pilot set cluster power host=<frontend MAC|name> action=on|off|install [key=] [airboss=]
    pilot list host macs host=<frontend MAC|name> [status=yes] [key=] [airboss=]
    pilot list host isos host=<MAC|name> [key=] [airboss=]
    pilot set host cdrom host=<MAC|name> cdrom=<image>|none [key=] [airboss=]
    pilot open host console host=<MAC|name> [console=vnc|serial] [viewer=<program>|none] [port=]
                            [web=yes]  (print a one-time link for a browser instead)
    pilot create keys key=<file> [passphrase=yes] [type=ed25519|rsa] [bits=3072]

Common parameters: `key=` the private key (default ~/.ssh/id_ed25519, then ~/.ssh/id_rsa);
`airboss=` where the Airboss is (default localhost:8677, the end of
`ssh -L 8677:localhost:8677 <physical frontend>`; `https://host:port` for a TLS Airboss, with
`ca=<file>` the site CA). As the original pilot, `host=` is sent as given: there is no database
here to turn a name into a MAC.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from flightdeck.errors import FlightdeckError, UsageError, UserError

USAGE = (__doc__ or "").split("\n\n")[1]

#: words -> (required parameters, optional parameters)
COMMANDS: dict[str, tuple[set[str], set[str]]] = {
    "set host power": ({"host", "action"}, {"key", "airboss", "ca"}),
    "set cluster power": ({"host", "action"}, {"key", "airboss", "ca"}),
    "list host macs": ({"host"}, {"key", "airboss", "ca", "status", "output-header"}),
    "list host isos": ({"host"}, {"key", "airboss", "ca"}),
    "set host cdrom": ({"host", "cdrom"}, {"key", "airboss", "ca"}),
    "open host console": ({"host"}, {"key", "airboss", "ca", "console", "viewer", "port", "web"}),
    "create keys": ({"key"}, {"passphrase", "type", "bits"}),
}


def parse(argv: Sequence[str]) -> tuple[str, dict[str, str]]:
    words: list[str] = []
    params: dict[str, str] = {}
    for token in argv:
        name, eq, value = token.partition("=")
        if eq:
            name = name.strip().lower()
            if name in params:
                raise UsageError(f"parameter {name!r} given twice")
            params[name] = value
        elif params:
            raise UsageError(f"{token!r}: the command words come first, then name=value")
        else:
            words.append(token.lower())
    command = " ".join(words)
    if command not in COMMANDS:
        raise UsageError(f"unknown command {command!r}\n{USAGE}" if command else USAGE)
    required, optional = COMMANDS[command]
    for name in sorted(required - set(params)):
        raise UsageError(f"'pilot {command}' needs {name}=")
    for name in sorted(set(params) - required - optional):
        raise UsageError(f"unknown parameter {name!r} for 'pilot {command}'")
    return command, params


def _client(params: dict[str, str]):  # type: ignore[no-untyped-def]
    from flightdeck.pilot.client import AirbossClient
    from flightdeck.pilot.keyfile import find_key, load_key

    key = load_key(find_key(params.get("key")))
    return AirbossClient(key, params.get("airboss"), cafile=params.get("ca"))


def _bool(value: str | None, name: str, default: bool) -> bool:
    from flightdeck.cli.params import to_bool

    return default if value is None else to_bool(value, name)


def run(argv: Sequence[str], out: Callable[[str], None], err: Callable[[str], None]) -> int:
    from flightdeck.cli.output import render
    from flightdeck.pilot import commands as c

    command, params = parse(argv)
    if command == "create keys":
        from flightdeck.cli.params import to_int
        from flightdeck.pilot.keyfile import create_key_file

        out(
            create_key_file(
                params["key"],
                passphrase=_bool(params.get("passphrase"), "passphrase", True),
                kind=params.get("type", "ed25519"),
                bits=to_int(params.get("bits", "3072"), "bits"),
            ).rstrip("\n")
        )
        return 0
    client = _client(params)
    host = params["host"]
    if command in ("set host power", "set cluster power"):
        action = c.check_action(params["action"])
        results = (
            c.power_many(client, [host], action)
            if command == "set host power"
            else c.cluster_power(client, host, action)
        )
        c.report(results, out, err)
    elif command == "list host macs":
        status = _bool(params.get("status"), "status", True)  # pilot.py's default
        header = _bool(params.get("output-header"), "output-header", True)
        text = render(c.macs_table(client.macs(host, status), status), header=header)
        out(text.rstrip("\n"))
    elif command == "list host isos":
        for name in client.isos(host):
            out(name)
    elif command == "open host console":
        from flightdeck.cli.params import to_int
        from flightdeck.pilot.console import open_console

        if _bool(params.get("web"), "web", False):
            from flightdeck.pilot.webconsole import print_web_console

            return print_web_console(client, host, params.get("console", "vnc"), out, err)
        return open_console(
            client,
            host,
            kind=params.get("console", "vnc"),
            viewer=params.get("viewer"),
            port=to_int(params.get("port", "0"), "port"),
            say=out,
            warn=err,
        )
    elif command == "set host cdrom":
        answer = client.cdrom(host, params["cdrom"])
        out(f"{answer['host']}: cdrom {answer['cdrom'] or 'none'} (from its next start)")
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("help", "-h", "--help"):
        sys.stdout.write(USAGE + "\n")
        sys.exit(0)

    def out(text: str) -> None:
        sys.stdout.write(text + "\n")

    def err(text: str) -> None:
        sys.stderr.write(text + "\n")

    try:
        code = run(args, out, err)
    except UsageError as exc:
        err(f"pilot: {exc.message}")
        code = exc.exit_code
    except (FlightdeckError, UserError) as exc:
        err(f"error - {exc.message}")
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
