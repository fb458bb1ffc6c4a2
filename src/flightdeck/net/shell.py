"""The same work through iproute2 commands: on a remote container over ssh, or locally.

A container reached over ssh needs nothing but `ip` (and `ethtool` for tx offload): the live
state is read with `ip -j`, the diff is computed here, and the steps run as one shell script
that undoes the done steps in reverse order when one fails. Files are written by a script too.

ssh runs with `BatchMode=yes` (no password prompt can hang a command) and a connect timeout;
the program is `ssh`, or the command in `FLIGHTDECK_SSH` (for a site's wrapper, and for the
tests, which stand a network namespace in for a container).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shlex
import subprocess
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from flightdeck.errors import DriverError
from flightdeck.net.diff import Step
from flightdeck.net.files import under
from flightdeck.net.live import LiveLink, LiveRoute, LiveState
from flightdeck.net.render import Rendering

SSH_ENV = "FLIGHTDECK_SSH"
SEPARATOR = "@@FLIGHTDECK@@"


class Runner(Protocol):
    where: str

    def run(self, script: str) -> str: ...


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


class LocalRunner:
    """`sh` on this machine, in a network namespace when given (`ip netns exec`)."""

    def __init__(self, netns: str | None = None, timeout: float = 120) -> None:
        self.netns = netns
        self.timeout = timeout
        self.where = f"network namespace {netns}" if netns else "this machine"

    def run(self, script: str) -> str:
        argv = ["ip", "netns", "exec", self.netns, "sh", "-s"] if self.netns else ["sh", "-s"]
        try:
            done = subprocess.run(
                argv, input=script, capture_output=True, text=True, timeout=self.timeout
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DriverError(f"cannot run a shell on {self.where}: {exc}") from None
        if done.returncode not in (0, 3):
            raise DriverError(f"the script failed on {self.where}: {_last_line(done.stderr)}")
        return done.stdout


def ssh_program() -> list[str]:
    return shlex.split(os.environ.get(SSH_ENV) or "ssh")


class SshRunner:
    """`sh -s` on a remote host through ssh, non-interactively."""

    def __init__(self, host: str, target: str, connect_timeout: float = 10) -> None:
        self.host = host
        self.target = target
        self.connect_timeout = connect_timeout
        self.where = host

    def run(self, script: str) -> str:
        argv = [
            *ssh_program(),
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={max(1, int(self.connect_timeout))}",
            "-T", "-x", self.target, "sh -s",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                argv,
                input=script,
                capture_output=True,
                text=True,
                timeout=self.connect_timeout + 300,
            )
        except FileNotFoundError:
            raise DriverError(f"cannot reach {self.host}: {argv[0]} is not installed") from None
        except subprocess.TimeoutExpired:
            raise DriverError(f"ssh to {self.target} ({self.host}) timed out") from None
        if done.returncode == 255:
            raise DriverError(
                f"ssh to {self.target} ({self.host}) failed: {_last_line(done.stderr)}; it must "
                f"log in as root without a password prompt (BatchMode), e.g. ssh-copy-id "
                f"{self.target}"
            )
        if done.returncode not in (0, 3):
            raise DriverError(f"the script failed on {self.host}: {_last_line(done.stderr)}")
        return done.stdout


# Reading ----------------------------------------------------------------------------------------


def _q(words: Sequence[str]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def observe_script(tx_devices: Collection[str]) -> str:
    lines = [
        "ip -j -d link show || exit 1",
        f"echo {SEPARATOR}",
        "ip -j -4 addr show || exit 1",
        f"echo {SEPARATOR}",
        "ip -j -4 route show table main || exit 1",
        f"echo {SEPARATOR}",
    ]
    for d in sorted(tx_devices):
        lines.append(
            f"printf '%s ' {shlex.quote(d)}; ethtool -k {shlex.quote(d)} 2>/dev/null | "
            "sed -n 's/^tx-checksumming: *\\([a-z]*\\).*/\\1/p'; echo"
        )
    return "\n".join(lines) + "\n"


def _route_dest(dst: str) -> str:
    if dst == "default":
        return "0.0.0.0/0"
    return str(ipaddress.IPv4Network(dst, strict=False))


def parse_observed(text: str) -> LiveState:
    parts = text.split(SEPARATOR + "\n")
    if len(parts) < 4:
        raise DriverError("unexpected output from ip -j (is iproute2 too old for -j?)")
    links: list[dict[str, Any]] = json.loads(parts[0] or "[]")
    addrs: list[dict[str, Any]] = json.loads(parts[1] or "[]")
    routes: list[dict[str, Any]] = json.loads(parts[2] or "[]")
    tx: dict[str, bool] = {}
    for line in parts[3].splitlines():
        name, _, value = line.strip().partition(" ")
        if value in ("on", "off"):
            tx[name] = value == "on"
    by_index: dict[int, list[str]] = {}
    for a in addrs:
        for info in a.get("addr_info", []):
            if info.get("family") == "inet" and "local" in info:
                by_index.setdefault(int(a["ifindex"]), []).append(
                    f"{info['local']}/{info['prefixlen']}"
                )
    out = []
    for ln in links:
        info = ln.get("linkinfo") or {}
        kind = info.get("info_kind")
        data = info.get("info_data") or {}
        flags = set(ln.get("flags", []))
        parent = None
        if kind in ("vlan", "macvlan", "macvtap", "ipvlan") and "link_netnsid" not in ln:
            parent = ln.get("link")
        out.append(
            LiveLink(
                name=ln["ifname"],
                index=int(ln["ifindex"]),
                kind=kind,
                mac=ln.get("address"),
                master=ln.get("master"),
                parent=parent,
                vlan_id=data.get("id") if kind == "vlan" else None,
                up="UP" in flags,
                promiscuous="PROMISC" in flags,
                arp="NOARP" not in flags,
                mtu=int(ln.get("mtu", 0)),
                forward_delay_cs=data.get("forward_delay") if kind == "bridge" else None,
                hello_time_cs=data.get("hello_time") if kind == "bridge" else None,
                tx_offload=tx.get(ln["ifname"]),
                addresses=tuple(by_index.get(int(ln["ifindex"]), ())),
            )
        )
    live_routes = [
        LiveRoute(_route_dest(r["dst"]), r["gateway"], r["dev"])
        for r in routes
        if r.get("gateway") and r.get("dev") and r.get("type", "unicast") == "unicast"
    ]
    return LiveState(tuple(out), tuple(live_routes))


# Changing ---------------------------------------------------------------------------------------


def apply_script(steps: Sequence[Step]) -> str:
    """One script: each step in turn; when one fails, the done ones are undone in reverse."""
    lines = [
        "fd_undo() {",
        "  i=$1",
        '  while [ "$i" -gt 0 ]; do',
        '    "fd_u$i" || echo "FD-UNDO-FAILED $i"',
        "    i=$((i - 1))",
        "  done",
        "}",
    ]
    for k, step in enumerate(steps, 1):
        body = [f"  {_q(op.argv())} >/dev/null 2>&1 || fd_rc=1" for op in step.undo]
        lines += [f"fd_u{k}() {{", "  fd_rc=0", *body, "  return $fd_rc", "}"]
    lines += [
        "fd_run() {",
        "  fd_n=$1",
        "  shift",
        '  if fd_err=$("$@" 2>&1); then',
        '    echo "FD-DONE $fd_n"',
        "  else",
        '    echo "FD-FAILED $fd_n $(echo "$fd_err" | tr "\\n" " ")"',
        "    fd_undo $((fd_n - 1))",
        "    exit 3",
        "  fi",
        "}",
    ]
    lines += [f"fd_run {k} {_q(step.op.argv())}" for k, step in enumerate(steps, 1)]
    return "\n".join(lines) + "\n"


def vlan_probe_script() -> str:
    return (
        "[ -d /proc/net/vlan ] || modprobe 8021q >/dev/null 2>&1\n"
        "if [ -d /proc/net/vlan ]; then echo FD-VLAN-YES; else echo FD-VLAN-NO; fi\n"
    )


def write_script(rendering: Rendering, root: str = "/") -> str:
    """Make the files under `root` match; prints `FD-WROTE path` / `FD-REMOVED path`."""
    lines: list[str] = []
    keep = []
    for f in rendering.files:
        path = under(root, f.path)
        keep.append(path)
        qp = shlex.quote(path)
        if f.content is None:
            lines.append(f'if [ -e {qp} ]; then rm -f {qp} && echo "FD-REMOVED "{qp}; fi')
            continue
        content = f.content if f.content.endswith("\n") else f.content + "\n"
        tag = f"FLIGHTDECK_EOF_{secrets.token_hex(6)}"
        tmp = shlex.quote(path + ".fdnew")
        lines += [
            f"mkdir -p {shlex.quote(os.path.dirname(path))} || exit 1",
            f"cat > {tmp} <<'{tag}'",
            content + tag,
            f"chmod {f.mode:o} {tmp}",
            f'if cmp -s {tmp} {qp} && [ "$(stat -c %a {qp})" = {f.mode:o} ]; then rm -f {tmp}; '
            f'else mv -f {tmp} {qp} && echo "FD-WROTE "{qp}; fi',
        ]
    for directory, pattern in rendering.owned:
        where = under(root, directory)
        cases = "|".join(shlex.quote(p) for p in keep) or "''"
        lines += [
            f"for f in {shlex.quote(where)}/{pattern}; do",
            '  [ -e "$f" ] || continue',
            f'  case "$f" in {cases}) ;; *) rm -f "$f" && echo "FD-REMOVED $f" ;; esac',
            "done",
        ]
    return "\n".join(lines) + "\n"


def parse_written(out: str) -> list[str]:
    changes = []
    for line in out.splitlines():
        if line.startswith("FD-WROTE "):
            changes.append(f"write {line[9:]}")
        elif line.startswith("FD-REMOVED "):
            changes.append(f"remove {line[11:]}")
    return changes


class ShellHost:
    """A `Target` driven by iproute2 scripts through a runner (ssh, or a local shell)."""

    def __init__(self, host: str, runner: Runner) -> None:
        self.host = host
        self.runner = runner

    def observe(self, tx_devices: Collection[str] = ()) -> LiveState:
        return parse_observed(self.runner.run(observe_script(tx_devices)))

    def vlan_support(self) -> tuple[bool, str]:
        out = self.runner.run(vlan_probe_script())
        if "FD-VLAN-YES" in out:
            return True, f"802.1Q VLAN interfaces work on {self.host}"
        return False, (
            f"the kernel of {self.host} has no 802.1Q VLAN support (no /proc/net/vlan, even "
            "after modprobe 8021q)"
        )

    def apply(self, steps: Sequence[Step]) -> list[str]:
        from flightdeck.net.apply import undone_message

        if not steps:
            return []
        out = self.runner.run(apply_script(steps))
        done: list[str] = []
        failed: tuple[int, str] | None = None
        undo_failed: list[str] = []
        for line in out.splitlines():
            word, _, rest = line.partition(" ")
            if word == "FD-DONE":
                done.append(steps[int(rest) - 1].op.describe())
            elif word == "FD-FAILED":
                num, _, msg = rest.partition(" ")
                failed = (int(num), msg.strip())
            elif word == "FD-UNDO-FAILED":
                undo_failed.append(f"could not undo '{steps[int(rest) - 1].op.describe()}'")
        if failed is not None:
            at, why = failed
            what = f"could not {steps[at - 1].op.describe()} on {self.runner.where}: {why}"
            raise DriverError(undone_message(what, len(done), undo_failed))
        if len(done) != len(steps):
            raise DriverError(
                f"the network script stopped after {len(done)} of {len(steps)} steps on "
                f"{self.runner.where}"
            )
        return done

    def write(self, rendering: Rendering, root: str = "/") -> list[str]:
        return parse_written(self.runner.run(write_script(rendering, root)))

    def close(self) -> None:
        return None
