"""virt.console on libvirt's test driver: what a console needs of a domain that is not running."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("libvirt")

from flightdeck.errors import Conflict
from flightdeck.virt import hypervisor as hv
from flightdeck.virt.console import SerialStream, vnc_port


def test_a_vm_that_is_not_running_has_no_console(tmp_path: Path) -> None:
    node = tmp_path / "node.xml"
    node.write_text("<node/>\n")
    conn = hv.connect("c0", f"test://{node}")
    with pytest.raises(Conflict, match="is not running: power it on first"):
        vnc_port(conn, "nosuch-vm")
    with pytest.raises(Conflict, match="is not running: power it on first"):
        SerialStream.open(conn, "nosuch-vm")
