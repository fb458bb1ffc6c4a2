"""api/operations.py: the declarations are complete, distinct, and bound to real services."""

from __future__ import annotations

import inspect

from flightdeck.api import operations as ops


def test_each_operation_has_one_method_and_path() -> None:
    routes = [(op.method, op.path) for op in ops.OPERATIONS]
    assert len(set(routes)) == len(routes)
    assert all(path.startswith("/v1/") for _m, path in routes)


def test_every_power_action_is_a_function_of_the_power_service() -> None:
    """The actions are declared once (the request's enum); each is served by the function of
    services.airboss.power with its name, which takes the database and the authorised VM."""
    from flightdeck.services.airboss import power

    for action in ops.POWER_ACTIONS:
        fn = getattr(power, action)
        assert list(inspect.signature(fn).parameters) == ["db", "target"], action


def test_audit_names_fit_the_audit_log() -> None:
    """The audit log keeps 64 characters of an operation's name."""
    from flightdeck.services.airboss.audit import LIMITS

    samples = [
        *(ops.POWER.audit(ops.PowerRequest("t", a)) for a in ops.POWER_ACTIONS),
        ops.MACS.audit(ops.MacsRequest("t", True)),
        ops.CDROM.audit(ops.CdromRequest("t", "none")),
        *(ops.CONSOLE.audit(ops.ConsoleRequest(target="t", kind=k)) + " (web)"
          for k in ops.CONSOLE_KINDS),
        *(ops.CONSOLE_TOKEN.audit(ops.TokenRequest("t", k)) for k in ops.CONSOLE_KINDS),
    ]
    assert all(len(s) <= LIMITS["operation"] for s in samples)
    assert "power install" in samples and "cdrom clear" in samples


def test_importing_the_declarations_loads_no_server_package() -> None:
    """The client imports this module; the services are imported only by `serve`."""
    import subprocess
    import sys

    code = ("import sys\nimport flightdeck.api.operations, flightdeck.api.openapi\n"
            "print(sorted(m for m in sys.modules if m.startswith(('sqlalchemy', 'libvirt', "
            "'starlette', 'flightdeck.services', 'flightdeck.db'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"
