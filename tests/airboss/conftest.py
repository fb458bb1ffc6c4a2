"""A site with two virtual clusters and a plain VM, their owners' keys, and ways to ask the Airboss.

* `site`: the guide's espresso with its containers on libvirt's test driver (one `test:///`
  file each, so power operations really run), cluster A (frontend + 2 computes), cluster B
  (frontend + 1 compute), a plain VM, and four Ed25519 keys: alice on A's frontend, bob on B's,
  carol on the plain VM, mallory registered nowhere.
* `site.app()`: the Airboss ASGI application in this process, called without a network
  (`AsgiClient`), so a test controls every byte of a request: raw path, query, headers, body.
* `site.server()`: the real thing, `airboss serve` in its own process on 127.0.0.1 and a free
  port, for the tests that need sockets (flood, slow clients, SIGTERM, TLS, Schemathesis).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airboss_process import Server, start_airboss

pytest.importorskip("libvirt")
pytest.importorskip("starlette")

from flightdeck.crypto import keys as ck
from flightdeck.crypto.httpsig import sign_request

#: The physical frontend's and the containers' MACs (not VMs: never controllable).
PHYSICAL_MAC = "52:54:00:fd:00:aa"
CONTAINER_MAC = "52:54:00:fd:00:01"


def _node(tmp_path: Path, name: str) -> str:
    node = tmp_path / f"{name}.xml"
    node.write_text("<node/>\n")
    return f"test://{node}"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        data = self.json
        return data.get("error") if isinstance(data, dict) else None


class AsgiClient:
    """Calls an ASGI app directly: exact raw path, query, headers and body, no sockets."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    async def arequest(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        client: tuple[str, int] = ("127.0.0.1", 50000),
        chunks: Sequence[bytes] | None = None,
    ) -> Response:
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in items]
        if body and not any(k == b"content-length" for k, _ in raw_headers):
            raw_headers.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "root_path": "",
            "headers": raw_headers,
            "client": client,
            "server": ("127.0.0.1", 8677),
        }
        parts = list(chunks) if chunks is not None else [body]
        messages = [
            {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
            for i, part in enumerate(parts)
        ]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        hdrs = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return Response(start["status"], hdrs, out)

    def request(self, method: str, path: str, **kw: Any) -> Response:
        return self.loop.run_until_complete(self.arequest(method, path, **kw))

    def close(self) -> None:
        airboss = getattr(getattr(self.app, "state", None), "airboss", None)
        if airboss is not None:
            airboss.db_pool.shutdown(wait=True)
            airboss.virt_pool.shutdown(wait=True)
            airboss.close()  # and the event loop's own database connection
        self.loop.close()


@dataclass
class Owner:
    name: str
    key: ck.PrivateKey

    @property
    def keyid(self) -> str:
        return ck.fingerprint(self.key.public_key())

    @property
    def public_pem(self) -> str:
        return ck.public_key_to_pem(self.key.public_key())

    def sign(self, method: str, path: str, query: str = "", body: bytes = b"", **kw: Any
             ) -> dict[str, str]:
        return sign_request(method, path, query, body, self.key, **kw)


@dataclass
class Site:
    rocks: Any
    url: str
    tmp: Path
    owners: dict[str, Owner]
    #: Per node: its MACs (the cluster VLAN's first), by host name.
    macs: dict[str, list[str]]
    cluster_a: list[str]
    cluster_b: list[str]
    plain: str
    iso_dir: Path
    physical_mac: str = PHYSICAL_MAC
    container_mac: str = CONTAINER_MAC
    clients: list[AsgiClient] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    _db: Any = None

    @property
    def db(self) -> Any:
        if self._db is None:
            from flightdeck.db.engine import open_database

            self._db = open_database(self.url)
        return self._db

    def mac(self, host: str) -> str:
        return self.macs[host][0]

    def app(self, clock: Any = None, **settings: Any) -> AsgiClient:
        """The Airboss in this process (`clock`: its time, when a test moves it)."""
        import time

        from flightdeck.airboss.app import create_app
        from flightdeck.airboss.config import Settings

        settings.setdefault("rate", 1000.0)
        settings.setdefault("burst", 1000)
        settings.setdefault("client_rate", 100000.0)
        settings.setdefault("client_burst", 100000)
        client = AsgiClient(create_app(self.db, Settings(**settings), clock or time.time))
        self.clients.append(client)
        return client

    def server(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 30,
               prefix: Sequence[str] = ()) -> Server:
        """`airboss serve` in its own process on a free loopback port (`prefix`: run under)."""
        srv = start_airboss(
            self.tmp, self.url, *args, name=f"airboss-{len(self.servers)}", timeout=timeout,
            env={**os.environ, "FLIGHTDECK_HOME": str(self.tmp), **(env or {})}, prefix=prefix,
        )  # fmt: skip
        self.servers.append(srv)
        return srv

    def audit(self, n: int = 1) -> list[Any]:
        from flightdeck.services.airboss.audit import list_audit

        return list_audit(self.db, n)

    def remove_key(self, owner: Owner, host: str) -> None:
        """`rocks remove host key` of `owner`'s key on `host`, by its id as rocks lists it."""
        listed = json.loads(self.rocks.ok("list", "host", "key", host, "fingerprint=yes",
                                          "output-format=json"))
        (row,) = [r for r in listed if r["fingerprint"] == owner.keyid]
        self.rocks.ok("remove", "host", "key", host, f"id={row['id']}")

    def last(self) -> Any:
        return self.audit(1)[-1]

    def close(self) -> None:
        for c in self.clients:
            c.close()
        for s in self.servers:
            s.stop()
        if self._db is not None:
            self._db.dispose()


def _nodes(db: Any, frontend: str) -> list[tuple[list[str], str]]:
    from flightdeck.services.clusters import cluster_macs

    return cluster_macs(db, frontend)


@pytest.fixture
def site(espresso: Any, tmp_path: Path) -> Iterator[Site]:
    rocks = espresso
    rocks.ok("set", "host", "interface", "frontend-0-0", "eth0", f"mac={PHYSICAL_MAC}")
    for host in ("frontend-0-0", "vm-container-0-0", "vm-container-0-1"):
        rocks.ok("set", "host", "attr", host, "libvirt_uri", _node(tmp_path, host))
    rocks.ok("set", "attr", "kvm_domain_type", "qemu")
    rocks.ok("set", "attr", "kvm_disk_dir", str(tmp_path / "disks"))
    rocks.ok("set", "attr", "kvm_connect_timeout", "5")
    iso_dir = tmp_path / "isos"
    iso_dir.mkdir()
    rocks.ok("set", "attr", "kvm_iso_dir", str(iso_dir))
    rocks.ok("set", "bootaction", "install vm frontend", "kernel=/boot/fd/vmlinuz",
             "ramdisk=/boot/fd/initrd.gz")
    small = ("disk-per-compute=1", "disk-per-frontend=1", "mem-per-compute=256",
             "mem-per-frontend=256")
    rocks.ok("add", "cluster", "137.110.119.118", "2", *small)
    rocks.ok("add", "cluster", "137.110.119.119", "1", *small)
    # The original's installer (a kernel of the site's choice), not the frontend image.
    rocks.ok("set", "host", "installaction", "frontend-0-0-0", "frontend-0-0-1",
             "action=install vm frontend")
    rocks.ok("add", "host", "vm", "vm-container-0-1", "membership=Compute", "name=plain-0",
             "mem=256", "disksize=1")

    owners = {n: Owner(n, ck.generate_private_key()) for n in ("alice", "bob", "carol", "mallory")}
    from flightdeck.db.engine import open_database
    from flightdeck.services.vms import list_host_vms

    db = open_database(rocks.url)
    try:
        a = _nodes(db, "frontend-0-0-0")
        b = _nodes(db, "frontend-0-0-1")
        macs = {name: m for m, name in [*a, *b]}
        for row in list_host_vms(db, []):
            macs.setdefault(row.name, row.macs)
    finally:
        db.dispose()
    for owner, host in (("alice", "frontend-0-0-0"), ("bob", "frontend-0-0-1"),
                        ("carol", "plain-0")):
        path = tmp_path / f"{owner}.pub"
        path.write_text(owners[owner].public_pem)
        rocks.ok("add", "host", "key", host, f"key={path}", f"description={owner}")
    it = Site(
        rocks=rocks,
        url=rocks.url,
        tmp=tmp_path,
        owners=owners,
        macs=macs,
        cluster_a=[name for _m, name in a],
        cluster_b=[name for _m, name in b],
        plain="plain-0",
        iso_dir=iso_dir,
    )
    try:
        yield it
    finally:
        it.close()


@pytest.fixture
def alice(site: Site) -> Owner:
    return site.owners["alice"]


@pytest.fixture
def bob(site: Site) -> Owner:
    return site.owners["bob"]


@pytest.fixture
def carol(site: Site) -> Owner:
    return site.owners["carol"]


@pytest.fixture
def mallory(site: Site) -> Owner:
    return site.owners["mallory"]


# Headless Chromium (tests/chromium.py), for the browser tests ------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from chromium import CHROMIUM, Browser

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (FD_SYSTEM_PACKAGES)")
    it = Browser(tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield it
    finally:
        it.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    it = browser.tab()
    try:
        yield it
    finally:
        it.close()
