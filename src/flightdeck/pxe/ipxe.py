"""The iPXE scripts: the TFTP chain script every iPXE client gets, and one script per MAC.

The DHCP answer names `boot.ipxe` (TFTP); it only chains to the boot server's `/ipxe/<mac>`
over HTTP, so what a node does is decided when it boots, from the database, and `rocks set host
boot` needs no sync. A node's script is one of:

- install: fetch the boot action's kernel and initrd over HTTP and boot them with the action's
  arguments plus `fd.host=<name>` (the installer stamps the disk with it), `fd.install=<url>`
  (its install instructions) and `fd.report=<url>` (where it reports completion);
- local boot: `exit`, so the firmware goes on to the next boot device, the disk;
- a boot action without a kernel, or a MAC nobody knows: say so on the console, then `exit`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KERNEL_FILE = "vmlinuz"
INITRD_FILE = "initrd.gz"

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def _clean(text: str) -> str:
    """One line of iPXE: no control characters (a newline would start another command)."""
    return _UNSAFE.sub(" ", text)


def chain_script(base_url: str) -> str:
    """TFTP `boot.ipxe`: hand over to the boot server with the booting NIC's MAC.

    `${netX/mac}` is the NIC iPXE last opened (the one that got the DHCP answer); a failed
    chain exits, so the firmware moves on to the disk instead of hanging.
    """
    return f"#!ipxe\nchain --autofree {_clean(base_url)}/ipxe/${{netX/mac}} || exit\n"


@dataclass(frozen=True)
class InstallBoot:
    """What an installing node boots, as URLs on the boot server."""

    host: str
    mac: str
    action: str
    kernel_url: str
    initrd_url: str | None
    args: str
    install_url: str
    report_url: str


def install_script(b: InstallBoot) -> str:
    words = [
        b.kernel_url,
        *([f"initrd={INITRD_FILE}"] if b.initrd_url else []),
        *b.args.split(),
        f"fd.host={b.host}",
        f"fd.install={b.install_url}",
        f"fd.report={b.report_url}",
    ]
    lines = [
        "#!ipxe",
        f"# {b.host} ({b.mac}): install with boot action '{b.action}'",
        f"echo Flightdeck: installing {b.host}",
        "kernel " + " ".join(words),
    ]
    if b.initrd_url:
        lines.append(f"initrd {b.initrd_url}")
    lines.append("boot")
    return _clean_lines(lines)


def local_script(host: str, mac: str, action: str = "os") -> str:
    """Boot the next device (the disk)."""
    return _clean_lines(
        ["#!ipxe", f"# {host} ({mac}): boot action '{action}' -> local disk", "exit"]
    )


def message_script(mac: str, message: str) -> str:
    """Print why this node gets nothing to boot, then go on to the disk."""
    return _clean_lines(["#!ipxe", f"# {mac}", f"echo Flightdeck: {message}", "exit"])


def _clean_lines(lines: list[str]) -> str:
    return "".join(_clean(line) + "\n" for line in lines)
