"""Starting, stopping and watching VMs through libvirt's test driver, one per container.

Each container gets its own `test:///<file>` URI, so each has its own hypervisor state (the
driver keeps one state per opened file; Flightdeck keeps one connection per URI per process).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("libvirt")

from flightdeck.virt import hypervisor as hv

EXAMPLE_PLUGINS = Path(__file__).resolve().parents[2] / "docs" / "examples" / "plugins"
NOWHERE = "qemu+tcp://127.0.0.1:1/system"


def _node(tmp_path: Path, name: str) -> str:
    node = tmp_path / f"{name}.xml"
    node.write_text("<node/>\n")
    return f"test://{node}"


@pytest.fixture
def site(espresso: Any, tmp_path: Path) -> Any:
    """The guide's espresso and its two containers, plus a third, each its own test driver."""
    rocks = espresso
    rocks.ok("add", "host", "vm-container-0-2", "membership=VM Container", "rack=0", "rank=2")
    rocks.ok(
        "add",
        "host",
        "interface",
        "vm-container-0-2",
        "eth0",
        "mac=52:54:00:fd:00:09",
        "ip=auto",
        "subnet=private",
    )
    for host in ("frontend-0-0", "vm-container-0-0", "vm-container-0-1", "vm-container-0-2"):
        rocks.ok("set", "host", "attr", host, "libvirt_uri", _node(tmp_path, host))
    # The frontend needs a public interface for the virtual frontend's eth1.
    rocks.ok("set", "attr", "kvm_domain_type", "qemu")
    rocks.ok("set", "attr", "kvm_disk_dir", str(tmp_path / "disks"))
    rocks.ok("set", "attr", "kvm_connect_timeout", "5")
    rocks.ok(
        "set",
        "bootaction",
        "install vm frontend",
        "kernel=/boot/fd/vmlinuz",
        "ramdisk=/boot/fd/initrd.gz",
    )
    return rocks


def _original_installer(rocks: Any, frontend: str = "frontend-0-0-0") -> None:
    """The virtual frontend installs with the original's kernel boot, not the frontend image."""
    rocks.ok("set", "host", "installaction", frontend, "action=install vm frontend")


def _states(rocks: Any) -> dict[str, str]:
    rows = rocks.ok("list", "host", "vm", "status=y", "output-format=json")
    import json

    return {r["vm_host"]: r["status"] for r in json.loads(rows)}


def test_cluster_starts_in_parallel_and_a_dead_container_is_named(site: Any) -> None:
    rocks = site
    rocks.ok("set", "host", "attr", "vm-container-0-2", "libvirt_uri", NOWHERE)
    rocks.ok("add", "cluster", "137.110.119.118", "9", "disk-per-compute=1", "disk-per-frontend=1")
    _original_installer(rocks)
    vms = ["frontend-0-0-0", *(f"hosted-vm-0-{r}-{s}" for r in range(3) for s in range(3))]
    r = rocks("start", "host", "vm", *vms)
    assert r.code == 1, r.err
    dead = [f"hosted-vm-0-2-{s}" for s in range(3)]
    for vm in dead:
        assert f"{vm}" in r.err
    assert "container vm-container-0-2 does not answer" in r.err
    assert r.err.strip().splitlines()[-1].startswith("error - 3 of 10 VM(s) failed"), r.err
    for vm in vms:
        if vm not in dead:
            assert "on " in r.out and vm in r.out
    states = _states(rocks)
    assert {states[v] for v in vms if v not in dead} == {"active"}
    assert {states[v] for v in dead} == {"nostate-error"}
    table = rocks.ok("list", "cluster", "status=y")
    assert "hosted-vm-0-2-0  VM   nostate-error" in " ".join(table.split("  ")) or (
        "nostate-error" in table
    )


def test_start_stop_pause_resume_and_refusals(site: Any) -> None:
    rocks = site
    rocks.ok("add", "host", "vm", "vm-container-0-0", "membership=Compute", "mem=256")
    rocks.ok("start", "host", "vm", "compute-0-0-0")
    assert _states(rocks)["compute-0-0-0"] == "active"
    again = rocks("start", "host", "vm", "compute-0-0-0")
    assert again.code == 1 and "already running" in again.err
    rocks.ok("pause", "host", "vm", "compute-0-0-0")
    assert _states(rocks)["compute-0-0-0"] == "paused"
    paused = rocks("start", "host", "vm", "compute-0-0-0")
    assert "resume it with 'rocks resume host vm compute-0-0-0'" in paused.err
    rocks.ok("resume", "host", "vm", "compute-0-0-0")
    assert _states(rocks)["compute-0-0-0"] == "active"
    rocks.ok("stop", "host", "vm", "compute-0-0-0")
    assert _states(rocks)["compute-0-0-0"] == "nostate"


