"""The frontend image's own files: shell that parses, units that agree with each other."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess

import pytest

from flightdeck.pxe import guest
from flightdeck.pxe import identity as ident


def _unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


@pytest.mark.skipif(shutil.which("sh") is None, reason="no /bin/sh")
@pytest.mark.parametrize("name", ["FIRSTBOOT", "KERNEL_HOOK", "READY_SCRIPT"])
def test_scripts_are_valid_shell(name: str) -> None:
    subprocess.run(["sh", "-n"], input=getattr(guest, name), text=True, check=True)


def test_units_parse_and_order_the_boot() -> None:
    first = _unit(guest.FIRSTBOOT_UNIT)
    dhcp = _unit(guest.DHCP_UNIT)
    ready = _unit(guest.READY_UNIT)
    agent = _unit(guest.AGENT_DROPIN)
    assert f"ConditionPathExists=!{guest.FIRSTBOOT_DONE}\n" in guest.FIRSTBOOT_UNIT
    assert first["Service"]["Type"] == "oneshot"
    assert "flightdeck-firstboot.service" in dhcp["Unit"]["After"]
    assert dhcp["Service"]["ExecStart"].endswith("rocks start service dhcp")
    assert "flightdeck-dhcp.service" in ready["Unit"]["Requires"]
    # The agent is the readiness signal: it must come after (and need) the ready unit.
    assert agent["Unit"]["After"] == agent["Unit"]["Requires"] == "flightdeck-ready.service"
    assert ready["Service"]["ExecStart"] in guest.files()
    assert f'line="{guest.READY} $FD_FQDN' in guest.READY_SCRIPT
    for unit in ("flightdeck-firstboot.service", "flightdeck-dhcp.service"):
        assert unit in guest.ENABLED


def test_rocksd_starts_after_ready_and_again_after_an_upgrade() -> None:
    """Its imports (~30 s of TCG CPU) must not delay the ready line; it exits when its code
    changes on disk, so it must be restarted whatever its exit status."""
    unit = _unit(guest.ROCKSD_UNIT)
    assert unit["Unit"]["After"] == "flightdeck-ready.service"
    assert unit["Service"]["ExecStart"] == f"{guest.VENV}/bin/rocksd"
    assert unit["Service"]["Restart"] == "always"
    assert int(unit["Service"]["Nice"]) > 0
    assert "flightdeck-rocksd.service" in guest.ENABLED
    assert "/etc/systemd/system/flightdeck-rocksd.service" in guest.files()


IDENT = ident.Identity(
    fqdn="vi-1.example.org",
    vm="frontend-0-0-0",
    public_ip="192.0.2.20",
    public_netmask="255.255.255.0",
    public_mac="0a:00:00:00:00:01",
    gateway="192.0.2.1",
    dns=["192.0.2.1"],
    private_ip="10.1.1.1",
    private_netmask="255.255.0.0",
    private_mac="0a:00:00:00:00:00",
    vlan=2,
    physical_name="fe.example.org",
    physical_ip="192.0.2.10",
    airboss="localhost:8677",
    airboss_ca=None,
    ssh_keys=[],
)


def test_first_boot_uses_the_identity_the_installer_writes() -> None:
    env = ident.env_file(IDENT)
    names = {line.split("=", 1)[0] for line in env.splitlines() if "=" in line}
    used = set(re.findall(r"\$\{?(FD_[A-Z_]+)", guest.FIRSTBOOT))
    assert used and used <= names, used - names
    assert guest.IDENTITY_ENV.lstrip("/") in ident.files(IDENT)


def test_boot_config_names_the_root_label_the_fstab_mounts() -> None:
    assert f"root=LABEL={guest.ROOT_LABEL}" in guest.SYSLINUX_CFG
    assert f"LABEL={guest.ROOT_LABEL} / ext4" in guest.FSTAB
    assert f"LABEL={guest.BOOT_LABEL} {guest.BOOT_MOUNT} vfat" in guest.FSTAB
    assert "console=ttyS0" in guest.KERNEL_ARGS.split()[-1]


def test_every_file_is_absolute_and_sshd_takes_keys_only() -> None:
    files = guest.files()
    assert all(path.startswith("/") and ".." not in path for path in files)
    sshd = files["/etc/ssh/sshd_config.d/flightdeck.conf"][0]
    assert "PasswordAuthentication no" in sshd and "PermitRootLogin prohibit-password" in sshd
    assert files["/usr/local/lib/flightdeck/firstboot"][1] == 0o755
