"""DESIGN.md's layering, enforced: only the drivers talk to hypervisors, kernels and processes."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "flightdeck"
DRIVERS = ("virt", "net", "pxe")
#: Imports that reach outside the process: only driver packages may use them.
DRIVER_ONLY = {"libvirt", "pyroute2", "subprocess"}
#: What the pure layers may never import.
PURE = {"planner": {"sqlalchemy", "libvirt", "pyroute2", "subprocess", "socket"}}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_drivers_reach_libvirt_netlink_and_processes() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        package = path.relative_to(SRC).parts[0]
        if package in DRIVERS:
            continue
        bad = _imports(path) & DRIVER_ONLY
        if bad:
            offenders.append(f"{path.relative_to(SRC)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_pure_layers_stay_pure() -> None:
    for package, banned in PURE.items():
        for path in (SRC / package).rglob("*.py"):
            bad = _imports(path) & banned
            assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"
