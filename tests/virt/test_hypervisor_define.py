"""Redefining a domain that exists (on libvirt's test driver, which has libvirt's real rules).

The designer writes no <uuid>. libvirt gives such XML a fresh UUID and refuses a name that is
already defined under another one, so without `Hypervisor.define` carrying the UUID over, a
virtual frontend shut off after its install could never be started again (found end to end).
"""

from __future__ import annotations

import uuid

import libvirt
import pytest

from flightdeck.virt import hypervisor as hv
from flightdeck.virt.designer import VMSpec, design


def _xml(name: str, mem_mb: int = 128) -> str:
    return design(
        VMSpec(name=name, vcpus=1, mem_mb=mem_mb, attrs={"kvm_domain_type": "qemu"})
    ).to_xml()


def test_plain_libvirt_refuses_the_same_name_without_uuid() -> None:
    conn = libvirt.open("test:///default")
    name = f"raw-{uuid.uuid4().hex[:8]}"
    conn.defineXML(_xml(name))
    with pytest.raises(libvirt.libvirtError, match="already exists with uuid"):
        conn.defineXML(_xml(name))


def test_redefining_keeps_the_uuid_and_takes_the_new_xml() -> None:
    conn = hv.connect("test", "test:///default")
    name = f"redef-{uuid.uuid4().hex[:8]}"
    first = conn.define(_xml(name)).UUIDString()
    again = conn.define(_xml(name, mem_mb=256))
    assert again.UUIDString() == first
    assert conn.require(name).maxMemory() == 256 * 1024


def test_xml_with_its_own_uuid_is_left_alone() -> None:
    conn = hv.connect("test", "test:///default")
    name = f"own-{uuid.uuid4().hex[:8]}"
    mine = str(uuid.uuid4())
    xml = _xml(name).replace(f"<name>{name}</name>", f"<name>{name}</name><uuid>{mine}</uuid>")
    assert conn.define(xml).UUIDString() == mine