def test_volumes_are_created_at_first_start_with_the_databases_size(
    site: Any, tmp_path: Path
) -> None:
    rocks = site
    rocks.ok("add", "host", "vm", "vm-container-0-1", "membership=Compute", "disksize=7")
    rocks.ok("start", "host", "vm", "compute-0-1-0")
    conn = hv.connect("vm-container-0-1", _node_uri(tmp_path, "vm-container-0-1"))
    vol = conn.volume(str(tmp_path / "disks" / "compute-0-1-0.vda"))
    assert vol is not None
    assert vol.info()[1] == 7 * 1000**3


def _node_uri(tmp_path: Path, name: str) -> str:
    return f"test://{tmp_path / f'{name}.xml'}"


def test_malformed_attribute_starts_nothing(site: Any, tmp_path: Path) -> None:
    rocks = site
    rocks.ok("add", "host", "vm", "vm-container-0-0", "membership=Compute")
    # Refused when set; a database from before that check may still hold it.
    rocks.refused("set", "host", "attr", "compute-0-0-0", "kvm_device_0", "<hostdev><source>",
                  says="kvm_device_0")  # fmt: skip
    rocks.store_host_attr("compute-0-0-0", "kvm_device_0", "<hostdev><source>")
    r = rocks("start", "host", "vm", "compute-0-0-0")
    assert r.code == 1
    assert "kvm_device_0" in r.err and "compute-0-0-0" in r.err
    conn = hv.connect("vm-container-0-0", _node_uri(tmp_path, "vm-container-0-0"))
    assert conn.domain("compute-0-0-0") is None
    assert conn.volume(str(tmp_path / "disks" / "compute-0-0-0.vda")) is None


