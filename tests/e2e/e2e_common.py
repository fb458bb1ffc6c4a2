"""What the end-to-end tests share: their marks, and the lab module (tests/e2e/lab.py).

The lab is loaded once by its path under a name of its own (its dataclasses look their module up
in `sys.modules`), whichever test file asks first.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def on_libvirtd(test: Any, timeout: int | None = None) -> Any:
    """The marks of a test on a real libvirtd: slow, SQLite only (and a time limit, s)."""
    marks = [
        pytest.mark.libvirtd,
        pytest.mark.slow,
        pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
    ]
    if timeout is not None:
        marks.append(pytest.mark.timeout(timeout))
    for mark in marks:
        test = mark(test)
    return test


def _load_lab() -> ModuleType:
    name = "flightdeck_tests_e2e_lab"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("lab.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


lab = _load_lab()
