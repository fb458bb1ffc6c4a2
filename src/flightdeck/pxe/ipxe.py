"""The iPXE scripts: the TFTP chain script every iPXE client gets, and one script per MAC.

The DHCP answer names `boot.ipxe` (TFTP); it only chains to the boot server's `/ipxe/<mac>`
over HTTP, so what a node does is decided when it boots, from the database, and `rocks set host
boot` needs no sync. A node's script is one of:

- install: fetch the boot action's kernel and initrd over HTTP and boot them with the action's
  arguments plus `fd.host=<name>` (the installer stamps the disk with it), `fd.install=<url>`
  (its install instructions) and `fd.report=<url>` (where it reports completion);
- local boot: `exit`, so the firmware goes on to the next boot device, the disk;
- a boot action without a kernel, or a MAC nobody knows: say so on the console, then `exit`.

A machine the database does not know gets `discover.ipxe` over TFTP instead (dnsmasq lends it
an address from the discovery pool): it asks DHCP again every few seconds until it gets its
fixed lease (insert-ethers named it), then chains `boot.ipxe` like any known node.

iPXE reads its own syntax in every word of a command line: `#` starts a comment, `||` and `&&`
chain commands, `${...}` expands a setting (and `;` is refused with them, as some shells would
split there). A boot action's kernel, initrd and arguments therefore must not hold those: they
are refused when the action is added or set (`problem`) and again here, at render, so a row
written any other way cannot change what iPXE runs. Text we only echo is made harmless instead.

The initrd is always fetched under an explicit name (`initrd --name initrd.gz <url>`) and the
kernel line says `initrd=initrd.gz`: iPXE would otherwise name the image after its URL's last
segment (`initrd.img` for a Debian mirror's), and a kernel booted through EFI then finds no
initrd.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flightdeck.errors import DriverError

KERNEL_FILE = "vmlinuz"
INITRD_FILE = "initrd.gz"
#: discover.ipxe asks DHCP again this many times, this many seconds apart (about 2 minutes).
DISCOVER_TRIES = 24
DISCOVER_WAIT = 5
#: discover.ipxe looks for the booting NIC among this many devices (net0..net7).
NIC_SLOTS = 8

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
#: What iPXE would read as syntax rather than as a word of a kernel line.
_SYNTAX = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029#;$]|&&|\|\|")
#: In echoed text: the same, and single & | (a word of its own would be an operator).
_ECHO_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029#;$&|]")


def problem(text: str) -> str | None:
    """Why `text` may not go into an iPXE command line, or None when it may.

    Used for a boot action's kernel, ramdisk and arguments when they are added or set, and at
    render; the answer names the first offending character or sequence.
    """
    m = _SYNTAX.search(text)
    if m is None:
        return None
    found = m.group()
    shown = repr(found) if len(found) == 1 and not found.isprintable() else f"'{found}'"
    return f"{shown} is iPXE syntax (# comment, && || ; chaining, ${{...}} expansion)"


def _word(what: str, text: str) -> str:
    why = problem(text)
    if why is not None:
        raise DriverError(f"{what} {text!r} cannot go into an iPXE script: {why}")
    return text


def _echo(text: str) -> str:
    """Text to print on the node's console: anything iPXE would interpret becomes '?'."""
    return _ECHO_UNSAFE.sub("?", text)


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
    """Boot the action's kernel with its initrd named INITRD_FILE, whatever its URL says.

    Every word is checked (`problem`): a DriverError names the first that is iPXE syntax.
    """
    what = f"boot action {b.action!r} of {b.host}:"
    words = [
        _word(f"{what} kernel", b.kernel_url),
        *([f"initrd={INITRD_FILE}"] if b.initrd_url else []),
        *(_word(f"{what} argument", w) for w in b.args.split()),
        _word("host name", f"fd.host={b.host}"),
        _word("install URL", f"fd.install={b.install_url}"),
        _word("report URL", f"fd.report={b.report_url}"),
    ]
    lines = [
        "#!ipxe",
        f"# {b.host} ({b.mac}): install with boot action '{b.action}'",
        f"echo Flightdeck: installing {_echo(b.host)}",
        "kernel " + " ".join(words),
    ]
    if b.initrd_url:
        lines.append(f"initrd --name {INITRD_FILE} {_word(f'{what} ramdisk', b.initrd_url)}")
    lines.append("boot")
    return _clean_lines(lines)


def local_script(host: str, mac: str, action: str = "os") -> str:
    """Boot the next device (the disk)."""
    return _clean_lines(
        ["#!ipxe", f"# {host} ({mac}): boot action '{action}' -> local disk", "exit"]
    )


def message_script(mac: str, message: str) -> str:
    """Print why this node gets nothing to boot, then go on to the disk."""
    return _clean_lines(["#!ipxe", f"# {mac}", f"echo Flightdeck: {_echo(message)}", "exit"])


def discover_script(tries: int = DISCOVER_TRIES, wait: int = DISCOVER_WAIT) -> str:
    """TFTP `discover.ipxe`: for a machine dnsmasq does not know, until insert-ethers names it.

    Each try waits `wait` seconds, asks DHCP again on the same NIC and, once the answer names
    `boot.ipxe` (a fixed lease: the machine is known now), chains it; after `tries` it gives
    up and exits, so the firmware boots the next device as it did before discovery existed.
    Written out try by try: no counters, nothing this iPXE might lack.

    The NIC is pinned by name first (`nic`, found by its MAC among net0..net7): `netX` means
    the most recently opened device, and a failed `dhcp` leaves none. That happens when
    insert-ethers names the machine between dnsmasq's offer of a pool address and the
    machine's request for it: the reloaded dnsmasq refuses that address (DHCPNAK), the try
    fails, and with `netX` every later try would fail too ("no such network device").
    """
    step = (
        "dhcp ${nic} && iseq ${filename} boot.ipxe && "
        "chain --autofree tftp://${next-server}/boot.ipxe ||"
    )
    lines = [
        "#!ipxe",
        "# Flightdeck: this machine's MAC is not in the database (dnsmasq lent it an address).",
        "# insert-ethers names new machines: ask DHCP again until the answer is a fixed lease.",
        "echo Flightdeck: ${netX/mac} is not known yet, waiting for insert-ethers to name it",
        "set nic netX",
        *(f"iseq ${{net{i}/mac}} ${{netX/mac}} && set nic net{i} ||" for i in range(NIC_SLOTS)),
    ]
    for _ in range(tries):
        lines += [f"sleep {wait}", step]
    lines += [f"echo Flightdeck: ${{netX/mac}} was not named within {tries * wait} s", "exit"]
    return _clean_lines(lines)


def _clean_lines(lines: list[str]) -> str:
    return "".join(_clean(line) + "\n" for line in lines)
