"""The `airboss` command: `airboss serve` (foreground) and `airboss openapi`.

    airboss serve [--listen 127.0.0.1:8677] [--tls-cert FILE --tls-key FILE] [--config FILE]
                  [--max-skew S] [--rate R] [--burst N] [--set NAME=VALUE]...
                  [--pid-file FILE] [--debug]
    airboss openapi [--write]  print the OpenAPI document (--write: to docs/openapi.json)

`rocks start service airboss` runs `airboss serve` as a daemon; a systemd unit is installed
with the package (`flightdeck/airboss/airboss.service`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from flightdeck.errors import FlightdeckError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airboss", description="The Flightdeck Airboss: owners' signed VM requests."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve in the foreground until SIGTERM")
    serve.add_argument("--listen", help="host:port (default 127.0.0.1:8677)")
    serve.add_argument("--tls-cert", help="TLS certificate (PEM); needed beyond loopback")
    serve.add_argument("--tls-key", help="TLS private key (PEM)")
    serve.add_argument("--config", help="settings file (default <state dir>/airboss.toml)")
    serve.add_argument("--max-skew", type=int, help="clock skew tolerated, seconds (default 30)")
    serve.add_argument("--rate", type=float, help="requests per second per key (default 10)")
    serve.add_argument("--burst", type=int, help="requests at once per key (default 30)")
    serve.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="any setting of airboss.toml, e.g. --set head_timeout=5 (repeatable)",
    )  # fmt: skip
    serve.add_argument("--database", help="database URL (default: the site's)")
    serve.add_argument("--pid-file", type=Path, help="write the pid here once listening")
    serve.add_argument("--debug", action="store_true", help="log at DEBUG level")
    doc = sub.add_parser("openapi", help="print the OpenAPI document")
    doc.add_argument(
        "--write", action="store_true", help="rewrite the committed docs/openapi.json instead"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.command == "openapi":
            from flightdeck.api import openapi

            if args.write:
                openapi.COMMITTED.write_text(openapi.render(), encoding="utf-8")
            else:
                sys.stdout.write(openapi.render())
            return
        from flightdeck.airboss import config
        from flightdeck.airboss.server import serve

        options = {
            "listen": args.listen,
            "tls_cert": args.tls_cert,
            "tls_key": args.tls_key,
            "max_skew": args.max_skew,
            "rate": args.rate,
            "burst": args.burst,
        }
        # --set NAME=VALUE, then the named options given (`--rate 5 --set rate=9` is 5).
        overrides = config.parse_assignments(args.set)
        overrides.update({k: v for k, v in options.items() if v is not None})
        settings = config.load(args.config, **overrides)
        serve(
            settings,
            database_url=args.database,
            pid_file=args.pid_file,
            log_level=logging.DEBUG if args.debug else logging.INFO,
        )
    except FlightdeckError as exc:
        sys.stderr.write(f"airboss: error - {exc.message}\n")
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        from flightdeck.errors import missing_extra

        extra = missing_extra(exc)
        if extra is None:
            raise
        sys.stderr.write(f"airboss: error - {extra.message}\n")
        sys.exit(extra.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
