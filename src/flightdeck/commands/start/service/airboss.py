"""rocks start service airboss"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, Example, Param, Parsed


class Command(Base):
    summary = "Start the Airboss daemon (pid and log files in the state directory)"
    description = """
        Runs 'airboss serve' in the background, its output appended to airboss.log and its pid
        in airboss.pid under the state directory (FLIGHTDECK_HOME, default /var/lib/flightdeck),
        and returns once it listens. Settings come from airboss.toml there (listen, tls_cert,
        tls_key, rate, burst, max_skew...); listen= and the TLS files may be given here too.
        Anything but a loopback address needs TLS. foreground=yes serves in this terminal
        instead, until Ctrl-C. A systemd unit ships with the package (airboss.service).
    """
    params = (
        Param("listen", "host:port", default_text="127.0.0.1:8677, or airboss.toml's"),
        Param("tls-cert", "TLS certificate file (needed beyond loopback)"),
        Param("tls-key", "TLS private key file"),
        Param("config", "settings file", default_text="<state dir>/airboss.toml"),
        Param("foreground", "serve in this terminal instead of as a daemon", BOOL, default=False),
    )
    examples = (
        Example("rocks start service airboss", "Start it on 127.0.0.1:8677."),
        Example(
            "rocks start service airboss listen=0.0.0.0:8677 tls-cert=/etc/pki/fd.crt "
            "tls-key=/etc/pki/fd.key",
            "Reachable from the network, over TLS.",
        ),
    )

    def run(self, p: Parsed) -> None:
        args: list[str] = []
        for name in ("listen", "tls-cert", "tls-key", "config"):
            value = p[name.replace("-", "_")]
            if value is not None:
                args += [f"--{name}", value]
        if p["foreground"]:
            from flightdeck.airboss.main import main

            main(["serve", *args])
            return
        from flightdeck.airboss.daemon import start

        st = start(args)
        self.say(f"airboss started (pid {st.pid}) on {st.url}; log {st.log}")