def test_example_plugin_moves_tags_and_releases(
    site: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rocks = site
    log = tmp_path / "released.log"
    monkeypatch.setenv("FLIGHTDECK_PLUGIN_DIR", str(EXAMPLE_PLUGINS))
    monkeypatch.setenv("PIN_AND_TAG_LOG", str(log))
    rocks.ok("add", "host", "vm", "vm-container-0-0", "membership=Compute")
    rocks.ok("set", "host", "attr", "compute-0-0-0", "pin_container", "vm-container-0-1")
    out = rocks.ok("start", "host", "vm", "compute-0-0-0")
    assert "on vm-container-0-1" in out
    assert "vm-container-0-1" in rocks.ok("list", "host", "vm", "compute-0-0-0")
    conn = hv.connect("vm-container-0-1", _node_uri(tmp_path, "vm-container-0-1"))
    xml = conn.xml("compute-0-0-0")
    assert "<description>started by Flightdeck on vm-container-0-1</description>" in xml
    rocks.ok("stop", "host", "vm", "compute-0-0-0", "terminate=yes")
    assert log.read_text() == "released compute-0-0-0 on vm-container-0-1\n"


def test_failing_plugin_aborts_with_its_name(
    site: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rocks = site
    plugdir = tmp_path / "plugins"
    plugdir.mkdir()
    (plugdir / "broken.py").write_text(
        "class Plugin:\n"
        "    name = 'broken'\n"
        "    def preboot(self, ctx):\n"
        "        raise RuntimeError('no LUN left')\n"
    )
    monkeypatch.setenv("FLIGHTDECK_PLUGIN_DIR", str(plugdir))
    rocks.ok("add", "host", "vm", "vm-container-0-0", "membership=Compute")
    r = rocks("start", "host", "vm", "compute-0-0-0")
    assert r.code == 1
    assert "plugin broken (preboot) failed for compute-0-0-0: RuntimeError: no LUN left" in r.err
    conn = hv.connect("vm-container-0-0", _node_uri(tmp_path, "vm-container-0-0"))
    assert conn.domain("compute-0-0-0") is None


def test_autostart_save_at_shutdown_and_restore_at_boot(site: Any, tmp_path: Path) -> None:
    rocks = site
    rocks.ok("add", "host", "vm", "vm-container-0-0", "membership=Compute")
    rocks.ok("add", "host", "vm", "vm-container-0-0", "membership=Compute")
    rocks.ok("set", "host", "attr", "compute-0-0-0", "kvm_autostart", "true")
    rocks.ok("start", "host", "vm", "compute-0-0-0", "compute-0-0-1")
    conn = hv.connect("vm-container-0-0", _node_uri(tmp_path, "vm-container-0-0"))
    assert conn.autostart(conn.require("compute-0-0-0"))
    assert not conn.autostart(conn.require("compute-0-0-1"))
    out = rocks.ok("stop", "host", "vms", "vm-container-0-0")
    assert out == "saved compute-0-0-0\n"
    assert conn.has_managed_save("compute-0-0-0")
    assert _states(rocks)["compute-0-0-0"] == "shutoff"
    assert _states(rocks)["compute-0-0-1"] == "active", "only autostart VMs are saved"
    out = rocks.ok("start", "host", "vms", "vm-container-0-0")
    assert out == "resumed compute-0-0-0 from its saved state on vm-container-0-0\n"
    assert _states(rocks)["compute-0-0-0"] == "active"


def test_report_config_is_what_start_defines(site: Any, tmp_path: Path) -> None:
    rocks = site
    rocks.ok("add", "host", "vm", "vm-container-0-0", "membership=Compute")
    xml = rocks.ok("report", "host", "vm", "config", "compute-0-0-0")
    assert xml.startswith('<domain type="qemu">')
    rocks.ok("start", "host", "vm", "compute-0-0-0")
    conn = hv.connect("vm-container-0-0", _node_uri(tmp_path, "vm-container-0-0"))
    live = conn.xml("compute-0-0-0")
    import xml.etree.ElementTree as ET

    assert ET.fromstring(live).findtext("name") == "compute-0-0-0"
    assert 'bridge="eth0"' in xml


def test_remove_cluster_destroys_domains_and_deletes_volumes(site: Any, tmp_path: Path) -> None:
    rocks = site
    rocks.ok("add", "cluster", "137.110.119.118", "2", "disk-per-compute=1", "disk-per-frontend=1")
    _original_installer(rocks)
    rocks.ok("start", "host", "vm", "hosted-vm-0-0-0", "hosted-vm-0-1-0")
    c0 = hv.connect("vm-container-0-0", _node_uri(tmp_path, "vm-container-0-0"))
    disk = str(tmp_path / "disks" / "hosted-vm-0-0-0.vda")
    assert c0.domain("hosted-vm-0-0-0") is not None and c0.volume(disk) is not None
    out = rocks.ok("remove", "cluster", "frontend-0-0-0")
    assert out == "removed cluster frontend-0-0-0 (VLAN 2) and 2 VM(s)\n"
    assert c0.domain("hosted-vm-0-0-0") is None
    assert c0.volume(disk) is None
    assert "hosted-vm" not in rocks.ok("list", "host")


def test_remove_host_vm_keep_disks(site: Any, tmp_path: Path) -> None:
    rocks = site
    rocks.ok("add", "host", "vm", "vm-container-0-0", "membership=Compute", "disksize=1")
    rocks.ok("start", "host", "vm", "compute-0-0-0")
    rocks.ok("remove", "host", "vm", "compute-0-0-0", "keep-disks=yes")
    c0 = hv.connect("vm-container-0-0", _node_uri(tmp_path, "vm-container-0-0"))
    assert c0.domain("compute-0-0-0") is None
    assert c0.volume(str(tmp_path / "disks" / "compute-0-0-0.vda")) is not None


def test_remove_with_a_dead_container_changes_nothing_unless_forced(site: Any) -> None:
    rocks = site
    rocks.ok("add", "host", "vm", "vm-container-0-2", "membership=Compute")
    rocks.ok("set", "host", "attr", "vm-container-0-2", "libvirt_uri", NOWHERE)
    before = rocks.dump()
    r = rocks("remove", "host", "vm", "compute-0-2-0")
    assert r.code == 1
    assert "vm-container-0-2 does not answer" in r.err and "force=yes" in r.err
    assert rocks.dump() == before
    r = rocks("remove", "host", "vm", "compute-0-2-0", "force=yes")
    assert r.code == 0 and r.err.startswith("warning - compute-0-2-0:")
    assert "compute-0-2-0" not in rocks.ok("list", "host")


def test_installed_plugins_come_from_entry_points_read_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package's `flightdeck.plugins` entry point is a plugin; the metadata of every
    installed package is read once per process (~5 ms each time: half a power-on's CPU)."""
    from flightdeck.services import plugins

    site_dir = tmp_path / "site"
    (site_dir / "fd_test_plugin-1.0.dist-info").mkdir(parents=True)
    (site_dir / "fd_test_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fd-test-plugin\nVersion: 1.0\n")
    (site_dir / "fd_test_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[flightdeck.plugins]\ntagger = fd_test_plugin:Tagger\n")
    (site_dir / "fd_test_plugin.py").write_text(
        "class Tagger:\n    name = 'tagger'\n    order = 5\n"
        "    def preboot(self, ctx):\n        return None\n")
    monkeypatch.syspath_prepend(str(site_dir))
    monkeypatch.setenv("FLIGHTDECK_PLUGIN_DIR", str(tmp_path / "none"))
    reads: list[str] = []
    real = plugins.entry_points

    def counted(**kw: Any) -> Any:
        reads.append(kw["group"])
        return real(**kw)

    monkeypatch.setattr(plugins, "entry_points", counted)
    plugins.installed.cache_clear()
    try:
        first, second = plugins.discover(), plugins.discover()
        assert [p.name for p in first] == ["tagger"] and first[0] is not second[0]
        assert reads == ["flightdeck.plugins"]
    finally:
        plugins.installed.cache_clear()
