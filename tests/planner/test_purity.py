"""The planner stays pure: standard library and flightdeck.errors only (DESIGN.md, "Layers")."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import flightdeck.planner

PLANNER_DIR = Path(flightdeck.planner.__file__).parent
#: Standard-library modules the planner may use: nothing that does I/O, processes or randomness.
ALLOWED_STDLIB = {
    "__future__",
    "collections",
    "dataclasses",
    "ipaddress",
    "math",
    "posixpath",
    "re",
    "typing",
}
ALLOWED_PROJECT = {"flightdeck.errors", "flightdeck.attrsubject", "flightdeck.planner"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
    return names


def test_planner_imports_only_pure_modules() -> None:
    modules = sorted(PLANNER_DIR.glob("*.py"))
    assert {m.name for m in modules} >= {
        "__init__.py",
        "addresses.py",
        "disks.py",
        "macs.py",
        "names.py",
        "placement.py",
        "vlans.py",
    }
    offenders: dict[str, set[str]] = {}
    for module in modules:
        bad = {
            name
            for name in _imports(module)
            if name.split(".")[0] not in ALLOWED_STDLIB
            and not any(name == p or name.startswith(p + ".") for p in ALLOWED_PROJECT)
        }
        if bad:
            offenders[module.name] = bad
    assert offenders == {}


def test_allowed_stdlib_names_are_real_stdlib_modules() -> None:
    assert ALLOWED_STDLIB.issubset(sys.stdlib_module_names | {"__future__"})
