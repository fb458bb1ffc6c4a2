"""Power one authorised VM: on, off (hard), install, reset, shutdown.

Each action is its own function taking the `Target` the authorisation resolved: the VM is
named to the lifecycle by its id (`HostIds`), never by a name that could be read as a host
expression (a VM called `rack0` is itself, not rack 0). Each returns what happened, in one
line, or raises `ActionFailed` with the lifecycle's reason (already running, container down).
"""

from __future__ import annotations

from collections.abc import Sequence

from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import HostIds
from flightdeck.errors import ActionFailed
from flightdeck.services import lifecycle
from flightdeck.services.airboss.access import Target
from flightdeck.services.bootactions import set_host_boot


def _one(outcomes: Sequence[lifecycle.Outcome]) -> str:
    (outcome,) = outcomes
    if not outcome.ok:
        raise ActionFailed(outcome.message)
    return outcome.message


def _vm(target: Target) -> HostIds:
    return HostIds.of(target.host_id)


def on(db: Database, target: Target) -> str:
    """Start the VM (its boot action decides between its disk and an install)."""
    return _one(lifecycle.start_vms(db, _vm(target)))


def off(db: Database, target: Target) -> str:
    """Hard power-off: destroy and undefine, as the original."""
    return _one(lifecycle.stop_vms(db, _vm(target)))


def install(db: Database, target: Target) -> str:
    """Boot action install, then start (refused if its install kernel is missing here)."""
    set_host_boot(db, _vm(target), "install")
    return _one(lifecycle.start_vms(db, _vm(target)))


def reset(db: Database, target: Target) -> str:
    """The reset button: the guest reboots at once."""
    return _one(lifecycle.reset_vms(db, _vm(target)))


def shutdown(db: Database, target: Target) -> str:
    """ACPI power button: the guest shuts down when its OS is done."""
    return _one(lifecycle.shutdown_vms(db, _vm(target)))
