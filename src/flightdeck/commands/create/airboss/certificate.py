"""rocks create airboss certificate"""

from __future__ import annotations

from pathlib import Path

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, INT, Example, Param, Parsed
from flightdeck.errors import UserError


def _words(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


class Command(Base):
    summary = (
        "Make the site CA and a TLS certificate so the Airboss can listen on the public address"
    )
    description = """
        Makes a site CA in dir (unless ca.crt and ca.key are there already: then they sign)
        and airboss.crt/airboss.key for this frontend's public name and address (or the given
        names= and ips=). With frontends=yes (default) virtual frontends are told to reach the
        Airboss at https://<public IP>:<port> and to trust the CA (attributes airboss_url and
        airboss_ca; they get them at their next install), so their owners need no ssh tunnel.
        Start the Airboss there with the printed command. Existing certificate files are never
        overwritten.
    """
    params = (
        Param("dir", "where the files go", default="/etc/pki/flightdeck"),
        Param("names", "comma-separated DNS names", default_text="the public name"),
        Param("ips", "comma-separated IP addresses", default_text="the public address"),
        Param("port", "the Airboss's port", INT, default=8677),
        Param("frontends", "tell virtual frontends to use it", BOOL, default=True),
    )
    examples = (
        Example("rocks create airboss certificate", "A CA and a certificate for this frontend."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.airboss_tls import create_airboss_certificate

        if not p["dir"].startswith("/"):
            raise UserError(f"dir={p['dir']}: give an absolute path")
        done = create_airboss_certificate(
            self.ctx.db,
            Path(p["dir"]),
            _words(p["names"]),
            _words(p["ips"]),
            p["port"],
            p["frontends"],
        )
        i = done.issued
        self.say(f"{'made' if i.new_ca else 'used'} the site CA {i.ca_cert} (key {i.ca_key})")
        self.say(f"made {i.cert} (key {i.key}) for {', '.join(done.names + done.addresses)}")
        if p["frontends"]:
            self.say(
                f"virtual frontends will reach the Airboss at {done.url} (at their next install)"
            )
        self.say(
            f"start it there: rocks start service airboss listen={done.addresses[0]}:{p['port']} "
            f"tls-cert={i.cert} tls-key={i.key}"
        )
