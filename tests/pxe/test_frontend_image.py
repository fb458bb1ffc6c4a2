"""The frontend image builder: its pieces, and a build that fails without a package source.

A successful build is slow (a Debian root from mmdebstrap, ~1 min) and is what the end-to-end
test boots (tests/e2e/test_virtual_frontend.py); here: the manifest, the wheel's digest, the
sparse copy, the apt sources, and that a failed build leaves the previous image current and no
half-written file behind.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from flightdeck.errors import DriverError, UserError
from flightdeck.pxe import frontend_image as fim
from flightdeck.pxe.image import Image


def _manifest(dest: Path, name: str, size: int) -> None:
    (dest / fim.MANIFEST).write_text(
        json.dumps(
            {
                "file": name,
                "sha256": "00" * 32,
                "size": size,
                "disk_bytes": size * 4,
                "flightdeck": "0.1.0",
                "kernel": "6.1.0-1-cloud-amd64",
                "built": "2026-12-04T00:00:00Z",
                "inputs": {"recipe": fim.RECIPE},
            }
        )
    )


def test_current_is_the_manifests_image_when_its_file_is_whole(tmp_path: Path) -> None:
    assert fim.current(tmp_path) is None
    (tmp_path / "frontend-00.img.gz").write_bytes(b"12345")
    _manifest(tmp_path, "frontend-00.img.gz", 5)
    found = fim.current(tmp_path)
    assert found is not None and found.path == tmp_path / "frontend-00.img.gz"
    assert (found.size, found.disk_bytes, found.rebuilt) == (5, 20, False)
    _manifest(tmp_path, "frontend-00.img.gz", 6)  # a file cut short is no image
    assert fim.current(tmp_path) is None
    _manifest(tmp_path, "../frontend-00.img.gz", 5)  # the manifest names a file here only
    assert fim.current(tmp_path) is None


def test_wheel_digest_ignores_timestamps_not_contents(tmp_path: Path) -> None:
    def wheel(name: str, body: bytes, when: tuple[int, int, int, int, int, int]) -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(zipfile.ZipInfo("flightdeck/x.py", when), body)
            zf.writestr(zipfile.ZipInfo("flightdeck-0.dist-info/RECORD", when), str(when))
        return path

    a = wheel("a.whl", b"print(1)", (2020, 1, 1, 0, 0, 0))
    b = wheel("b.whl", b"print(1)", (2026, 12, 4, 0, 0, 0))
    c = wheel("c.whl", b"print(2)", (2020, 1, 1, 0, 0, 0))
    assert fim.wheel_digest(a) == fim.wheel_digest(b) != fim.wheel_digest(c)


def test_sparse_copy_writes_data_and_skips_zeros(tmp_path: Path) -> None:
    data = b"A" * 10 + bytes(3 << 20) + b"B" * 7
    out_path = tmp_path / "out"
    with open(out_path, "wb") as out:
        out.truncate(len(data) + 100)
        out.seek(100)
        fim._copy_sparse(io.BytesIO(data), out)
    got = out_path.read_bytes()
    assert got[100:] == data and got[:100] == bytes(100)
    assert os.stat(out_path).st_blocks * 512 < 2 << 20  # the zeros were not written


def test_apt_sources_are_this_machines_or_a_given_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        fim.apt_sources(tmp_path / "missing.list")
    given = tmp_path / "s.list"
    given.write_text("deb http://deb.debian.org/debian bookworm main\n")
    assert fim.apt_sources(given) == [given]
    assert fim.base_key([given]) == fim.base_key([given])


def test_pins_are_the_versions_installed_here() -> None:
    import sqlalchemy

    pins = fim.installed_pins()
    assert f"sqlalchemy=={sqlalchemy.__version__}" in pins
    assert not any(p.startswith("flightdeck==") for p in pins)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="building an image needs root")
def test_a_build_without_a_package_source_fails_and_leaves_the_old_image(tmp_path: Path) -> None:
    dest, cache = tmp_path / "dest", tmp_path / "cache"
    dest.mkdir()
    (dest / "frontend-00.img.gz").write_bytes(b"old image")
    _manifest(dest, "frontend-00.img.gz", 9)
    before = (dest / fim.MANIFEST).read_text()
    sources = tmp_path / "nowhere.list"
    # A mirror nobody answers on (loopback, a closed port): apt cannot fetch anything.
    sources.write_text("deb [trusted=yes] http://127.0.0.1:9/debian bookworm main\n")
    for f in ("vmlinuz", "initrd.gz"):
        (tmp_path / f).write_bytes(b"k")
    installer = Image(tmp_path / "vmlinuz", tmp_path / "initrd.gz", "6.1")
    with pytest.raises(DriverError) as caught:
        fim.build_frontend_image(installer, dest, cache, sources=sources)
    message = caught.value.message
    assert message.startswith("mmdebstrap (building the Debian root) failed")
    assert "check the apt sources (sources=)" in message and "\n" not in message
    assert (dest / fim.MANIFEST).read_text() == before
    found = fim.current(dest)
    assert found is not None and found.path.name == "frontend-00.img.gz"
    assert sorted(p.name for p in dest.iterdir()) == [".lock", "frontend-00.img.gz", "image.json"]
    assert not list(cache.glob("base-*.tar")) and not list(cache.glob(".base-*"))
    assert not list(cache.glob(".build-*"))
