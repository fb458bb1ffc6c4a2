"""rocks list host key"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import BOOL, HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "List the public keys registered on hosts (one PEM line per row)"
    description = """
        The guide's layout: HOST ID PUBLIC KEY, the PEM block one line per row, continuation
        rows with the owner ':'; a key's description comes last, when a key has one (or ask
        for it with output-col=host,id,description). fingerprint=yes adds each key's SHA-256
        fingerprint (what the Airboss audit log names it by, and what ssh-keygen -lf prints).
    """
    args = HOSTS
    params = (Param("fingerprint", "add the FINGERPRINT and TYPE columns", BOOL, default=False),)
    writes = False
    examples = (
        Example("rocks list host key", "Every registered key."),
        Example("rocks list host key frontend-0-0-0 fingerprint=yes", "One host's keys."),
    )
    records = "one per key"
    fields = (
        Field("host", "the host the key is registered on"),
        Field("id", "the key's id (what remove host key id= takes)", "integer"),
        Field("fingerprint", "SHA256:<base64>, as ssh-keygen -lf prints", when="fingerprint"),
        Field("type", "the key type (rsa-2048, ed25519...)", when="fingerprint"),
        Field(
            "public_key",
            "the PEM public key, one string with its newlines",
            column="public key",
            continued=True,
        ),
        Field("description", "what add host key description= said", nullable=True, hide_empty=True),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_host_keys

        t = self.table(keep_owner=True, dash_empty=False)
        for k in list_host_keys(self.ctx.db, p.args, kinds=p["fingerprint"]):
            info = [k.fingerprint, k.kind] if p["fingerprint"] else []
            t.add(k.host, k.id, *info, k.pem.strip() + "\n", k.description)
        self.emit(t)
