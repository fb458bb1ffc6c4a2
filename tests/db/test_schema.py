"""The schema: the migration builds exactly the models, and the database itself keeps integrity.

Every duplicate here is inserted with raw SQLAlchemy Core, past the services' own checks, so what
refuses it is the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from flightdeck.db.engine import SCHEMA_HEAD, Database, open_database
from flightdeck.db.models import Base

T = Base.metadata.tables


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url, create=True)
    yield database
    database.dispose()


def insert(c: sa.Connection, table: str, **row: Any) -> int:
    """Insert one row and return its id (ids come from the database, never given)."""
    result = c.execute(T[table].insert().values(**row))
    pk = result.inserted_primary_key
    return int(pk[0]) if pk and pk[0] is not None else 0


def host_row(name: str, appliance_id: int, rank: int = 0, cpus: int = 1) -> dict[str, Any]:
    return {"name": name, "appliance_id": appliance_id, "rack": 0, "rank": rank, "cpus": cpus,
            "os": "linux", "run_action": "os", "install_action": "install"}  # fmt: skip


class Seeded:
    def __init__(self, db: Database) -> None:
        self.db = db
        with db.engine.begin() as c:
            self.app = insert(c, "appliances", name="compute", membership="Compute", public=True)
            self.net = insert(c, "networks", name="private", subnet="10.1.0.0",
                              netmask="255.255.0.0", mtu=1500)  # fmt: skip
            self.a = insert(c, "hosts", **host_row("a", self.app, 0))
            self.b = insert(c, "hosts", **host_row("b", self.app, 1))
            insert(c, "interfaces", host_id=self.a, device="eth0", mac="52:54:00:00:00:01",
                   ip="10.1.255.254", network_id=self.net, disable_kvm=False)  # fmt: skip
            insert(c, "interfaces", host_id=self.b, device="eth0", mac="52:54:00:00:00:02",
                   ip="10.1.255.253", network_id=self.net, disable_kvm=False)  # fmt: skip
            insert(c, "clusters", frontend_id=self.a, vlan=2, network_id=self.net)
            insert(c, "host_attributes", host_id=self.b, name="kvm", value="true")
            insert(c, "host_boot", host_id=self.b, action="os")


@pytest.fixture
def seeded(db: Database) -> Seeded:
    """An appliance, a network, two hosts with one interface each, a cluster on VLAN 2."""
    return Seeded(db)


def count(db: Database, table: str) -> int:
    with db.engine.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(T[table])).scalar_one())


def refused(s: Seeded, table: str, row: dict[str, Any], *names: str) -> None:
    """The insert fails with an IntegrityError that names one of `names`, and adds nothing."""
    before = count(s.db, table)
    with pytest.raises(IntegrityError) as exc, s.db.engine.begin() as c:
        c.execute(T[table].insert().values(**row))
    text = str(exc.value.orig)
    assert any(n in text for n in names), f"refused for another reason: {text}"
    assert count(s.db, table) == before


# Migration == models --------------------------------------------------------------------------


def test_migration_builds_exactly_the_models(db: Database) -> None:
    assert db.revision() == SCHEMA_HEAD
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(ctx, Base.metadata) == []


def test_every_model_table_and_the_version_table_exist(db: Database) -> None:
    names = set(sa.inspect(db.engine).get_table_names())
    assert names == set(T) | {"alembic_version"}


def test_unique_and_check_constraints_are_named_by_the_convention(db: Database) -> None:
    insp = sa.inspect(db.engine)
    uniques = {u["name"] for u in insp.get_unique_constraints("interfaces")}
    assert uniques == {
        "uq_interfaces_mac",
        "uq_interfaces_network_id_ip",
        "uq_interfaces_host_id_device",
    }
    assert "uq_clusters_vlan" in {u["name"] for u in insp.get_unique_constraints("clusters")}
    checks = {c["name"] for c in insp.get_check_constraints("hosts")}
    assert "ck_hosts_cpus_positive" in checks


def test_opening_again_does_not_upgrade_or_change_anything(db_url: str, seeded: Database) -> None:
    again = open_database(db_url)
    try:
        assert again.revision() == SCHEMA_HEAD
        assert count(again, "hosts") == 2
    finally:
        again.dispose()


def test_opening_a_database_without_schema_is_refused_without_create(db_url: str) -> None:
    from flightdeck.errors import NotFound

    if db_url.startswith("sqlite"):
        # An existing but empty file: not a missing one.
        path = Path(db_url.removeprefix("sqlite:///"))
        engine = sa.create_engine(db_url)
        engine.connect().close()
        engine.dispose()
        assert path.exists()
    with pytest.raises(NotFound, match="rocks init frontend"):
        open_database(db_url)


def test_an_unreadable_database_is_reported_as_such_not_as_missing_schema(tmp_path: Any) -> None:
    from flightdeck.errors import DriverError

    path = tmp_path / "flightdeck.db"
    path.write_bytes(b"this is not an SQLite database at all, just some text" * 100)
    with pytest.raises(DriverError) as exc:
        open_database(f"sqlite:///{path}")
    assert "cannot open the database" in exc.value.message
    assert "file is not a database" in exc.value.message
    assert "\n" not in exc.value.message


# Uniqueness is the database's -----------------------------------------------------------------

FK = ("FOREIGN KEY constraint failed", "foreign key constraint")


def test_duplicate_host_name(seeded: Seeded) -> None:
    refused(seeded, "hosts", host_row("a", seeded.app, 9), "hosts.name", "uq_hosts_name")


def test_duplicate_mac(seeded: Seeded) -> None:
    row = {"host_id": seeded.b, "device": "eth1", "mac": "52:54:00:00:00:01", "disable_kvm": False}
    refused(seeded, "interfaces", row, "interfaces.mac", "uq_interfaces_mac")


def test_many_interfaces_without_mac_or_ip_are_allowed(seeded: Seeded) -> None:
    with seeded.db.engine.begin() as c:
        for dev in ("eth1", "eth2"):
            insert(c, "interfaces", host_id=seeded.a, device=dev, mac=None, ip=None,
                   network_id=seeded.net, disable_kvm=False)  # fmt: skip
    assert count(seeded.db, "interfaces") == 4


def test_duplicate_ip_on_one_network(seeded: Seeded) -> None:
    row = {"host_id": seeded.b, "device": "eth1", "ip": "10.1.255.254",
           "network_id": seeded.net, "disable_kvm": False}  # fmt: skip
    refused(seeded, "interfaces", row, "interfaces.network_id, interfaces.ip",
            "uq_interfaces_network_id_ip")  # fmt: skip


def test_same_ip_on_another_network_is_allowed(seeded: Seeded) -> None:
    with seeded.db.engine.begin() as c:
        other = insert(c, "networks", name="other", subnet="10.1.0.0", netmask="255.255.0.0",
                       mtu=1500)  # fmt: skip
        insert(c, "interfaces", host_id=seeded.b, device="eth1", ip="10.1.255.254",
               network_id=other, disable_kvm=False)  # fmt: skip
    assert count(seeded.db, "interfaces") == 3


def test_duplicate_device_on_one_host(seeded: Seeded) -> None:
    row = {"host_id": seeded.a, "device": "eth0", "disable_kvm": False}
    refused(seeded, "interfaces", row, "interfaces.host_id, interfaces.device",
            "uq_interfaces_host_id_device")  # fmt: skip


def test_duplicate_cluster_vlan(seeded: Seeded) -> None:
    row = {"frontend_id": seeded.b, "vlan": 2, "network_id": seeded.net}
    refused(seeded, "clusters", row, "clusters.vlan", "uq_clusters_vlan")


def test_one_cluster_per_frontend(seeded: Seeded) -> None:
    row = {"frontend_id": seeded.a, "vlan": 3, "network_id": seeded.net}
    refused(seeded, "clusters", row, "clusters.frontend_id", "uq_clusters_frontend_id")


def test_duplicate_appliance_network_and_attribute(seeded: Seeded) -> None:
    refused(seeded, "appliances", {"name": "compute", "membership": "Other", "public": True},
            "appliances.name", "uq_appliances_name")  # fmt: skip
    refused(seeded, "networks", {"name": "private", "subnet": "10.9.0.0",
                                 "netmask": "255.255.0.0", "mtu": 1500},
            "networks.name", "uq_networks_name")  # fmt: skip
    refused(seeded, "host_attributes", {"host_id": seeded.b, "name": "kvm", "value": "x"},
            "host_attributes.host_id", "pk_host_attributes")  # fmt: skip


@pytest.mark.parametrize(
    ("table", "row", "constraint"),
    [
        ("clusters", {"vlan": 1}, "ck_clusters_vlan_range"),
        ("clusters", {"vlan": 4095}, "ck_clusters_vlan_range"),
        ("interfaces", {"device": "eth1", "vlan": 4095}, "ck_interfaces_vlan_range"),
        ("interfaces", {"device": "eth1", "vlan": -1}, "ck_interfaces_vlan_range"),
        ("host_boot", {"action": "reboot"}, "ck_host_boot_action_known"),
        ("hosts", {"cpus": 0}, "ck_hosts_cpus_positive"),
    ],
)
def test_check_constraints(
    seeded: Seeded, table: str, row: dict[str, Any], constraint: str
) -> None:
    full: dict[str, Any] = {
        "clusters": {"frontend_id": seeded.b, "network_id": seeded.net},
        "interfaces": {"host_id": seeded.b, "disable_kvm": False},
        "host_boot": {"host_id": seeded.a},
        "hosts": host_row("c", seeded.app, 5),
    }[table]
    refused(seeded, table, {**full, **row}, constraint)


# Foreign keys ---------------------------------------------------------------------------------


def test_foreign_keys_refuse_a_dangling_reference(seeded: Seeded) -> None:
    refused(seeded, "interfaces", {"host_id": 999, "device": "eth0", "disable_kvm": False}, *FK)
    refused(seeded, "hosts", host_row("c", 999), *FK)
    refused(seeded, "host_attributes", {"host_id": 999, "name": "x", "value": "y"}, *FK)


def test_deleting_a_host_cascades_its_interfaces_attributes_and_boot(seeded: Seeded) -> None:
    with seeded.db.engine.begin() as c:
        c.execute(T["hosts"].delete().where(T["hosts"].c.name == "b"))
    with seeded.db.engine.connect() as c:
        assert c.execute(sa.select(T["interfaces"].c.host_id)).scalars().all() == [seeded.a]
        assert c.execute(sa.select(T["host_attributes"])).all() == []
        assert c.execute(sa.select(T["host_boot"])).all() == []


def test_deleting_a_cluster_frontend_cascades_the_cluster(seeded: Seeded) -> None:
    with seeded.db.engine.begin() as c:
        c.execute(T["hosts"].delete().where(T["hosts"].c.name == "a"))
    assert count(seeded.db, "clusters") == 0
    assert count(seeded.db, "interfaces") == 1


def test_an_appliance_or_network_in_use_cannot_be_deleted(seeded: Seeded) -> None:
    with pytest.raises(IntegrityError), seeded.db.engine.begin() as c:
        c.execute(T["appliances"].delete())
    with pytest.raises(IntegrityError), seeded.db.engine.begin() as c:
        c.execute(T["networks"].delete())
    assert count(seeded.db, "appliances") == 1
    assert count(seeded.db, "networks") == 1


def test_sqlite_connections_have_foreign_keys_wal_and_busy_timeout(db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("SQLite pragmas")
    with db.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


# Integrity errors reach the user as a Conflict naming the clash -------------------------------


@pytest.mark.parametrize(
    ("table", "row", "message"),
    [
        ("hosts", "dup-host", "a host with that name already exists"),
        ("interfaces", "dup-mac", "that MAC address is already used by another interface"),
        ("interfaces", "dup-ip", "that IP address is already used on that network"),
        ("interfaces", "dup-dev", "the host already has an interface of that name"),
        ("clusters", "dup-vlan", "that VLAN is already used by another cluster"),
    ],
)
def test_an_integrity_error_in_a_service_transaction_is_a_conflict(
    seeded: Seeded, table: str, row: str, message: str
) -> None:
    """What a race that slipped past a service's own checks looks like to the user."""
    from flightdeck.errors import Conflict
    from flightdeck.services.base import writing

    rows: dict[str, dict[str, Any]] = {
        "dup-host": host_row("a", seeded.app, 7),
        "dup-mac": {"host_id": seeded.b, "device": "eth1", "mac": "52:54:00:00:00:01",
                    "disable_kvm": False},
        "dup-ip": {"host_id": seeded.b, "device": "eth1", "ip": "10.1.255.254",
                   "network_id": seeded.net, "disable_kvm": False},
        "dup-dev": {"host_id": seeded.b, "device": "eth0", "disable_kvm": False},
        "dup-vlan": {"frontend_id": seeded.b, "vlan": 2, "network_id": seeded.net},
    }  # fmt: skip
    before = count(seeded.db, table)
    with pytest.raises(Conflict) as exc, writing(seeded.db) as session:
        session.execute(T["host_attributes"].delete())  # a first change that must be undone
        session.execute(T[table].insert().values(**rows[row]))
    assert exc.value.message == message
    assert count(seeded.db, table) == before
    assert count(seeded.db, "host_attributes") == 1


def test_one_running_job_per_cluster_and_any_number_that_ended(seeded: Seeded) -> None:
    """uq_jobs_one_running is a PARTIAL unique index (migration 0002), though db/tables.py
    declares it without its `where` (dialect options cost every command ~25 ms of imports)."""
    with seeded.db.engine.connect() as c:
        cluster = c.execute(sa.select(T["clusters"].c.id)).scalar_one()
    job = {"cluster_id": cluster, "keyid": "k", "action": "on", "created": 0, "runner": "r"}
    with seeded.db.engine.begin() as c:
        for state in ("done", "failed", "done", "interrupted", "running"):
            c.execute(T["jobs"].insert().values(**job, state=state))
    refused(seeded, "jobs", {**job, "state": "running"}, "uq_jobs_one_running", "UNIQUE",
            "unique")
