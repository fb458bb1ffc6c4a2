"""`rocks report cluster` and `rocks apply cluster` on the guide's espresso (SQLite and PostgreSQL;
each container a libvirt test driver of this test, so running VMs are real test-driver domains).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ESPRESSO, RocksRunner, _test_uri
from flightdeck.db.engine import Database, open_database
from flightdeck.services.lifecycle import live_info
from flightdeck.services.spec import model as m
from flightdeck.services.spec.apply import apply_cluster
from flightdeck.services.spec.report import report_cluster
from flightdeck.virt import hypervisor as hv

PUBLIC = "137.110.119.118"
FE = "frontend-0-0-0"


@pytest.fixture
def db(espresso: Any, db_url: str) -> Iterator[Database]:
    d = open_database(db_url)
    yield d
    d.dispose()


def report(rocks: Any, fe: str = FE, fmt: str = "yaml") -> str:
    return str(rocks.ok("report", "cluster", fe, f"format={fmt}"))


def apply(rocks: Any, tmp_path: Path, text: str, *more: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return str(rocks.ok("apply", "cluster", f"file={path}", *more))


def computes(rocks: Any) -> list[tuple[str, str]]:
    out = []
    for line in rocks.ok("list", "host", "vm", "output-header=no").splitlines():
        parts = line.split()
        if parts and parts[0].startswith(("hosted-vm", "vm-", "node")):
            out.append((parts[0].rstrip(":"), parts[5]))
    return out


def live(db: Database, name: str) -> hv.Live | None:
    return live_info(db, [name])[0].get(name)


# The round trip -------------------------------------------------------------------------------


def test_the_guides_cluster_round_trips(espresso: Any, tmp_path: Path) -> None:
    espresso.ok("add", "cluster", f"ip={PUBLIC}", "num-computes=2")
    text = report(espresso)
    assert "frontend:\n  name: frontend-0-0-0\n  ip: 137.110.119.118\n" in text
    assert "  - {name: hosted-vm-0-0-0, container: vm-container-0-0}\n" in text
    before = espresso.dump()
    out = apply(espresso, tmp_path, text)
    assert out == "no changes: the cluster is as the spec says\n"
    assert espresso.dump() == before
    # JSON the same.
    assert apply(espresso, tmp_path, report(espresso, fmt="json")).startswith("no changes")


def test_a_thousand_node_cluster_round_trips(espresso: Any, tmp_path: Path) -> None:
    espresso.ok("add", "cluster", PUBLIC, "1000", "mem-per-compute=512")
    espresso.ok("set", "host", "attr", "hosted-vm-0-1-7", "kvm_autostart", "true")
    text = report(espresso)
    assert text.count("\n  - {name: hosted-vm-") == 1000
    assert "  - {name: hosted-vm-0-1-7, container: vm-container-0-1, attributes: " in text
    before = espresso.dump()
    assert apply(espresso, tmp_path, text).startswith("no changes")
    assert espresso.dump() == before


def test_everything_a_spec_says_round_trips(espresso: Any, tmp_path: Path) -> None:
    espresso.ok("add", "cluster", PUBLIC, "3", "fe-fqdn=vi-1.example.org", "vlan=7")
    key = tmp_path / "owner"
    pub = espresso.ok("create", "keys", f"key={key}", "passphrase=no")
    (tmp_path / "owner.pub").write_text(pub)
    espresso.ok("add", "host", "key", FE, f"key={tmp_path / 'owner.pub'}", "description=ann")
    espresso.ok("set", "host", "attr", FE, "kvm_cpu_mode", "host-passthrough")
    espresso.ok("set", "host", "vm", "hosted-vm-0-1-0", "mem=4096", "cpus=4")
    espresso.ok("set", "host", "vm", "cdrom", "hosted-vm-0-0-0", "cdrom=/isos/debian.iso")
    espresso.ok("set", "host", "boot", "hosted-vm-0-0-1", "action=os")
    text = report(espresso)
    for part in ("fqdn: vi-1.example.org", "vlan: 7", "description: ann", "ssh-ed25519 ",
                 "kvm_cpu_mode: host-passthrough", "cdrom: /isos/debian.iso",
                 "boot: os"):  # fmt: skip
        assert part in text, (part, text)
    assert "name: hosted-vm-0-1-0, container: vm-container-0-1, cpus: 4, memory: 4096" in text
    before = espresso.dump()
    assert apply(espresso, tmp_path, text).startswith("no changes")
    assert espresso.dump() == before


# Creating from a spec is add cluster ---------------------------------------------------------


class _Other(RocksRunner):
    """`rocks` in this process against another database (FLIGHTDECK_DB for each call)."""

    def __call__(self, *argv: str) -> Any:
        import os

        saved = os.environ.get("FLIGHTDECK_DB")
        os.environ["FLIGHTDECK_DB"] = self.url
        try:
            return super().__call__(*argv)
        finally:
            if saved is None:
                os.environ.pop("FLIGHTDECK_DB", None)
            else:
                os.environ["FLIGHTDECK_DB"] = saved


def _site(url: str, tmp_path: Path) -> RocksRunner:
    """A second espresso in its own database (nothing runs there: the same test drivers)."""
    other = _Other(url)
    other.ok(*ESPRESSO)
    fe_uri = _test_uri(tmp_path, "frontend-0-0")
    other.ok("set", "host", "attr", "frontend-0-0", "libvirt_uri", fe_uri)
    for rank in (0, 1):
        name = f"vm-container-0-{rank}"
        other.ok("add", "host", name, "membership=VM Container", "rack=0", f"rank={rank}")
        other.ok("add", "host", "interface", name, "eth0", f"mac=52:54:00:fd:00:0{rank + 1}",
                 "ip=auto", "subnet=private")  # fmt: skip
        other.ok("set", "host", "attr", name, "libvirt_uri", _test_uri(tmp_path, name))
    return other


def _without_times(dump: dict[str, list[tuple[object, ...]]]) -> dict[str, Any]:
    return {k: v for k, v in dump.items() if k not in ("audit_log", "nonces")}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_creating_from_a_spec_is_add_cluster(espresso: Any, tmp_path: Path) -> None:
    """The same values through `add cluster` (here) and through a spec (a second site): the
    two databases are the same, row for row."""
    espresso.ok("add", "cluster", PUBLIC, "5", "cpus-per-compute=2", "mem-per-compute=2048",
                "disk-per-frontend=50", "vlan=9", "fe-fqdn=vi-1.example.org")  # fmt: skip
    other = _site(f"sqlite:///{tmp_path / 'other.db'}", tmp_path)
    spec = f"""\
