"""`python -m flightdeck.services.bootserver`: the boot server process (`rocks start service
dhcp`, through `services.dhcp`, which starts it by this module's path).

Wires the HTTP server of `flightdeck.pxe.bootserver` to the database answers of
`flightdeck.services.provisioning`. The database comes from the environment, as for `rocks`
(FLIGHTDECK_HOME / FLIGHTDECK_DB), which `ip netns exec` passes on unchanged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flightdeck-bootserver", description=__doc__)
    parser.add_argument("--listen", required=True, help="address to listen on (private IP)")
    parser.add_argument("--port", type=int, default=8078, help="TCP port")
    parser.add_argument(
        "--public", help="also listen here (public IP), for virtual frontends' image installs"
    )
    parser.add_argument("--pid-file", type=Path, help="written once the socket listens")
    ns = parser.parse_args(argv)

    from flightdeck.db.engine import open_database
    from flightdeck.errors import FlightdeckError
    from flightdeck.pxe.bootserver import serve
    from flightdeck.services.provisioning import BootAnswers

    try:
        db = open_database()
        serve(ns.listen, ns.port, BootAnswers(db), ns.pid_file, ns.public)
    except FlightdeckError as exc:
        sys.stderr.write(f"error - {exc.message}\n")
        return exc.exit_code
    except OSError as exc:
        sys.stderr.write(f"error - cannot listen on {ns.listen}:{ns.port}: {exc.strerror}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
