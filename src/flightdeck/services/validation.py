"""The attributes Flightdeck understands, checked when they are set as when they are used.

Each entry is the very function the designer, the network planner or a service runs on the
resolved value when a VM starts or a network is synced; `rocks set attr`, `set appliance attr`
and `set host attr` run it on the value before storing it, so a malformed `cpu_mode` or a
`bridge_hello_time` of 0.5 s is refused at once, with the message it would get later, instead
of at the next start or sync. Attributes nobody registered here are stored as given (Rocks
sites keep their own). A value some check can only judge with the host's other settings (a CPU
`<topology>` against the VM's vCPUs) is still checked again at use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from flightdeck.attrsubject import Subject

#: A check: the value and whose it is; raises UserError with the message it gets at use.
Check = Callable[[str, Subject], Any]

_DESIGNER = "flightdeck.virt.designer"
_NETWORK = "flightdeck.planner.network"

#: Attribute -> (module, function). Imported only when that attribute is set, so `rocks set
#: attr` does not pay for libvirt to store a plain value.
CHECKS: dict[str, tuple[str, str]] = {
    "cpu_mode": (_DESIGNER, "check_cpu_mode"),
    "kvm_cpu_pinning": (_DESIGNER, "check_cpu_pinning"),
    "HVM_Features": (_DESIGNER, "check_features"),
    "kvm_domain_type": (_DESIGNER, "check_domain_type"),
    "kvm_memballoon": (_DESIGNER, "check_memballoon"),
    "kvm_vlan_mode": (_NETWORK, "check_vlan_mode"),
    "bridge_stp_forward_delay": (_NETWORK, "check_forward_delay"),
    "bridge_hello_time": (_NETWORK, "check_hello_time"),
    "tx_offload": (_NETWORK, "check_tx_offload"),
    "kvm_network_format": ("flightdeck.services.network", "check_network_format"),
    "kvm_connect_timeout": ("flightdeck.services.vm_status", "check_connect_timeout"),
    "kvm_mem_mb": ("flightdeck.services.allocation", "check_mem_mb"),
    "kvm_mem_overcommit": ("flightdeck.services.allocation", "check_overcommit"),
    "kvm_power_parallel": ("flightdeck.services.clusterpower", "check_power_parallel"),
    "kvm_shutdown_grace": ("flightdeck.services.clusterpower", "check_shutdown_grace"),
    "kvm_frontend_ready_timeout": ("flightdeck.services.clusterpower", "check_ready_timeout"),
    "airboss_audit_days": ("flightdeck.services.airboss.retention", "check_days"),
}
#: `kvm_device_0`, `kvm_device_1`...: checked by the designer's device check.
DEVICE = (_DESIGNER, "check_device")


def _function(where: tuple[str, str]) -> Check:
    module, name = where
    fn: Check = getattr(importlib.import_module(module), name)
    return fn


def check(name: str, value: str, who: Subject) -> None:
    """Refuse `value` for attribute `name` of `who` as its use would (nothing for others)."""
    if name in CHECKS:
        _function(CHECKS[name])(value, who)
        return
    if name.startswith("kvm_device_") and name[len("kvm_device_") :].isdigit():
        module, fn = DEVICE
        getattr(importlib.import_module(module), fn)(value, who, name)


def understood() -> list[str]:
    """The attribute names checked here (`kvm_device_N` stands for every N)."""
    return sorted([*CHECKS, "kvm_device_N"])
