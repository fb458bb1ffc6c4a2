"""rocks add host key"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "Register a public key on a virtual frontend or a VM for the Airboss"
    description = """
        A key on a virtual frontend lets its holder power, install and list the frontend and
        every VM of its cluster through the Airboss; a key on any other VM, that VM only. Keys
        on other hosts would allow nothing and are refused. key= is a file, or the key itself:
        a PEM public key (SPKI or PKCS#1) or an OpenSSH line (ssh-ed25519, ssh-rsa). Ed25519
        and RSA of 2048 bits or more only; the same key twice on a host is refused.
    """
    args = ONE_HOST
    params = (
        Param("key", "public key file, or the key text itself", required=True),
        Param("description", "free text (who holds the key)"),
    )
    examples = (
        Example(
            "rocks add host key frontend-0-0-0 key=public.key",
            "The owner of the cluster of frontend-0-0-0 may now control its VMs.",
        ),
        Example(
            'rocks add host key hosted-vm-0-0-0 key="$(cat ~alice/.ssh/id_ed25519.pub)" '
            "description=alice",
            "An OpenSSH key, given as text, on one VM.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.keys import add_host_key

        add_host_key(self.ctx.db, p.args[0], p["key"], p["description"])
