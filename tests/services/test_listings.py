"""services/listings.py: the read-only listings on Core, and the `rocks` commands that use them.

Their rows are checked through the commands' own tests (tests/commands/) and
tests/services/test_inventory.py; here: that a real `rocks list ...` process never imports the ORM
or the models (the point of the module), on SQLite and PostgreSQL, and that the check can fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flightdeck.services import attributes, clusters, inventory, keys, listings
from flightdeck.services.airboss import audit, revocations

VENV_BIN = Path(sys.executable).parent
ORM = ("sqlalchemy.orm", "flightdeck.db.models")


def imported_by(url: str, *argv: str) -> tuple[set[str], str]:
    """The modules a real `rocks` process imports (`-X importtime`), and its stdout."""
    env = dict(os.environ, FLIGHTDECK_DB=url)
    env.pop("FLIGHTDECK_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(VENV_BIN / "rocks"), *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return modules, done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ("list", "appliance"),
        ("list", "membership"),
        ("list", "network"),
        ("list", "attr"),
        ("list", "attr", "Kickstart_PrivateAddress"),
        ("list", "host"),
        ("list", "host", "rack0"),
        ("list", "host", "vm-container"),
        ("list", "host", "52:54:00:fd:00:01"),
        ("list", "host", "espresso.rocksclusters.org"),
        ("list", "host", "vm-container-*"),
        ("list", "host", "interface"),
        ("list", "host", "interface", "vm-container-0-0"),
        ("list", "host", "interface", "rack0"),
        ("list", "host", "attr"),
        ("list", "host", "attr", "vm-container-0-0", "attr=kvm"),
        ("list", "host", "attr", "rack0", "espresso.rocksclusters.org"),
        ("list", "cluster"),
        ("list", "cluster", "espresso.rocksclusters.org"),
        ("list", "host", "vm"),
        ("list", "host", "vm", "showdisks=y"),
        ("list", "bootaction"),
        ("list", "host", "boot"),
        ("list", "host", "boot", "vm-container-0-1", "rack0"),
        ("list", "appliance", "attr"),
        ("list", "appliance", "attr", "Compute"),
        ("list", "host", "key"),
        ("list", "host", "key", "rack0"),
        ("list", "airboss", "log"),
        ("list", "airboss", "log", "limit=5"),
        ("list", "host", "token"),
        ("list", "host", "token", "vm-container-0-0"),
    ],
)
def test_read_only_listings_never_import_the_orm(espresso: Any, argv: tuple[str, ...]) -> None:
    modules, out = imported_by(espresso.url, *argv)
    assert "flightdeck.services.listings" in modules
    assert [m for m in ORM if m in modules] == []
    # The same rows as the in-process run (which has the ORM loaded by the fixture).
    assert out == espresso.ok(*argv)


@pytest.mark.parametrize(
    ("argv", "module", "row"),
    [
        (("list", "host", "vlan", "live=no"), "network_read", "vm-container-0-1"),
        (("list", "host", "vlan", "vm-container-0-1", "live=no"), "network_read", "peth0.2"),
        (("list", "host", "vlan", "live=no", "output-format=json"), "network_read", '"vlan": 2'),
        (("list", "host", "macs", "frontend-0-0-0"), "listings", "76:77:6e:40:00:00"),
        (("list", "host", "macs", "137.110.119.118", "names=yes"), "listings", "hosted-vm-0-1-0"),
        # Live states: libvirt asked, the database read on Core all the same.
        (("list", "host", "vm", "status=y"), "vm_status", "nostate"),
        (("list", "host", "vm", "hosted-vm-0-0-0", "status=y"), "vm_status", "nostate"),
        (("list", "cluster", "status=y"), "vm_status", "nostate"),
        (("list", "host", "macs", "frontend-0-0-0", "status=yes"), "vm_status", "nostate"),
    ],
)
def test_the_cluster_listings_never_import_the_orm(
    espresso: Any, argv: tuple[str, ...], module: str, row: str
) -> None:
    """`list host vlan` plans each container's network from Core reads (issue 20: it was
    2.03x `import sqlalchemy` on the ORM), `list host macs` reads a cluster's MACs on Core, and
    the live states (`status=`) read where each VM runs on Core; the same rows as in process."""
    espresso.ok("add", "cluster", "137.110.119.118", "2")  # a VLAN on each container
    modules, out = imported_by(espresso.url, *argv)
    assert f"flightdeck.services.{module}" in modules
    assert [m for m in ORM if m in modules] == []
    assert out == espresso.ok(*argv)
    assert row in out  # rows, not an empty table


def test_list_host_macs_names_one_frontend(espresso: Any) -> None:
    espresso.ok("add", "cluster", "137.110.119.118", "1")
    two = "'vm-container-0-*' names 2 hosts (vm-container-0-0, vm-container-0-1...)"
    espresso.refused("list", "host", "macs", "vm-container-0-*", says=two)
    alone = "host vm-container-0-0 is not a virtual frontend"
    espresso.refused("list", "host", "macs", "vm-container-0-0", says=alone)


def test_the_check_sees_the_orm_in_a_command_that_uses_it(espresso: Any) -> None:
    """`report host network` reads through the ORM session: the import check must say so."""
    modules, _ = imported_by(espresso.url, "report", "host", "network", "vm-container-0-1")
    assert set(ORM) <= modules


def test_an_unknown_host_is_still_one_error_line_without_the_orm(espresso: Any) -> None:
    espresso.refused("list", "host", "nosuch", says="unknown host 'nosuch'")


def test_the_listings_are_still_found_where_they_were() -> None:
    assert inventory.list_hosts is listings.list_hosts
    assert inventory.list_appliances is listings.list_appliances
    assert inventory.list_networks is listings.list_networks
    assert inventory.HostRow is listings.HostRow
    assert inventory.list_interfaces is listings.list_interfaces
    assert attributes.list_host is listings.list_host_attrs
    assert inventory.InterfaceRow is listings.InterfaceRow
    assert inventory.NetworkRow is listings.NetworkRow
    assert attributes.list_global is listings.list_global
    assert attributes.list_appliance is listings.list_appliance_attrs
    assert inventory.list_boot is listings.list_boot
    assert inventory.list_boot_actions is listings.list_boot_actions
    assert keys.list_host_keys is listings.list_host_keys
    assert clusters.cluster_macs is listings.cluster_macs
    assert audit.list_audit is listings.list_audit
    assert audit.AuditRow is listings.AuditRow
    assert revocations.list_revoked is listings.list_revoked


def test_host_keys_list_without_the_orm_and_parse_keys_only_for_their_type(
    espresso: Any, tmp_path: Path
) -> None:
    """The plain key listing reads the stored PEM and fingerprint; fingerprint=yes names each
    key's type, which needs `cryptography`, still without the ORM."""
    espresso.ok("add", "cluster", "137.110.119.118", "1")
    pub = espresso.ok("create", "keys", f"key={tmp_path / 'owner'}", "passphrase=no")
    (tmp_path / "owner.pub").write_text(pub)
    espresso.ok("add", "host", "key", "frontend-0-0-0", f"key={tmp_path / 'owner.pub'}",
                "description=ann")  # fmt: skip
    for argv, crypto in (
        (("list", "host", "key"), False),
        (("list", "host", "key", "frontend-0-0-0", "fingerprint=yes"), True),
        (("list", "host", "key", "output-format=json", "fingerprint=yes"), True),
    ):
        modules, out = imported_by(espresso.url, *argv)
        assert [m for m in ORM if m in modules] == []
        assert ("cryptography" in modules) is crypto
        assert out == espresso.ok(*argv)
    assert '"type": "ED25519"' in out and '"description": "ann"' in out
