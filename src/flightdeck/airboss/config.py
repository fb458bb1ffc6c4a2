"""The Airboss's settings: defaults, the optional TOML file, the command-line overrides.

The file is `<state dir>/airboss.toml` (`FLIGHTDECK_HOME`, default `/var/lib/flightdeck`) unless
`--config` names another; every key is optional:

    listen = "127.0.0.1:8677"     # anything but loopback needs tls_cert and tls_key
    tls_cert = "/etc/pki/flightdeck/airboss.crt"
    tls_key = "/etc/pki/flightdeck/airboss.key"
    max_skew = 30                 # seconds of clock difference tolerated
    rate = 10.0                   # requests per second per key, on average
    burst = 30                    # ... and at most this many at once
    max_body = 16384              # bytes
    max_header_bytes = 16384      # bytes, all request headers together
    max_headers = 64              # header lines
    workers = 8                   # threads verifying signatures and reading the database
    gate_on_loop = true           # SQLite: a request's first transaction on the event loop
                                  # when the write lock is free (else in a worker thread)
    libvirt_workers = 16          # threads talking to libvirt, all containers together
    per_container = 4             # libvirt operations at once on one container
    action_timeout = 300          # seconds before a libvirt operation is reported as timed out
    console_sessions = 4          # console sessions (VNC or serial) open at once per key
    console_idle = 1800           # seconds without a byte either way before a console closes
    console_max = 43200           # seconds a console session may last at most (12 h)
    console_recheck = 5           # seconds between checks that a session's key still holds
    head_timeout = 10             # seconds to send a whole request (head and body)
    max_connections = 1024        # client connections open at once (bounded by the fd limit)
    max_client_connections = 64   # ... from one client address
    client_rate = 50.0            # requests per second per client address, before verification
    client_burst = 100            # ... and at most this many at once
    audit_refusals = 20           # unverified refusals audited one by one per address a minute
    dashboard_idle = 900          # seconds without a click before a dashboard session ends
    dashboard_max = 28800         # seconds a dashboard session lasts at most (8 h)
    dashboard_sessions = 8        # dashboard sessions open at once per key
    dashboard_poll = 2            # seconds between two looks at the nodes' states for a page
    web_dir = "/srv/flightdeck/web"  # the browser console's files (default: the source tree's web/)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightdeck import config as site
from flightdeck.crypto.httpsig import MAX_LIFETIME
from flightdeck.errors import UserError

DEFAULT_PORT = 8677
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
CONFIG_NAME = "airboss.toml"


@dataclass(frozen=True)
class Settings:
    listen: str = DEFAULT_LISTEN
    tls_cert: str | None = None
    tls_key: str | None = None
    max_skew: int = 30
    rate: float = 10.0
    burst: int = 30
    max_body: int = 16 * 1024
    max_header_bytes: int = 16 * 1024
    max_headers: int = 64
    workers: int = 8
    #: On SQLite, run a request's gate transaction on the event loop when the write lock is
    #: free at once (no thread hand-off: ~0.5 ms of CPU less a request); else, and always on
    #: PostgreSQL, in a database thread.
    gate_on_loop: bool = True
    libvirt_workers: int = 16
    per_container: int = 4
    action_timeout: float = 300.0
    #: How often expired nonces are deleted, in seconds.
    purge_interval: float = 60.0
    #: Console sessions (VNC or serial, WebSocket) one key may hold open at once.
    console_sessions: int = 4
    #: Seconds without a byte either way after which a console session is closed.
    console_idle: float = 1800.0
    #: Seconds a console session may last at most, however busy (then closed, 4410).
    console_max: float = 43200.0
    #: Seconds between checks that an open console's key (or token) still holds.
    console_recheck: float = 5.0
    #: Seconds a client has to send a whole request, from its connection's start or the end of
    #: the previous answer (`airboss.connections`).
    head_timeout: float = 10.0
    #: Client connections open at once, and from one client address.
    max_connections: int = 1024
    max_client_connections: int = 64
    #: Requests per second (and at once) from one client address, counted before any
    #: signature is verified: junk from one address cannot keep the Airboss busy.
    client_rate: float = 50.0
    client_burst: int = 100
    #: Refusals before verification (no or a bad signature, too fast) audited one row each per
    #: client address and minute; beyond that they are counted, and summed up in one row.
    audit_refusals: int = 20
    #: Seconds without a request from its page (its live updates do not count) after which a
    #: dashboard session ends, and seconds it lasts at most however busy.
    dashboard_idle: float = 900.0
    dashboard_max: float = 28800.0
    #: Dashboard sessions one key may hold at once (the oldest ends for a new one).
    dashboard_sessions: int = 8
    #: Seconds between two readings of the nodes' states for an open dashboard (an action
    #: taken on the page is shown at once, without waiting for the next reading).
    dashboard_poll: float = 2.0
    #: The browser console's page and its npm packages (`airboss.web`); None: the source tree's.
    web_dir: str | None = None

    def __post_init__(self) -> None:
        parse_listen(self.listen)
        if not 0 <= self.max_skew <= MAX_LIFETIME:
            raise UserError(f"max_skew={self.max_skew}: give 0 to {MAX_LIFETIME} seconds")
        if not isinstance(self.gate_on_loop, bool):
            raise UserError(f"gate_on_loop={self.gate_on_loop!r}: give true or false")
        if self.rate <= 0 or self.burst < 1:
            raise UserError("rate must be above 0 and burst at least 1")
        for name in (
            "max_body",
            "max_header_bytes",
            "max_headers",
            "workers",
            "libvirt_workers",
            "per_container",
            "console_sessions",
            "max_connections",
            "max_client_connections",
            "client_burst",
            "dashboard_sessions",
        ):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1")
        for name in (
            "console_idle",
            "console_max",
            "console_recheck",
            "head_timeout",
            "client_rate",
            "dashboard_idle",
            "dashboard_max",
            "dashboard_poll",
        ):
            if getattr(self, name) <= 0:
                raise UserError(f"{name}={getattr(self, name)}: give a number above 0")
        if self.audit_refusals < 0:
            raise UserError(f"audit_refusals={self.audit_refusals}: give 0 or more")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise UserError("give both tls_cert and tls_key, or neither")

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets) -> (host, port); port 0 asks for a free one."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UserError(f"listen={text!r}: give host:port, e.g. {DEFAULT_LISTEN}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport(settings: Settings) -> None:
    """Refuse to listen beyond loopback without TLS (requests are signed, answers are not)."""
    if settings.tls:
        for name in ("tls_cert", "tls_key"):
            path = getattr(settings, name)
            if not os.access(path, os.R_OK):
                raise UserError(f"{name}={path} cannot be read")
        return
    if not is_loopback(settings.host):
        raise UserError(
            f"refusing to listen on {settings.listen} without TLS: give --tls-cert and "
            "--tls-key (a certificate of the site CA), or listen on 127.0.0.1 and let owners "
            "reach it through `ssh -L 8677:localhost:8677`"
        )


def config_path(given: str | None = None) -> Path:
    return Path(given) if given else site.state_dir() / CONFIG_NAME


_FLAGS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """`NAME=VALUE` overrides (`airboss serve --set`), each converted to its setting's type."""
    known = {f.name: f for f in dataclasses.fields(Settings)}
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            raise UserError(
                f"--set {item!r}: give NAME=VALUE with a setting's name (known: {', '.join(known)})"
            )
        kind = str(known[name].type)
        if kind == "bool":
            flag = text.strip().lower()
            if flag not in _FLAGS:
                raise UserError(f"--set {item!r}: {name} takes true or false")
            out[name] = _FLAGS[flag]
            continue
        try:
            out[name] = int(text) if kind == "int" else float(text) if kind == "float" else text
        except ValueError:
            raise UserError(f"--set {item!r}: {name} takes a number") from None
    return out


def load(path: str | None = None, **overrides: Any) -> Settings:
    """Settings from the file (if any) with `overrides` (None values ignored) on top."""
    file = config_path(path)
    values: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read the Airboss configuration {file}: {exc}") from None
        values = dict(data.get("airboss", data))
    elif path:
        raise UserError(f"the Airboss configuration {file} does not exist")
    known = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UserError(f"{file}: unknown setting {unknown[0]!r} (known: {', '.join(known)})")
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except TypeError as exc:
        raise UserError(f"Airboss settings: {exc}") from None
