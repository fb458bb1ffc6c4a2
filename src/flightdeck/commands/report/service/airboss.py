"""rocks report service airboss"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "Say whether the Airboss daemon runs, where it listens and where it logs"
    description = """
        Exits with status 3 when it does not run (as an init script's status). When it runs,
        also prints the public key that signs the audit chains' heads (what owners pin with
        pilot verify audit airboss-key=<file>) and its fingerprint.
    """
    writes = False
    examples = (Example("rocks report service airboss", "Is it running?"),)

    def run(self, p: Parsed) -> None:
        from flightdeck.airboss.daemon import status
        from flightdeck.process.daemon import NotRunning

        st = status()
        if not st.running:
            raise NotRunning(f"airboss is not running (log {st.log})")
        self.say(f"airboss is running (pid {st.pid}) on {st.url}; log {st.log}")
        from flightdeck.crypto.keys import fingerprint
        from flightdeck.services.airboss import chain

        key = chain.airboss_key()
        self.say(f"audit chain heads are signed by {fingerprint(key.public_key())}:")
        self.ctx.out.write(chain.public_pem(key))