version: 1
frontend: {{ip: {PUBLIC}, fqdn: vi-1.example.org, disk: 50}}
vlan: 9
computes: {{count: 5, cpus: 2, memory: 2048}}
"""
    out = apply(other, tmp_path, spec)
    assert out.splitlines()[0] == f"+ cluster {FE} on frontend-0-0 (vlan 9, {PUBLIC})"
    assert "+ hosted-vm-0-1-1 on vm-container-0-1" in out
    assert _without_times(other.dump()) == _without_times(espresso.dump())
    # And the report of the first site, applied to a fresh third: the same again.
    third = _site(f"sqlite:///{tmp_path / 'third.db'}", tmp_path)
    apply(third, tmp_path, report(espresso))
    assert _without_times(third.dump()) == _without_times(espresso.dump())


# Growing and shrinking ------------------------------------------------------------------------


def test_growing_2_32_4(espresso: Any, tmp_path: Path) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    spec = f"version: 1\nfrontend: {{name: {FE}, ip: {PUBLIC}}}\ncomputes: {{count: N}}\n"
    out = apply(espresso, tmp_path, spec.replace("N", "32"))
    assert out.count("\n+ ") + out.startswith("+ ") == 30
    assert out.splitlines()[-1] == "applied: 30 to add, 0 to change, 0 to remove"
    grown = computes(espresso)
    assert len(grown) == 32
    # As if add cluster had made 32 at once: the round robin and the slices go on.
    fresh = _site(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path)
    fresh.ok("add", "cluster", PUBLIC, "32")
    assert sorted(grown) == sorted(computes(fresh))
    out = apply(espresso, tmp_path, spec.replace("N", "4"))
    assert out.count("- hosted-vm") == 28
    left = computes(espresso)
    assert sorted(left) == sorted([("hosted-vm-0-0-0", "vm-container-0-0"),
                                   ("hosted-vm-0-1-0", "vm-container-0-1"),
                                   ("hosted-vm-0-0-1", "vm-container-0-0"),
                                   ("hosted-vm-0-1-1", "vm-container-0-1")])  # fmt: skip
    assert apply(espresso, tmp_path, spec.replace("N", "4")).startswith("no changes")


def test_explicit_nodes_add_and_remove_by_name(espresso: Any, tmp_path: Path) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    text = report(espresso).replace(
        "  - {name: hosted-vm-0-0-0, container: vm-container-0-0}\n",
        "  - {name: node-a, container: vm-container-0-1, memory: 3000}\n",
    )
    out = apply(espresso, tmp_path, text)
    assert out.startswith("- hosted-vm-0-0-0\n+ node-a on vm-container-0-1\n"), out
    assert ("node-a", "vm-container-0-1") in computes(espresso)
    assert "node-a, container: vm-container-0-1, memory: 3000" in report(espresso)


# Dry run and refusals -------------------------------------------------------------------------


def test_dry_run_changes_nothing(espresso: Any, db: Database, tmp_path: Path) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    espresso.ok("start", "host", "vm", "hosted-vm-0-0-0")
    text = report(espresso).replace("  memory: 1024\n  disk", "  memory: 2048\n  disk")
    text = text.replace("computes:\n", "computes:\n  attributes: {x: y}\n")
    before = espresso.dump()
    xml = hv.connect("vm-container-0-0", _uri(espresso, "vm-container-0-0")).xml(
        "hosted-vm-0-0-0"
    )
    out = apply(espresso, tmp_path, text, "dry-run=yes", "restart=yes")
    assert "~ hosted-vm-0-0-0 memory 1024 -> 2048 (needs a restart)" in out
    assert "~ hosted-vm-0-1-0 memory 1024 -> 2048\n" in out
    assert out.splitlines()[-1].endswith("nothing was changed")
    assert espresso.dump() == before
    conn = hv.connect("vm-container-0-0", _uri(espresso, "vm-container-0-0"))
    assert conn.xml("hosted-vm-0-0-0") == xml
    # A new cluster in a dry run is not made either.
    spec = "version: 1\nfrontend: {ip: 137.110.119.120}\ncomputes: {count: 3}\n"
    out = apply(espresso, tmp_path, spec, "dry-run=yes")
    assert out.startswith("+ cluster frontend-0-0-1 on frontend-0-0")
    assert espresso.dump() == before


def _uri(rocks: Any, host: str) -> str:
    out = rocks.ok("list", "host", "attr", host, "attr=libvirt_uri", "output-header=no")
    return str(out.split()[2])


def test_a_running_vm_is_not_changed_without_restart(
    espresso: Any, db: Database, tmp_path: Path
) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    espresso.ok("start", "host", "vm", "hosted-vm-0-0-0")
    text = report(espresso).replace(
        "  - {name: hosted-vm-0-0-0, container: vm-container-0-0}\n",
        "  - {name: hosted-vm-0-0-0, container: vm-container-0-0, memory: 2048, cpus: 2}\n",
    )
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    says = espresso.refused("apply", "cluster", f"file={path}", says="hosted-vm-0-0-0 is running")
    assert "memory 1024 -> 2048" in says and "restart=yes" in says
    # A running compute is not removed without it either.
    path.write_text(report(espresso).replace(
        "  - {name: hosted-vm-0-0-0, container: vm-container-0-0}\n", ""))  # fmt: skip
    espresso.refused("apply", "cluster", f"file={path}", says="its removal needs it stopped")
    # With restart=yes it is stopped, changed and started again.
    path.write_text(text)
    out = espresso.ok("apply", "cluster", f"file={path}", "restart=yes")
    assert "~ hosted-vm-0-0-0 memory 1024 -> 2048 (needs a restart)" in out
    assert "  restarted hosted-vm-0-0-0 on vm-container-0-0" in out
    now = live(db, "hosted-vm-0-0-0")
    assert now is not None and (now.state, now.mem_mb, now.cpus) == ("active", 2048, 2)


def test_removing_a_running_compute_with_restart(
    espresso: Any, db: Database, tmp_path: Path
) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    espresso.ok("start", "host", "vm", "hosted-vm-0-1-0")
    xml = espresso.ok("report", "host", "vm", "config", "hosted-vm-0-1-0")
    disk = re.search(r"<source file=['\"]([^'\"]+)['\"]", xml)
    assert disk is not None, xml
    conn = hv.connect("vm-container-0-1", _uri(espresso, "vm-container-0-1"))
    assert conn.volume(disk.group(1)) is not None  # made by the start
    spec = f"version: 1\nfrontend: {{ip: {PUBLIC}}}\ncomputes: {{count: 1}}\n"
    out = apply(espresso, tmp_path, spec, "restart=yes")
    assert "- hosted-vm-0-1-0 (running on vm-container-0-1: stopped first)" in out
    assert conn.domain("hosted-vm-0-1-0") is None
    assert conn.volume(disk.group(1)) is None


def test_what_apply_does_not_change_is_refused_with_the_key(
    espresso: Any, tmp_path: Path
) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    path = tmp_path / "spec.yaml"
    base = report(espresso)
    cases = [
        ("vlan: 2", "vlan: 3", "spec.yaml line 15: vlan: 2 -> 3 cannot be changed"),
        ("container: frontend-0-0", "container: vm-container-0-0",
         "frontend.container: frontend-0-0-0 is on frontend-0-0, not"),
        ("  - {name: hosted-vm-0-1-0, container: vm-container-0-1}",
         "  - {name: hosted-vm-0-1-0, container: vm-container-0-0}",
         "computes.nodes[1].container: hosted-vm-0-1-0 is on vm-container-0-1, not"),
        ("  - {name: hosted-vm-0-1-0, container: vm-container-0-1}",
         "  - {name: hosted-vm-0-1-0, container: vm-container-0-1, disk: 99}",
         "computes.nodes[1].disk: the disks of hosted-vm-0-1-0"),
        ("install-action: install vm frontend image", "install-action: nope",
         "frontend.install-action: no boot action 'nope'"),
        ("  - {name: hosted-vm-0-1-0, container: vm-container-0-1}",
         "  - {name: vm-container-0-0, container: vm-container-0-1}",
         "computes.nodes[1].name: host vm-container-0-0 is in the database but not in"),
    ]  # fmt: skip
    for old, new, says in cases:
        assert old in base, old
        path.write_text(base.replace(old, new))
        line = espresso.refused("apply", "cluster", f"file={path}", says=says)
        assert re.match(r"error - .*spec\.yaml line \d+: ", line), line


def test_keys_and_attributes_are_applied_exactly(espresso: Any, tmp_path: Path) -> None:
    espresso.ok("add", "cluster", PUBLIC, "1")
    espresso.ok("set", "host", "attr", FE, "old", "1")
    pubs = []
    for name in ("a", "b"):
        pubs.append(espresso.ok("create", "keys", f"key={tmp_path / name}", "passphrase=no"))
    (tmp_path / "a.pub").write_text(pubs[0])
    espresso.ok("add", "host", "key", FE, f"key={tmp_path / 'a.pub'}")
    from flightdeck.crypto import keys as ck

    b_ssh = ck.public_key_to_openssh(ck.parse_public_key(pubs[1]))
    text = report(espresso).replace("    old: '1'\n", "    new: two\n")
    text, n = re.subn(r"  keys:\n  - key: .*\n", f"  keys:\n  - {{key: '{b_ssh}'}}\n", text)
    assert n == 1, text
    out = apply(espresso, tmp_path, text)
    assert f"~ {FE} attribute old removed (was '1')" in out
    assert f"~ {FE} attribute new = 'two'" in out
    assert f"~ {FE} key - SHA256:" in out and f"~ {FE} key + SHA256:" in out
    keys = espresso.ok("list", "host", "key", FE)
    assert pubs[1].splitlines()[1] in keys and pubs[0].splitlines()[1] not in keys
    assert apply(espresso, tmp_path, report(espresso)).startswith("no changes")


def test_a_bad_key_is_named(espresso: Any, tmp_path: Path) -> None:
    espresso.ok("add", "cluster", PUBLIC, "1")
    text = report(espresso).replace("  run-action: os\n", "  run-action: os\n  keys:\n  - key: "
                                    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7\n")  # fmt: skip
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    espresso.refused("apply", "cluster", f"file={path}", says="frontend.keys[0].key: ")


# A failure halfway ----------------------------------------------------------------------------


class _Fails:
    """A preboot plugin that refuses one VM: the second restart of an apply fails."""

    name = "fails"
    order = 1

    def __init__(self, vm: str) -> None:
        self.vm = vm

    def preboot(self, ctx: Any) -> None:
        if ctx.vm == self.vm:
            raise RuntimeError("no capacity left")


def test_a_failure_halfway_leaves_database_and_hosts_as_before(
    espresso: Any, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    espresso.ok("add", "cluster", PUBLIC, "3")
    for vm in ("hosted-vm-0-0-0", "hosted-vm-0-1-0"):
        espresso.ok("start", "host", "vm", vm)
    from flightdeck.services import plugins

    monkeypatch.setattr(plugins, "discover", lambda: [_Fails("hosted-vm-0-1-0")])
    text = report(espresso).replace("  memory: 1024\n  disk", "  memory: 768\n  disk")
    text = text.replace("  - {name: hosted-vm-0-0-1, container: vm-container-0-0}\n", "")
    text = text.replace("computes:\n", "computes:\n  attributes: {kvm_autostart: 'false'}\n")
    before = espresso.dump()
    pairs = (("hosted-vm-0-0-0", "vm-container-0-0"), ("hosted-vm-0-1-0", "vm-container-0-1"))
    conns = {b: hv.connect(b, _uri(espresso, b)) for _vm, b in pairs}
    xml = {vm: conns[b].definition(vm) for vm, b in pairs}
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    r = espresso("apply", "cluster", f"file={path}", "restart=yes")
    assert r.code == 1 and r.out == ""
    assert "plugin fails (preboot) failed for hosted-vm-0-1-0" in r.err, r.err
    assert espresso.dump() == before
    for vm, box in pairs:
        assert conns[box].state(vm) == "active", vm
        assert conns[box].definition(vm) == xml[vm], vm
        now = live(db, vm)
        assert now is not None and now.mem_mb == 1024


def test_report_of_something_else_is_refused(espresso: Any) -> None:
    espresso.refused("report", "cluster", "vm-container-0-0", says="is not a virtual frontend")
    espresso.ok("add", "cluster", PUBLIC, "1")
    espresso.refused("report", "cluster", FE, "format=xml", says="format='xml': use yaml or json")


def test_the_service_reads_what_report_prints(espresso: Any, db: Database) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    spec = report_cluster(db, FE)
    assert apply_cluster(db, m.render_spec(spec), "x").lines == []
