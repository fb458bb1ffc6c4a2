"""`rocks init frontend` (services/frontend.py): what it creates; running it again is safe."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from flightdeck.db import attrs
from flightdeck.db.engine import SCHEMA_HEAD, open_database
from flightdeck.db.models import Appliance, BootAction, Host, Interface, Network
from flightdeck.errors import Conflict, UserError
from flightdeck.services.frontend import FrontendSpec, init_frontend

ESPRESSO = FrontendSpec(
    name="espresso.rocksclusters.org",
    public_ip="137.110.119.117",
    public_netmask="255.255.255.0",
    private_ip="10.1.1.1",
    private_netmask="255.255.0.0",
)
INIT = [
    "init",
    "frontend",
    "name=espresso.rocksclusters.org",
    "public-ip=137.110.119.117",
    "public-netmask=255.255.255.0",
    "private-ip=10.1.1.1",
    "private-netmask=255.255.0.0",
]


def test_first_run_creates_the_site(db_url: str) -> None:
    result = init_frontend(ESPRESSO, db_url)
    assert result.created is True
    db = open_database(db_url)
    try:
        assert db.revision() == SCHEMA_HEAD
        with db.transaction() as s:
            apps = {a.name: a.membership for a in s.scalars(select(Appliance))}
            assert apps == {
                "frontend": "Frontend",
                "vm-container": "VM Container",
                "hosted-vm": "Hosted VM",
                "compute": "Compute",
            }
            nets = {n.name: (n.subnet, n.netmask, n.dnszone) for n in s.scalars(select(Network))}
            assert nets == {
                "private": ("10.1.0.0", "255.255.0.0", "local"),
                "public": ("137.110.119.0", "255.255.255.0", "rocksclusters.org"),
            }
            fe = s.scalars(select(Host)).one()
            assert (fe.name, fe.appliance.name, fe.rack, fe.rank) == ("frontend-0-0", "frontend",
                                                                      0, 0)  # fmt: skip
            ifaces = {
                i.device: (i.ip, i.network.name if i.network else None, i.name)
                for i in s.scalars(select(Interface))
            }
            assert ifaces == {
                "eth0": ("10.1.1.1", "private", "frontend-0-0"),
                "eth1": ("137.110.119.117", "public", "espresso.rocksclusters.org"),
            }
            assert attrs.resolve(s, fe, "kvm") == "true"
            assert attrs.resolve(s, fe, "libvirt_uri") == "qemu:///system"
            g = {name: attrs.global_value(s, name) for name in (
                "Kickstart_PublicHostname", "Kickstart_PublicGateway", "vm_mac_base_addr",
                "vm_mac_base_addr_mask", "airboss", "libvirt_uri_template")}  # fmt: skip
            assert g == {
                "Kickstart_PublicHostname": "espresso.rocksclusters.org",
                "Kickstart_PublicGateway": "137.110.119.1",
                # Reference §3.3: the MAC base derived from the public IP.
                "vm_mac_base_addr": "76:77:6e:40:00:00",
                "vm_mac_base_addr_mask": "ff:ff:ff:c0:00:00",
                "airboss": "localhost",
                "libvirt_uri_template": "qemu+ssh://root@{host}/system",
            }
            actions = set(s.scalars(select(BootAction.name)))
            assert actions == {"os", "install", "install vm frontend", "install vm frontend image"}
            args = s.scalar(select(BootAction.args).where(BootAction.name == "install vm frontend"))
            assert "ks=http://espresso.rocksclusters.org/install/sbin/kickstart.cgi" in str(args)
    finally:
        db.dispose()


def test_the_same_name_again_changes_nothing(rocks: Any) -> None:
    assert rocks.ok(*INIT) == "initialised frontend espresso.rocksclusters.org (frontend-0-0)\n"
    before = rocks.dump()
    out = rocks.ok(*INIT)
    assert "already initialised" in out
    assert rocks.dump() == before
    # Also with different addresses: the site is kept as it is, not re-addressed.
    again = [a if not a.startswith("public-ip=") else "public-ip=137.110.119.99" for a in INIT]
    rocks.ok(*again)
    assert rocks.dump() == before


def test_the_same_name_again_after_changes_keeps_them(rocks: Any) -> None:
    rocks.ok(*INIT)
    rocks.ok("add", "host", "vm-container-0-0", "membership=VM Container")
    rocks.ok("set", "attr", "airboss", "elsewhere")
    before = rocks.dump()
    rocks.ok(*INIT)
    assert rocks.dump() == before


def test_a_different_name_is_refused_and_changes_nothing(rocks: Any) -> None:
    rocks.ok(*INIT)
    before = rocks.dump()
    other = [a if not a.startswith("name=") else "name=latte.example.org" for a in INIT]
    r = rocks(*other)
    assert r.code == 1
    assert r.err == (
        "error - this database already belongs to frontend espresso.rocksclusters.org, "
        "not latte.example.org: use another FLIGHTDECK_HOME for a new site\n"
    )
    assert rocks.dump() == before
    with pytest.raises(Conflict):
        init_frontend(FrontendSpec(**{**ESPRESSO.__dict__, "name": "latte.example.org"}),
                      rocks.url)  # fmt: skip
    assert rocks.dump() == before


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"public_ip": "137.110.119.0"}, "network address"),
        ({"private_ip": "10.1.255.255"}, "broadcast address"),
        ({"public_netmask": "0.0.255.255"}, "invalid netmask"),
        ({"gateway": "10.9.9.9"}, "outside network public"),
        ({"name": "bad_name.example.org"}, "invalid host name"),
        ({"public_mac": "not-a-mac"}, "invalid MAC"),
    ],
)
def test_bad_specs_create_nothing(tmp_path: Any, change: dict[str, str], says: str) -> None:
    path = tmp_path / "site" / "flightdeck.db"
    with pytest.raises(UserError, match=says):
        init_frontend(FrontendSpec(**{**ESPRESSO.__dict__, **change}), f"sqlite:///{path}")
    assert not path.exists()


def test_the_same_mac_twice_is_a_conflict_and_leaves_no_site(db_url: str) -> None:
    spec = FrontendSpec(**{**ESPRESSO.__dict__, "public_mac": "52:54:00:00:00:01",
                           "private_mac": "52:54:00:00:00:01"})  # fmt: skip
    with pytest.raises(Conflict, match="MAC"):
        init_frontend(spec, db_url)
    db = open_database(db_url)
    try:
        with db.transaction() as s:
            assert s.scalars(select(Host)).all() == []
            assert attrs.global_value(s, "Kickstart_PublicHostname") is None
    finally:
        db.dispose()
    # A corrected second attempt works.
    assert init_frontend(ESPRESSO, db_url).created


def test_macs_are_stored_in_one_spelling(db_url: str) -> None:
    init_frontend(FrontendSpec(**{**ESPRESSO.__dict__, "public_mac": "00:16:3E:0A:0B:0C",
                                  "private_mac": "0-16-3e-1-2-3"}), db_url)  # fmt: skip
    db = open_database(db_url)
    try:
        with db.transaction() as s:
            macs = {i.device: i.mac for i in s.scalars(select(Interface))}
    finally:
        db.dispose()
    assert macs == {"eth1": "00:16:3e:0a:0b:0c", "eth0": "00:16:3e:01:02:03"}


def test_the_state_directory_is_created(tmp_path: Any) -> None:
    path = tmp_path / "a" / "b" / "flightdeck.db"
    assert init_frontend(ESPRESSO, f"sqlite:///{path}").created
    assert path.exists()


def test_init_through_the_real_executable_then_list(rocks: Any) -> None:
    import json
    import os

    p = rocks.process(INIT)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "initialised frontend espresso.rocksclusters.org (frontend-0-0)\n"
    rows = json.loads(rocks.ok("list", "host", "output-format=json"))
    assert rows == [
        {
            "host": "frontend-0-0",
            "membership": "Frontend",
            "cpus": os.cpu_count() or 1,
            "rack": 0,
            "rank": 0,
            "runaction": "os",
            "installaction": "install",
            "comment": None,
        }
    ]


def _mode(path: Any) -> str:
    import os

    return oct(os.stat(path).st_mode & 0o777)


def test_a_fresh_site_is_readable_by_root_only(tmp_path: Any, monkeypatch: Any) -> None:
    """Issue 14: the database, its -wal/-shm and FLIGHTDECK_HOME were world-readable."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    monkeypatch.setenv("FLIGHTDECK_HOME", str(home))
    monkeypatch.delenv("FLIGHTDECK_DB", raising=False)
    old = os.umask(0o022)  # the usual umask: it must not decide
    try:
        rocks = os.path.join(os.path.dirname(sys.executable), "rocks")
        p = subprocess.run(
            [rocks, *INIT],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        db = home / "flightdeck.db"
        # A reader keeps the WAL files open: they exist while it looks.
        reader = open_database()
        try:
            with reader.transaction() as s:
                s.execute(select(Host.name)).all()
                assert _mode(home) == "0o700"
                beside = (db.with_name(f"flightdeck.db-{x}") for x in ("wal", "shm", "writer"))
                for f in (db, *beside):
                    assert f.exists() and _mode(f) == "0o600", (f, _mode(f))
        finally:
            reader.dispose()
    finally:
        os.umask(old)


def test_init_on_an_old_world_readable_site_takes_the_others_out(
    tmp_path: Any, monkeypatch: Any
) -> None:
    import os

    path = tmp_path / "site" / "flightdeck.db"
    monkeypatch.setenv("FLIGHTDECK_HOME", str(path.parent))
    assert init_frontend(ESPRESSO, f"sqlite:///{path}").created
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    assert not init_frontend(ESPRESSO, f"sqlite:///{path}").created
    assert _mode(path.parent) == "0o750" and _mode(path) == "0o640"
