"""Lifecycle plugins: `allocate` and `preboot` before a VM starts, `disallocate` after it stops.

As the guide's 6.2 plugins, modernised: a plugin is any object with a `name`, an `order` (lower
runs first; ties by name) and one or more of the methods `allocate(ctx)`, `preboot(ctx)` and
`disallocate(ctx)`. Plugins are found in two places:

- the entry point group `flightdeck.plugins` of installed packages (the object it names, or an
  instance if it names a class);
- `*.py` files in the plugin directory (`$FLIGHTDECK_PLUGIN_DIR`, else `<state dir>/plugins`),
  each defining `plugin` (an object) or `Plugin` (a class).

`allocate` runs inside a write transaction (`ctx.session`) and may change the database, e.g.
move the VM to another container. `preboot` gets the generated domain XML (`ctx.xml`) and may
return replacement XML; the last plugin that returns a non-empty string wins. `disallocate`
runs after `rocks stop host vm ... terminate=yes`. A plugin that raises aborts the operation
with an error naming the plugin, the hook and the VM.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from flightdeck import config
from flightdeck.errors import FlightdeckError, UserError

GROUP = "flightdeck.plugins"
HOOKS = ("allocate", "preboot", "disallocate")


class PluginError(UserError):
    code = "plugin"


@dataclass
class PluginContext:
    """What a plugin sees: the VM, its container, and per hook a session or the XML."""

    vm: str
    container: str | None
    session: Session | None = None
    xml: str | None = None


def plugin_dir() -> Path:
    return Path(os.environ.get("FLIGHTDECK_PLUGIN_DIR") or config.state_dir() / "plugins")


def _instance(obj: Any) -> Any:
    return obj() if isinstance(obj, type) else obj


@functools.cache
def installed() -> tuple[Any, ...]:
    """What the installed packages' entry points name, loaded once per process.

    Reading every installed package's metadata costs ~5 ms: it was half of the CPU of a power
    on in the Airboss. A package installed later is seen after a restart, as any new code is
    (the plugin directory's files, below, are read at every operation). A failure to load is
    not remembered: the next operation tries again, and says so again.
    """
    loaded: list[Any] = []
    for ep in entry_points(group=GROUP):
        try:
            loaded.append(ep.load())
        except Exception as exc:
            raise PluginError(
                f"plugin entry point {ep.name} ({ep.value}) does not load: {exc}"
            ) from None
    return tuple(loaded)


def discover() -> list[Any]:
    """Every plugin, in run order (a class is instantiated at each call)."""
    found: list[Any] = [_instance(obj) for obj in installed()]
    directory = plugin_dir()
    if directory.is_dir():
        for path in sorted(directory.glob("*.py")):
            spec = importlib.util.spec_from_file_location(f"flightdeck_plugin_{path.stem}", path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                raise PluginError(f"plugin file {path} does not load: {exc}") from None
            obj = getattr(module, "plugin", None) or getattr(module, "Plugin", None)
            if obj is None:
                raise PluginError(f"plugin file {path} defines neither 'plugin' nor 'Plugin'")
            found.append(_instance(obj))
    for p in found:
        if not any(callable(getattr(p, hook, None)) for hook in HOOKS):
            raise PluginError(f"plugin {_name(p)} has none of the hooks {', '.join(HOOKS)}")
    return sorted(found, key=lambda p: (int(getattr(p, "order", 100)), _name(p)))


def _name(p: Any) -> str:
    return str(getattr(p, "name", type(p).__name__))


def run(plugins: Iterable[Any], hook: str, ctx: PluginContext) -> str | None:
    """Run `hook` of every plugin that has it; returns the last non-empty string returned."""
    result: str | None = None
    for p in plugins:
        fn = getattr(p, hook, None)
        if not callable(fn):
            continue
        try:
            value = fn(ctx)
        except FlightdeckError as exc:
            raise PluginError(
                f"plugin {_name(p)} ({hook}) refused {ctx.vm}: {exc.message}"
            ) from None
        except Exception as exc:
            raise PluginError(
                f"plugin {_name(p)} ({hook}) failed for {ctx.vm}: {type(exc).__name__}: {exc}"
            ) from None
        if isinstance(value, str) and value.strip():
            result = value
    return result
