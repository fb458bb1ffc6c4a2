"""Every listing's JSON and CSV: the records its declarations promise, typed, on a real site.

The site has something in every listing (a virtual cluster, a plain VM with two NICs and two
disks, a key, attributes at three levels, an audit entry), and each listing runs with every
parameter that adds fields switched on. A record must have exactly the declared keys, each
value of its declared type, and the help must document each field.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from flightdeck.cli.command import Command
from flightdeck.cli.help import command_help
from flightdeck.cli.output import Field
from flightdeck.cli.registry import iter_commands

#: Owner-side listings redesigned elsewhere (issue 15, part B): their columns are still headers.
UNDECLARED = {"list host macs"}
#: Owner-side listings answered only by an Airboss: their records are checked against a real
#: one (list jobs: tests/airboss/test_jobs.py; list audit: tests/pilot/test_tokens.py).
THROUGH_AIRBOSS = {"list jobs", "list audit"}


def _listings() -> list[tuple[str, type[Command]]]:
    out = []
    for words, cls in iter_commands():
        source = Path(__import__(cls.__module__, fromlist=["_"]).__file__ or "").read_text()
        if "self.emit(" in source:
            out.append((words, cls))
    return out


LISTINGS = _listings()


def test_the_listings_are_found() -> None:
    words = {w for w, _ in LISTINGS}
    assert {"list host", "list cluster", "list host vm", "list host key"} <= words


@pytest.mark.parametrize(("words", "cls"), LISTINGS, ids=[w for w, _ in LISTINGS])
def test_every_listing_declares_and_documents_its_fields(words: str, cls: type[Command]) -> None:
    if words in UNDECLARED:
        pytest.skip("owner-side listing, redesigned in issue 15 part B")
    assert cls.fields, f"rocks {words} declares no fields"
    assert cls.records, f"rocks {words} does not say what one record is"
    text = command_help(cls)
    assert "Fields of output-format=json and csv" in text
    for f in cls.fields:
        assert f.help, f"rocks {words}: field {f.key} has no help"
        assert re.search(rf"^  {f.key} +{re.escape(f.type_text)} ", text, re.M), f.key


def _is(value: Any, f: Field) -> bool:
    if value is None:
        return f.nullable
    kind = f.type
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "time":
        return isinstance(value, str) and dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ") > (
            dt.datetime(2000, 1, 1)
        )
    item = str if kind == "list of strings" else int
    return isinstance(value, list) and all(
        isinstance(v, item) and not isinstance(v, bool) for v in value
    )


@pytest.fixture
def site(espresso: Any, tmp_path: Path) -> Any:
    rocks = espresso
    rocks.ok("add", "cluster", "ip=137.110.119.118", "num-computes=2")
    rocks.ok(
        "add", "host", "vm", "vm-container-0-1", "membership=Compute", "num-macs=2",
        "disk=qcow2:/state/a.vda,vda,virtio qcow2:/state/a.vdb,vdb,virtio", "disksize=5 7",
    )  # fmt: skip
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    (tmp_path / "owner.pub").write_text(pem)
    rocks.ok("add", "host", "key", "frontend-0-0-0", f"key={tmp_path / 'owner.pub'}")
    rocks.ok("set", "attr", "kvm_disk_dir", "/state")
    rocks.ok("set", "appliance", "attr", "compute", "kvm_autostart", "yes")
    from flightdeck.db.engine import open_database
    from flightdeck.services.airboss.audit import AuditRecord, audit

    db = open_database(rocks.url)
    try:
        audit(db, AuditRecord("192.0.2.1", "SHA256:x", "power on", "hosted-vm-0-0-0", False,
                              "forbidden"))  # fmt: skip
        from flightdeck.services.airboss.revocations import revoke_by_admin

        revoke_by_admin(db, "frontend-0-0-0", "ab" * 64, "root")
    finally:
        db.dispose()
    return rocks


def _argv(words: str, cls: type[Command]) -> list[str]:
    argv = words.split()
    for p in cls.params:
        if any(f.when == p.name for f in cls.fields):
            argv.append(f"{p.name}=yes")
    if words == "list host vlan":
        argv.append("live=no")
    return argv


@pytest.mark.parametrize(("words", "cls"), LISTINGS, ids=[w for w, _ in LISTINGS])
def test_records_have_the_declared_keys_and_types(
    words: str, cls: type[Command], site: Any
) -> None:
    if words in UNDECLARED:
        pytest.skip("owner-side listing, redesigned in issue 15 part B")
    if words in THROUGH_AIRBOSS:
        pytest.skip("answered by the Airboss: see THROUGH_AIRBOSS")
    argv = _argv(words, cls)
    records = json.loads(site.ok(*argv, "output-format=json"))
    assert records, f"rocks {' '.join(argv)} listed nothing: the site must fill every listing"
    keys = [f.key for f in cls.fields]
    for record in records:
        assert list(record) == keys
        for f in cls.fields:
            assert _is(record[f.key], f), f"{words}: {f.key}={record[f.key]!r} is not {f.type_text}"
    rows = list(csv.reader(io.StringIO(site.ok(*argv, "output-format=csv"))))
    assert rows[0] == keys
    assert len(rows) == len(records) + 1, "CSV has the same records as JSON"


def test_a_cluster_node_names_its_frontend(site: Any) -> None:
    records = json.loads(site.ok("list", "cluster", "output-format=json"))
    nodes = [r for r in records if r["node"] and r["node"].startswith("hosted-vm")]
    assert {(r["frontend"], r["frontend_host"]) for r in nodes} == {
        ("frontend-0-0-0-public", "frontend-0-0-0")
    }
    assert len(nodes) == 2
    mine = [r for r in records if r["frontend_host"] == "frontend-0-0-0" and r["node"] is None]
    assert [r["type"] for r in mine] == ["VM"]


def test_a_vm_is_one_record_with_its_macs_and_disks(site: Any) -> None:
    (vm,) = [
        r
        for r in json.loads(site.ok("list", "host", "vm", "showdisks=yes", "output-format=json"))
        if r["vm_host"] == "compute-0-1-0"
    ]
    assert len(vm["macs"]) == 2
    assert vm["disks"] == ["qcow2:/state/a.vda,vda,virtio", "qcow2:/state/a.vdb,vdb,virtio"]
    assert vm["disk_sizes"] == [5, 7]
    assert (vm["mem"], vm["cpus"], vm["host"]) == (1024, 1, "vm-container-0-1")


def test_a_key_is_one_record_with_its_whole_pem(site: Any) -> None:
    (key,) = json.loads(site.ok("list", "host", "key", "output-format=json"))
    assert key["public_key"].startswith("-----BEGIN PUBLIC KEY-----\n")
    assert key["public_key"].endswith("-----END PUBLIC KEY-----\n")
    assert isinstance(key["id"], int)


def test_list_host_key_is_the_guides_host_id_public_key(site: Any) -> None:
    """Seed 004: HOST ID PUBLIC KEY, one PEM line per row, ':' on the continuation rows."""
    (key,) = json.loads(site.ok("list", "host", "key", "output-format=json"))
    pem = key["public_key"].splitlines()
    lines = site.ok("list", "host", "key").splitlines()
    assert lines[0] == "HOST            ID PUBLIC KEY"
    assert lines[1] == f"frontend-0-0-0: {key['id']:<2} {pem[0]}"
    assert lines[2:] == [f":                  {line}" for line in pem[1:]]
    assert site.ok("list", "host", "key", "output-col=host,id,description").splitlines() == [
        "HOST            ID DESCRIPTION",
        f"frontend-0-0-0: {key['id']}",
    ]
