"""A virtual frontend's identity files (golden), their validation and the tar the installer gets."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import tarfile
from typing import Any

import pytest

from flightdeck.errors import UserError
from flightdeck.pxe import identity as ident

KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO7ilmE9cfthEbItLm3c/hUKYWF+U+AloYFq2sUCRcEi "
    "flightdeck-key-7"
)

VI1 = ident.Identity(
    fqdn="vi-1.rocksclusters.org",
    vm="frontend-0-0-0",
    public_ip="137.110.119.118",
    public_netmask="255.255.255.0",
    public_mac="36:77:6e:c0:00:01",
    gateway="137.110.119.1",
    dns=["137.110.119.1", "8.8.8.8"],
    private_ip="10.1.1.1",
    private_netmask="255.255.0.0",
    private_mac="36:77:6e:c0:00:00",
    vlan=2,
    physical_name="espresso.rocksclusters.org",
    physical_ip="137.110.119.117",
    airboss="localhost:8677",
    airboss_ca=None,
    ssh_keys=[KEY],
    physical_host_keys=["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFxJcC5Yb3VyIGhvc3Qga2V5IGhlcmUuLi4u"],
)


def test_files_are_as_golden(golden: Any) -> None:
    files = ident.files(VI1)
    for path, (data, _mode) in sorted(files.items()):
        golden(f"identity-{path.replace('/', '_')}", data.decode())
    assert files["root/.ssh/authorized_keys"] == ((KEY + "\n").encode(), 0o600)
    assert files["etc/hostname"][0] == b"vi-1\n"


def test_nics_are_named_and_addressed_by_mac() -> None:
    files = {p: d.decode() for p, (d, _m) in ident.files(VI1).items()}
    private = files["etc/systemd/network/20-flightdeck-private.network"]
    assert "MACAddress=36:77:6e:c0:00:00" in private and "Address=10.1.1.1/16" in private
    assert "Gateway" not in private  # the cluster's VLAN is not the way out
    public = files["etc/systemd/network/20-flightdeck-public.network"]
    assert "Address=137.110.119.118/24" in public and "Gateway=137.110.119.1" in public
    assert files["etc/systemd/network/10-flightdeck-private.link"].endswith("Name=eth0\n")
    assert files["etc/systemd/network/10-flightdeck-public.link"].endswith("Name=eth1\n")


def test_env_file_is_shell_and_quotes_every_value() -> None:
    text = ident.env_file(VI1)
    out = subprocess.run(
        ["sh", "-c", text + 'printf "%s|%s|%s" "$FD_FQDN" "$FD_DNS" "$FD_PRIVATE_MAC"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "vi-1.rocksclusters.org|137.110.119.1,8.8.8.8|36:77:6e:c0:00:00"


def test_the_tar_is_reproducible_with_root_owner_and_modes() -> None:
    data = ident.tar(VI1)
    assert data == ident.tar(VI1)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert members["root/.ssh"].isdir() and members["root/.ssh"].mode == 0o700
    assert members["root/.ssh/authorized_keys"].mode == 0o600
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 for m in members.values())
    assert all(not m.name.startswith("/") and ".." not in m.name for m in members.values())
    # the site CA travels only when the Airboss is reached over TLS
    assert "etc/flightdeck/airboss-ca.pem" not in members
    with_ca = dataclasses.replace(VI1, airboss="https://137.110.119.117:8677", airboss_ca="PEM")
    assert "etc/flightdeck/airboss-ca.pem" in ident.files(with_ca)
    assert "FLIGHTDECK_AIRBOSS_CA=" in ident.client_env(with_ca)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"fqdn": "vi_1.example.org"}, "is not a host name"),
        ({"fqdn": "-vi.example.org"}, "is not a host name"),
        ({"fqdn": "vi-1.example.org\nFD_X=1"}, "is not a host name"),
        ({"public_ip": "137.110.119.1118"}, "public IP"),
        ({"dns": ["8.8.8.8; reboot"]}, "DNS server"),
        ({"public_netmask": "255.0.255.0"}, "public netmask"),
        ({"private_mac": "36:77:6e:c0:00"}, "private MAC"),
        ({"ssh_keys": [KEY + "\nssh-ed25519 AAAA evil"]}, "one OpenSSH public key line"),
        ({"ssh_keys": ['command="sh" ' + KEY]}, "one OpenSSH public key line"),
        ({"airboss": "localhost:8677\nFLIGHTDECK_X=1"}, "is not an address"),
        ({"tunnel_user": "root\nHost *"}, "is not a user name"),
        ({"physical_host_keys": ["ssh-ed25519 AAAA\n* ssh-rsa BBBB"]}, "is not one line"),
    ],
)
def test_bad_values_are_refused(change: dict[str, Any], says: str) -> None:
    with pytest.raises(UserError, match=says):
        dataclasses.replace(VI1, **change)


def test_fqdn_check_normalises_case_and_the_final_dot() -> None:
    assert ident.check_fqdn("Vi-1.RocksClusters.org.") == "vi-1.rocksclusters.org"
    with pytest.raises(UserError, match=r"fe-fqdn='a\.\.b'"):
        ident.check_fqdn("a..b")
