"""Fixtures for the libvirt XML tests: golden files and libvirt's test driver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"

GoldenCheck = Callable[[str, str], None]


@pytest.fixture
def golden(regenerate_golden: bool) -> GoldenCheck:
    """`golden(name, text)` compares `text` with `golden/<name>.xml`.

    A missing file is written and the test fails, asking for a look at it; with
    `--regenerate-golden` the file is rewritten and the test passes.
    """

    def check(name: str, actual: str) -> None:
        path = GOLDEN_DIR / f"{name}.xml"
        if regenerate_golden:
            path.write_text(actual, encoding="utf-8")
            return
        if not path.exists():
            path.write_text(actual, encoding="utf-8")
            pytest.fail(f"golden file {path} was missing and has been written; review it, rerun")
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, (
            f"output differs from {path}; if the change is intended, rerun with "
            "--regenerate-golden and review the diff"
        )

    return check


@pytest.fixture
def test_conn() -> Iterator[Any]:
    """A connection to libvirt's in-process test driver (no daemon), errors not printed to stderr.

    `test:///default` keeps its state for the life of the process, so every test uses domain
    names of its own and removes what it defined.
    """
    libvirt = pytest.importorskip("libvirt")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open("test:///default")
    try:
        yield conn
    finally:
        conn.close()
