"""rocks list host key"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Table
from flightdeck.cli.params import BOOL, HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "List the public keys registered on hosts (one PEM line per row)"
    description = """
        The guide's layout: HOST ID DESCRIPTION PUBLIC KEY, the PEM block one line per row,
        continuation rows with the owner ':'. fingerprint=yes adds each key's SHA-256
        fingerprint (what the Airboss audit log names it by, and what ssh-keygen -lf prints).
    """
    args = HOSTS
    params = (Param("fingerprint", "add the FINGERPRINT and TYPE columns", BOOL, default=False),)
    writes = False
    examples = (
        Example("rocks list host key", "Every registered key."),
        Example("rocks list host key frontend-0-0-0 fingerprint=yes", "One host's keys."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.keys import list_host_keys

        extra = ["fingerprint", "type"] if p["fingerprint"] else []
        t = Table(
            ["host", "id", "description", *extra, "public key"], keep_owner=True, dash_empty=False
        )
        for k in list_host_keys(self.ctx.db, p.args):
            lines = k.pem.strip().splitlines() or [""]
            info = [k.fingerprint, k.kind] if extra else []
            t.add(k.host, k.id, k.description, *info, lines[0])
            for line in lines[1:]:
                t.add("", None, None, *([None] * len(extra)), line)
        self.emit(t)
