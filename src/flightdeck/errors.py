"""One error hierarchy for the whole project.

Every error a user can cause is a `FlightdeckError`: it carries a one-line message that names the
thing and, where there is one, the fix, plus the process exit status the CLI uses. Anything else
that escapes is a bug and is shown with a traceback only when FLIGHTDECK_DEBUG=1.
"""

from __future__ import annotations


class FlightdeckError(Exception):
    """Base class: a message for the user and an exit status."""

    exit_code: int = 1
    #: A stable, machine-readable code (used by the Airboss JSON errors).
    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(FlightdeckError):
    """The command line itself is wrong (unknown command, bad parameter syntax)."""

    exit_code = 2
    code = "usage"


class UserError(FlightdeckError):
    """A value the user gave is invalid (malformed IP, negative count, bad disk spec...)."""

    code = "invalid"


class NotFound(FlightdeckError):
    """A named thing (host, appliance, network, key...) does not exist."""

    code = "not-found"


class Conflict(FlightdeckError):
    """The request clashes with what exists (duplicate name, MAC, IP, VLAN in use...)."""

    code = "conflict"


class PermissionDenied(FlightdeckError):
    """The caller may not do this (not root, key not authorised...)."""

    code = "forbidden"


class DriverError(FlightdeckError):
    """A driver (libvirt, netlink, dnsmasq...) failed; the message names the host and the call."""

    code = "driver"


class PlannerError(UserError):
    """The planner cannot satisfy the request (no free VLAN, MAC space exhausted, does not fit)."""

    code = "unsatisfiable"


class ActionFailed(FlightdeckError):
    """An allowed operation did not succeed (the VM runs already, its container is down...)."""

    code = "action-failed"


#: Top-level modules of the optional extras (pyproject.toml), and the extra that brings each.
EXTRA_MODULES = {
    **dict.fromkeys(
        ("sqlalchemy", "alembic", "psycopg", "libvirt", "libvirtmod", "pyroute2", "starlette",
         "uvicorn", "wsproto", "h11", "yaml", "jsonschema"),
        "server",
    ),
    "biscuit_auth": "tokens",
}


def missing_extra(exc: ModuleNotFoundError) -> UserError | None:
    """The one-line answer when `exc` is a module of an extra that is not installed (a client-
    only install running a server command), else None (a real bug)."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_MODULES.get(top)
    if extra is None:
        return None
    also = " (or 'flightdeck[server]', which has it too)" if extra == "tokens" else ""
    return UserError(
        f"this needs the {extra} extra: pip install 'flightdeck[{extra}]'{also} "
        f"(module {top} is not installed)"
    )
