"""`rocks create airboss certificate`: TLS for the Airboss on the public address, for the site.

Issues (or reuses) the site CA and a certificate for this frontend's public name and address
(`flightdeck.crypto.x509`), then tells virtual frontends about it: global attributes
`airboss_url` (`https://<public IP>:<port>`) and `airboss_ca` (the CA certificate), which their
identity carries at their next install (`/etc/flightdeck/client.env`, the CA as
`/etc/flightdeck/airboss-ca.pem`), so their owners reach the Airboss without a tunnel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flightdeck.crypto.x509 import Issued, issue
from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.errors import NotFound, UserError
from flightdeck.services.base import reading, writing

DEFAULT_DIR = Path("/etc/pki/flightdeck")


@dataclass(frozen=True)
class Certified:
    issued: Issued
    url: str
    names: list[str]
    addresses: list[str]


def create_airboss_certificate(
    db: Database,
    directory: Path | None,
    names: list[str],
    addresses: list[str],
    port: int = 8677,
    frontends: bool = True,
) -> Certified:
    if not 1 <= port <= 65535:
        raise UserError(f"port={port} is not a TCP port (1-65535)")
    with reading(db) as s:
        public_name = attrs.global_value(s, "Kickstart_PublicHostname")
        public_ip = attrs.global_value(s, "Kickstart_PublicAddress")
    names = names or ([public_name] if public_name else [])
    addresses = addresses or ([public_ip] if public_ip else [])
    if not names or not addresses:
        raise NotFound("this frontend has no public name or address: run rocks init frontend")
    done = issue(directory or DEFAULT_DIR, names, addresses)
    url = f"https://{addresses[0]}:{port}"
    if frontends:
        with writing(db) as s:
            attrs.set_global(s, "airboss_url", url)
            attrs.set_global(s, "airboss_ca", str(done.ca_cert))
    return Certified(done, url, names, addresses)
