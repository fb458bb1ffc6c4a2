"""Golden files of the PXE tests (dnsmasq configuration, iPXE scripts)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
GoldenCheck = Callable[[str, str], None]


@pytest.fixture
def golden(regenerate_golden: bool) -> GoldenCheck:
    """`golden(name, text)` compares `text` with `golden/<name>` (`--regenerate-golden`)."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if regenerate_golden:
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        assert path.exists(), f"no golden file {path}: run pytest --regenerate-golden once"
        assert text == path.read_text(encoding="utf-8"), f"{name} differs from {path}"

    return check
