"""The pilot tests share the Airboss tests' site (clusters, owners, a real Airboss process).

pytest gives a directory's fixtures to its own tests only, so this conftest loads the Airboss
tests' conftest as a module and offers the same fixtures here. Without the server extra
(libvirt, starlette) those fixtures skip; the tests of pilot alone still run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

try:
    import libvirt  # noqa: F401
    import starlette  # noqa: F401
except ImportError:  # pragma: no cover - a client-only install
    _fixtures: Any = None
else:
    _spec = importlib.util.spec_from_file_location(
        "flightdeck_tests_airboss_fixtures",
        Path(__file__).parent.parent / "airboss" / "conftest.py",
    )
    assert _spec is not None and _spec.loader is not None
    _fixtures = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = _fixtures  # dataclasses look their module up there
    _spec.loader.exec_module(_fixtures)

if _fixtures is not None:
    site = _fixtures.site
    alice = _fixtures.alice
    bob = _fixtures.bob
    carol = _fixtures.carol
    mallory = _fixtures.mallory
else:  # pragma: no cover

    @pytest.fixture
    def site() -> Any:
        pytest.skip("the server extra (libvirt, starlette) is not installed")
