"""Disk volumes on the real libvirtd's directory pools (FLIGHTDECK_TEST_LIBVIRT).

A VM's existing disk is found without refreshing its pool (a refresh probes every file of the
directory, twice a start); a file removed behind libvirt's back must still be seen as gone, and
made again by the next start. libvirt's test driver has no files, so this needs the daemon.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from flightdeck.virt import hypervisor as hv


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[hv.Hypervisor]:
    """The suite's libvirtd; the pool this test makes (for its tmp_path) is removed after."""
    uri = os.environ.get("FLIGHTDECK_TEST_LIBVIRT")
    if not uri:
        if os.environ.get("CI"):
            pytest.fail("FLIGHTDECK_TEST_LIBVIRT is not set in CI: scripts/test.sh sets it")
        pytest.skip("FLIGHTDECK_TEST_LIBVIRT is not set (scripts/test.sh starts libvirtd)")
    conn = hv.connect("local", uri)
    try:
        yield conn
    finally:
        for pool in conn.conn.listAllStoragePools(0):
            if f"<path>{tmp_path}" in pool.XMLDesc(0):
                if pool.isActive():
                    pool.destroy()
                pool.undefine()


def test_a_known_volume_is_found_without_a_pool_refresh_and_a_removed_one_is_made_again(
    daemon: hv.Hypervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = tmp_path / "disks" / "vm.vda"
    disk.parent.mkdir()
    assert daemon.create_volume(str(disk), 1, "qcow2") is True
    assert disk.exists()

    refreshes: list[str] = []
    real = libvirt.virStoragePool.refresh

    def counted(pool: libvirt.virStoragePool, flags: int = 0) -> int:
        refreshes.append(pool.name())
        return int(real(pool, flags))

    monkeypatch.setattr(libvirt.virStoragePool, "refresh", counted)
    assert daemon.create_volume(str(disk), 1, "qcow2") is False  # there: left as it is
    assert daemon.volume(str(disk)) is not None
    assert refreshes == []

    disk.unlink()  # behind libvirt's back: its pool still lists the volume
    assert daemon.volume(str(disk)) is None
    assert refreshes, "a volume whose file is gone must be looked for in a refreshed pool"
    assert daemon.create_volume(str(disk), 1, "qcow2") is True
    assert disk.exists()
