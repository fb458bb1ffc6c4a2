"""DESIGN.md's layering, enforced on the import graph of `src/flightdeck`.

The graph has an edge for every `import` and `from ... import` anywhere in a module (inside
functions and `if TYPE_CHECKING:` blocks too), and for every string constant that is exactly
the dotted path of one of our modules (a daemon started by its module's path, a module loaded
by name): a tie by name is a tie. On that graph:

* no cycles, between modules or between packages (a lazy import is no excuse);
* every edge runs down the layers below (or stays within one layer);
* only the driver packages start processes or talk to hypervisors and kernels;
* the pure layers stay pure.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = SRC / "flightdeck"
DRIVERS = ("virt", "net", "pxe", "process")
#: Imports that reach outside the process: only driver packages may use them.
DRIVER_ONLY = {"libvirt", "pyroute2", "subprocess"}
#: What the pure layers may never import.
PURE = {"planner": {"sqlalchemy", "libvirt", "pyroute2", "subprocess", "socket"}}

#: The layers, top first, as module-path prefixes (the longest prefix decides).
LAYERS: dict[str, tuple[str, ...]] = {
    # The programs: the rocks grammar and its commands, the Airboss, pilot's entry point.
    "entry": ("flightdeck.cli", "flightdeck.commands", "flightdeck.airboss",
              "flightdeck.pilot.main", "flightdeck.pilot.__main__"),
    # The owner's client library (no database, no libvirt, no server).
    "client": ("flightdeck.pilot",),
    # The owner operations, declared once (they call the services when the Airboss serves).
    "operations": ("flightdeck.api",),
    # The use cases: the only place that opens a transaction.
    "services": ("flightdeck.services",),
    "db": ("flightdeck.db",),
    "drivers": tuple(f"flightdeck.{d}" for d in (*DRIVERS, "crypto")),
    # Pure: decides from plain values (drivers apply what it decides).
    "planner": ("flightdeck.planner",),
    # The owner API's vocabulary: the contract both ends share.
    "contract": ("flightdeck.api.wire",),
    "foundation": ("flightdeck", "flightdeck.errors", "flightdeck.config", "flightdeck.logsafe",
                   "flightdeck.attrsubject"),
}
#: Which layers each layer may import (besides itself).
MAY_USE: dict[str, set[str]] = {
    "entry": {"client", "operations", "services", "db", "drivers", "planner", "contract",
              "foundation"},
    "client": {"operations", "drivers", "contract", "foundation"},
    "operations": {"services", "db", "contract", "foundation"},
    "services": {"db", "drivers", "planner", "contract", "foundation"},
    "db": {"planner", "foundation"},
    "drivers": {"planner", "foundation"},
    "planner": {"foundation"},
    "contract": {"foundation"},
    "foundation": set(),
}


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = modules()


def _resolve(name: str) -> str | None:
    """The module `name` is, or is in (`a.b.C` -> `a.b`), if it is one of ours."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _names(text: str) -> bool:
    """Whether a string constant is the path of one of our modules: `flightdeck.a.b`, or a
    package that `python -m` runs (`flightdeck.airboss`), never a file name that merely looks
    like one (`flightdeck.db`, the SQLite file)."""
    if text not in MODULES:
        return False
    return text.count(".") >= 2 or f"{text}.__main__" in MODULES


def _targets(module: str, path: Path) -> Iterator[str]:
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_pkg else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _names(node.value):
            yield node.value


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for name in _targets(module, path):
            found = _resolve(name)
            if found and found != module and found != "flightdeck":
                edges[module].add(found)
    return edges


GRAPH = graph()


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _place(module: str) -> tuple[str, str]:
    """(the layer table's prefix `module` falls under, its layer): the longest prefix wins."""
    best, layer = "flightdeck", "foundation"
    for name, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, layer = prefix, name
    return best, layer


def layer_of(module: str) -> str:
    return _place(module)[1]


def unit_of(module: str) -> str:
    """The package (or contract module) `module` belongs to, as the layer table names them."""
    return _place(module)[0]


def test_the_graph_sees_lazy_type_only_and_by_name_imports() -> None:
    """The checker itself: the ties that used to hide are edges."""
    assert "flightdeck.services.bootserver" in GRAPH["flightdeck.services.dhcp_service"]  # path
    assert "flightdeck.airboss.web" in GRAPH["flightdeck.airboss.app"]  # importlib by name
    assert "flightdeck.services.airboss.power" in GRAPH["flightdeck.api.operations"]  # lazy
    assert "flightdeck.db.engine" in GRAPH["flightdeck.api.operations"]  # TYPE_CHECKING
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(GRAPH) == []


def test_no_import_cycles_between_packages() -> None:
    """Between the packages of the layer table (the contract, `api.wire`, counts as its own)."""
    units: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        here = unit_of(module)
        units.setdefault(here, set())
        units[here].update(unit_of(t) for t in targets if unit_of(t) != here)
    # The entry points are one layer whose parts may call each other (pilot's main is the
    # cli's dispatcher; a command starts the Airboss daemon): the check is on the rest.
    entry = {u for u in units if layer_of(u) == "entry"}
    rest = {u: {t for t in ts if t not in entry} for u, ts in units.items() if u not in entry}
    assert _cycles(rest) == []


def test_imports_run_down_the_layers() -> None:
    offenders = []
    for module, targets in sorted(GRAPH.items()):
        mine = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if theirs != mine and theirs not in MAY_USE[mine]:
                offenders.append(f"{module} ({mine}) -> {target} ({theirs})")
    assert not offenders, "\n".join(offenders)


def test_every_module_is_in_a_layer() -> None:
    unplaced = [m for m in MODULES if not any(
        m == p or m.startswith(p + ".") for ps in LAYERS.values() for p in ps if p != "flightdeck"
    ) and m != "flightdeck"]
    assert unplaced == []


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
    for path in ROOT.rglob("*.py"):
        package = path.relative_to(ROOT).parts[0]
        if package in DRIVERS:
            continue
        bad = _imports(path) & DRIVER_ONLY
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
        text = path.read_text(encoding="utf-8")
        for call in ("os.fork(", "os.execv", "os.posix_spawn", "os.system(", "os.popen("):
            if call in text:
                offenders.append(f"{path.relative_to(ROOT)} calls {call}")
    assert not offenders, "\n".join(offenders)


def test_pure_layers_stay_pure() -> None:
    for package, banned in PURE.items():
        for path in (ROOT / package).rglob("*.py"):
            bad = _imports(path) & banned
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
