"""`rocks create installer image`: the boot actions it sets (the image build is replaced here;
tests/pxe/test_image.py builds the real one and tests/e2e boots it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flightdeck.errors import DriverError
from flightdeck.pxe import image as im
from flightdeck.services.bootactions import with_serial_console


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path | None, Path | None]]:
    calls: list[tuple[Path | None, Path | None]] = []

    def build(dest: Path | None = None, cache: Path | None = None) -> im.Image:
        calls.append((dest, cache))
        d = dest or Path("/var/lib/flightdeck/images/installer")
        return im.Image(d / "vmlinuz", d / "initrd.gz", "6.1.0-56-cloud-amd64", rebuilt=True)

    monkeypatch.setattr(im, "build_image", build)
    return calls


def _actions(rocks: Any) -> dict[str, dict[str, str]]:
    rows = json.loads(rocks.ok("list", "bootaction", "output-format=json"))
    return {r["action"]: r for r in rows}


def test_create_installer_image_points_both_install_actions_at_it(
    espresso: Any, fake_build: list[tuple[Path | None, Path | None]], tmp_path: Path
) -> None:
    before = _actions(espresso)["install vm frontend"]["args"]
    out = espresso.ok("create", "installer", "image", f"dir={tmp_path}/img", "cache=/c")
    assert fake_build == [(tmp_path / "img", Path("/c"))]
    assert f"built installer image {tmp_path}/img (Linux 6.1.0-56-cloud-amd64)" in out
    acts = _actions(espresso)
    fe, inst = acts["install vm frontend"], acts["install"]
    for a in (fe, inst):
        assert a["kernel"] == f"{tmp_path}/img/vmlinuz"
        assert a["ramdisk"] == f"{tmp_path}/img/initrd.gz"
    assert fe["args"] == f"{before} console=ttyS0"
    assert inst["args"] == "console=ttyS0 fd.stamp=1"
    # Twice is the same.
    espresso.ok("create", "installer", "image", f"dir={tmp_path}/img", "cache=/c")
    assert _actions(espresso) == acts


def test_missing_boot_actions_are_created(
    espresso: Any, fake_build: list[tuple[Path | None, Path | None]]
) -> None:
    espresso.ok("remove", "bootaction", "action=install vm frontend")
    espresso.ok("create", "installer", "image")
    assert fake_build == [(None, Path("/var/cache/flightdeck/debs"))]
    assert _actions(espresso)["install vm frontend"]["args"] == "console=ttyS0"


def test_a_failed_build_changes_nothing(espresso: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(dest: Path | None = None, cache: Path | None = None) -> im.Image:
        raise DriverError("apt-get download failed (E: x): run apt-get update")

    monkeypatch.setattr(im, "build_image", fail)
    before = espresso.dump()
    r = espresso("create", "installer", "image")
    assert r.code == 1
    assert r.err == "error - apt-get download failed (E: x): run apt-get update\n"
    assert espresso.dump() == before


def test_relative_directories_are_refused(
    espresso: Any, fake_build: list[tuple[Path | None, Path | None]]
) -> None:
    r = espresso("create", "installer", "image", "dir=img")
    assert r.code != 0 and "dir=img: give an absolute path" in r.err
    assert fake_build == []


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "console=ttyS0"),
        ("", "console=ttyS0"),
        ("ks=x ksdevice=eth1", "ks=x ksdevice=eth1 console=ttyS0"),
        ("console=ttyS0 quiet", "console=ttyS0 quiet"),
        ("console=ttyS0 console=tty0 quiet", "console=tty0 quiet console=ttyS0"),
        ("console=tty0 console=ttyS0", "console=tty0 console=ttyS0"),
    ],
)
def test_serial_console_is_made_the_last_console(given: str | None, expected: str) -> None:
    assert with_serial_console(given) == expected
