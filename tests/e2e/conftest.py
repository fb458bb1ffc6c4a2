"""End-to-end fixtures: the real libvirtd, the installer image, a lab that cleans up after itself.

These tests run VMs under QEMU (TCG) on the libvirtd named by FLIGHTDECK_TEST_LIBVIRT
(scripts/test.sh starts one and sets it to qemu:///system). Without the variable they are
skipped; with it, a libvirtd that does not answer is a failure, never a silent skip, so CI
cannot pass without having run them.

Everything a test creates carries a random token in its name (domains, bridges) or lives
under its tmp_path (disks, storage pools, the database), and the teardown removes exactly
those, even when the test failed: the same libvirtd may be running the demo's
frontend-0-0-0 or another session's VMs, and the machine's own interfaces (eth0) are never
touched. The bridges the VMs attach to have no address, so no VM traffic leaves them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest

from flightdeck.errors import FlightdeckError
from flightdeck.pxe import frontend_image as fim
from flightdeck.pxe.image import DEFAULT_CACHE, Image, build_image
from flightdeck.virt import hypervisor as hv
from libvirt_purge import purge

LIBVIRT_ENV = "FLIGHTDECK_TEST_LIBVIRT"
#: Kept between sessions (build_image reuses it while the debs are unchanged).
IMAGE_DIR = DEFAULT_CACHE.parent / "e2e-installer"
#: Kept between sessions: rebuilt only when its inputs (Flightdeck's wheel...) change.
FRONTEND_IMAGE_DIR = DEFAULT_CACHE.parent / "e2e-frontend-image"
#: Cluster VLAN ids tried, highest first; the bridge `vlan<N>` must not exist yet.
VLAN_CANDIDATES = range(3999, 3899, -1)

#: Figures worth reading in the test report (image build, boot times), printed at the end.
TIMINGS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("end-to-end timings")
        for what, secs in TIMINGS.items():
            terminalreporter.write_line(f"{what:<48} {secs:7.2f} s")


@pytest.fixture
def timings() -> dict[str, float]:
    """Where a test records figures for the end-of-run section."""
    return TIMINGS


@pytest.fixture(scope="session")
def libvirt_uri() -> str:
    """The URI of the real libvirtd; skip without FLIGHTDECK_TEST_LIBVIRT, fail if it is dead."""
    uri = os.environ.get(LIBVIRT_ENV)
    if not uri:
        pytest.skip(f"{LIBVIRT_ENV} is not set (scripts/test.sh starts libvirtd and sets it)")
    if os.geteuid() != 0:
        pytest.fail(f"{LIBVIRT_ENV} is set but the end-to-end tests need root (bridges, QEMU)")
    try:
        conn = hv.connect("e2e", uri, timeout=15)
        conn.conn.getVersion()
    except (FlightdeckError, libvirt.libvirtError) as exc:
        pytest.fail(f"{LIBVIRT_ENV}={uri} is set but libvirtd does not answer: {exc}")
    return uri


@pytest.fixture(scope="session")
def installer_image(libvirt_uri: str) -> Image:
    """The installer image, built once per session (warm: reused from /var/cache/flightdeck)."""
    t0 = time.monotonic()
    img = build_image(IMAGE_DIR, DEFAULT_CACHE)
    TIMINGS[f"installer image ({'built' if img.rebuilt else 'reused'})"] = time.monotonic() - t0
    return img


@pytest.fixture(scope="session")
def frontend_image(installer_image: Image) -> fim.FrontendImage:
    """The frontend image, built once per session (reused while its inputs are unchanged)."""
    t0 = time.monotonic()
    img = fim.build_frontend_image(installer_image, FRONTEND_IMAGE_DIR, fim.DEFAULT_CACHE)
    TIMINGS[f"frontend image ({'built' if img.rebuilt else 'reused'})"] = time.monotonic() - t0
    return img


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _exists(ifname: str) -> bool:
    return Path("/sys/class/net", ifname).exists()


@dataclass
class Lab:
    """One test's VMs, bridges and disk directories, with names nobody else uses."""

    tmp: Path
    uri: str
    token: str
    vlan: int
    #: The virtual frontend; its computes are vm-<fe>-<i> (cluster-naming).
    fe: str
    public_br: str
    private_br: str
    bridges: list[str] = field(default_factory=list)
    domains: set[str] = field(default_factory=set)

    @property
    def vlan_br(self) -> str:
        return f"vlan{self.vlan}"

    def compute(self, i: int) -> str:
        return f"vm-{self.fe}-{i}"

    def hv(self, container: str = "e2e") -> hv.Hypervisor:
        return hv.connect(container, self.uri, timeout=15)

    def add_bridge(self, name: str) -> None:
        """An address-less bridge in the root netns (IPv6 off: not even a link-local address)."""
        if _exists(name):
            raise AssertionError(f"interface {name} exists already: not touching it")
        _ip("link", "add", "name", name, "type", "bridge")
        self.bridges.append(name)
        with contextlib.suppress(OSError):
            Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").write_text("1\n")
        _ip("link", "set", name, "up")

    def cleanup(self) -> list[str]:
        """Remove our domains, the volumes and pools under tmp, our bridges; the problems."""
        problems: list[str] = []
        try:
            conn = self.hv().conn
        except FlightdeckError as exc:
            return [f"no libvirt connection for the clean-up: {exc}"]
        problems += purge(conn, self.domains, self.tmp)
        for br in reversed(self.bridges):
            try:
                _ip("link", "del", br)
            except subprocess.CalledProcessError as exc:
                problems.append(f"bridge {br}: {exc.stderr.strip()}")
        return problems


@pytest.fixture
def lab(libvirt_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    """Bridges for the public and private networks and the cluster VLAN; all removed after."""
    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    token = secrets.token_hex(3)
    vlan = next((v for v in VLAN_CANDIDATES if not _exists(f"vlan{v}")), None)
    if vlan is None:
        pytest.fail(f"bridges vlan{VLAN_CANDIDATES[0]}..vlan{VLAN_CANDIDATES[-1]} all exist")
    it = Lab(
        tmp=tmp_path,
        uri=libvirt_uri,
        token=token,
        vlan=vlan,
        fe=f"fdt-{token}",
        public_br=f"fdt{token}pub",
        private_br=f"fdt{token}prv",
    )
    try:
        for br in (it.public_br, it.private_br, it.vlan_br):
            it.add_bridge(br)
        yield it
    finally:
        problems = it.cleanup()
        if problems:
            pytest.fail("clean-up left things behind: " + "; ".join(problems))
