"""Fixtures for the libvirt XML tests: golden files, libvirt's test driver and its QEMU driver."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def qemu_conn() -> Iterator[Any]:
    """A connection to libvirt's QEMU driver, the one that runs VMs (the test driver accepts
    documents QEMU refuses: a CPU topology that is not the vCPU count, IDE on q35...).

    The suite's libvirtd (FLIGHTDECK_TEST_LIBVIRT; scripts/test.sh sets it, CI always has it).
    Not `qemu:///embed`: on our machines it probes every installed QEMU binary again at each
    define, about a minute each. Tests define and undefine, never start, and give each domain a
    name with a random token: the daemon is shared.
    """
    libvirt = pytest.importorskip("libvirt")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    uri = os.environ.get("FLIGHTDECK_TEST_LIBVIRT")
    if not uri:
        if os.environ.get("CI"):
            pytest.fail("FLIGHTDECK_TEST_LIBVIRT is not set in CI: scripts/test.sh sets it")
        pytest.skip("FLIGHTDECK_TEST_LIBVIRT is not set (scripts/test.sh starts libvirtd)")
    conn = libvirt.open(uri)
    try:
        yield conn
    finally:
        conn.close()
