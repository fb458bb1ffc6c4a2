"""rocks create keys"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, INT, Example, Param, Parsed


class Command(Base):
    summary = "Make a private key for the Airboss (0600) and print its public key"
    description = """
        Writes a new private key to the file key= names, readable by you only (mode 0600),
        and prints its public key as a PEM block: give that to the administrator, who registers
        it with 'rocks add host key'. The key is encrypted with a pass phrase, asked twice on
        the terminal, unless passphrase=no. An existing file is never overwritten. Ed25519 by
        default; type=rsa makes an RSA key of bits= bits (2048 or more; 3072 by default).
    """
    params = (
        Param("key", "file to write the private key to", required=True),
        Param("passphrase", "encrypt the key with a pass phrase (asked twice)", BOOL, default=True),
        Param("type", "ed25519 or rsa", default="ed25519"),
        Param("bits", "RSA key size (2048 or more)", INT, default=3072),
    )
    writes = False
    owner = True
    examples = (
        Example("rocks create keys key=private.key", "An Ed25519 key with a pass phrase."),
        Example(
            "rocks create keys key=private.key passphrase=no",
            "A key without pass phrase (for scripts and batch-scheduler hooks).",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.pilot.keyfile import create_key_file

        pem = create_key_file(p["key"], passphrase=p["passphrase"], kind=p["type"], bits=p["bits"])
        self.ctx.out.write(pem)
