"""The iPXE scripts (golden): chain, install, local boot, messages."""

from __future__ import annotations

from typing import Any

import pytest

from flightdeck.errors import DriverError
from flightdeck.pxe import ipxe

BASE = "http://10.1.1.1:8078"
MAC = "0a:02:00:80:00:00"


def boot(**kw: Any) -> ipxe.InstallBoot:
    base: dict[str, Any] = {
        "host": "compute-0-0-0",
        "mac": MAC,
        "action": "install",
        "kernel_url": f"{BASE}/files/2/vmlinuz",
        "initrd_url": f"{BASE}/files/2/initrd.gz",
        "args": "console=ttyS0 fd.stamp=1",
        "install_url": f"{BASE}/install/{MAC}",
        "report_url": f"{BASE}/install/{MAC}/done",
    }
    return ipxe.InstallBoot(**(base | kw))


def test_chain_script(golden: Any) -> None:
    golden("boot.ipxe", ipxe.chain_script(BASE))
    assert "${netX/mac}" in ipxe.chain_script(BASE)


def test_install_script(golden: Any) -> None:
    text = ipxe.install_script(boot())
    golden("install.ipxe", text)
    kernel = next(ln for ln in text.splitlines() if ln.startswith("kernel "))
    assert kernel.split()[1:3] == [f"{BASE}/files/2/vmlinuz", "initrd=initrd.gz"]
    assert f"fd.host=compute-0-0-0 fd.install={BASE}/install/{MAC}" in kernel
    assert kernel.endswith(f"fd.report={BASE}/install/{MAC}/done")
    assert text.splitlines()[-2:] == [f"initrd --name initrd.gz {BASE}/files/2/initrd.gz", "boot"]


def test_an_initrd_url_is_fetched_under_the_name_the_kernel_line_gives(golden: Any) -> None:
    """Issue 15: iPXE names an image after its URL (initrd.img); the kernel asks initrd.gz."""
    mirror = "http://deb.debian.org/debian/dists/bookworm/main/installer-amd64/current/images"
    text = ipxe.install_script(
        boot(kernel_url=f"{mirror}/netboot/debian-installer/amd64/linux",
             initrd_url=f"{mirror}/netboot/debian-installer/amd64/initrd.gz?x=1/initrd.img")
    )  # fmt: skip
    golden("install-urls.ipxe", text)
    lines = text.splitlines()
    kernel = next(ln for ln in lines if ln.startswith("kernel "))
    initrd = next(ln for ln in lines if ln.startswith("initrd "))
    assert kernel.split()[2] == "initrd=initrd.gz"
    assert initrd.split()[:3] == ["initrd", "--name", "initrd.gz"]
    assert initrd.endswith("/initrd.img")  # the URL's own basename differs, the name does not


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("args", "quiet # rest", "'#' is iPXE syntax"),
        ("args", "quiet && shell", "'&&' is iPXE syntax"),
        ("args", "quiet||shell", "'||' is iPXE syntax"),
        ("args", "x=${net0/mac}", r"'\$' is iPXE syntax"),
        ("args", "a;b", "';' is iPXE syntax"),
        ("kernel_url", "http://m/vmlinuz#frag", "'#' is iPXE syntax"),
        ("initrd_url", "http://m/initrd?a=1&&shell", "'&&' is iPXE syntax"),
    ],
)
def test_ipxe_syntax_in_a_boot_action_is_refused_at_render(
    field: str, value: str, says: str
) -> None:
    with pytest.raises(DriverError, match=says):
        ipxe.install_script(boot(**{field: value}))


def test_echoed_text_cannot_run_a_command() -> None:
    text = ipxe.message_script(MAC, "boot action 'x && shell ${y}; z || w # c' has no kernel")
    echo = text.splitlines()[2]
    assert echo == "echo Flightdeck: boot action 'x ?? shell ?{y}? z ?? w ? c' has no kernel"


def test_discover_script(golden: Any) -> None:
    text = ipxe.discover_script()
    golden("discover.ipxe", text)
    lines = text.splitlines()
    assert lines[0] == "#!ipxe" and lines[-1] == "exit"
    assert lines.count("sleep 5") == ipxe.DISCOVER_TRIES
    assert sum("chain --autofree tftp://${next-server}/boot.ipxe" in ln for ln in lines) == 24
    # The tries name the NIC found at the start, never `netX`: after one failed `dhcp` (a NAK
    # when insert-ethers names it between offer and request) netX is no device at all.
    tries = [ln for ln in lines if ln.startswith("dhcp ")]
    assert len(tries) == 24 and all(ln.startswith("dhcp ${nic} ") for ln in tries)
    assert "iseq ${net3/mac} ${netX/mac} && set nic net3 ||" in lines


def test_install_without_initrd_and_hostile_args(golden: Any) -> None:
    text = ipxe.install_script(boot(initrd_url=None, args="quiet\nshell http://evil/x"))
    golden("install-no-initrd.ipxe", text)
    assert "initrd" not in text
    assert not any(ln.startswith("shell") for ln in text.splitlines())


def test_local_and_message_scripts(golden: Any) -> None:
    golden("local.ipxe", ipxe.local_script("compute-0-0-0", MAC))
    golden("unknown.ipxe", ipxe.message_script(MAC, "MAC 0a:02:00:80:00:00 is not known"))
    assert ipxe.local_script("c", MAC).endswith("exit\n")
