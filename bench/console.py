"""Consoles through the Airboss: relay throughput, session set-up, many sessions held open.

One run, one machine, one VM on the real libvirtd (QEMU under TCG, sitting in iPXE, VGA text
mode 720x400), one `airboss serve` process:

* `direct` - RFB over a plain TCP connection to the VM's VNC port: handshake, then repeated
             non-incremental FramebufferUpdateRequests of the whole screen, each update read
             in full (raw encoding, 32 bpp): MB/s of framebuffer bytes;
* `relay`  - the same through the Airboss (signed WebSocket upgrade, the pilot client
             library's WebSocket) in the same run, alternated with `direct`;
* `set-up` - signed upgrade to the first byte (the RFB banner), N sessions one after another;
* `held`   - S sessions held open (one key), then signed power requests (`shutdown` of a
             stopped VM: the whole pipeline, refused by the operation) timed: p50 / p99.

    FLIGHTDECK_TEST_LIBVIRT=qemu:///system .venv/bin/python bench/console.py \
        [--seconds 5] [--setups 30] [--sessions 200] [--power 200]

Needs root (bridges for the VMs' NICs, address-less) and the libvirtd; everything it creates
carries a random token and is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import start_airboss

VENV_BIN = Path(sys.executable).parent


def rocks(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run([str(VENV_BIN / "rocks"), *argv], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise SystemExit(f"rocks {' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


class Rfb:
    """Minimal RFB 3.8 client over `read(n)` / `write(data)`."""

    def __init__(self, read: Any, write: Any) -> None:
        self.read, self.write = read, write

    def handshake(self) -> tuple[int, int, int]:
        assert self.read(12) == b"RFB 003.008\n"
        self.write(b"RFB 003.008\n")
        (n,) = self.read(1)
        assert 1 in self.read(n)
        self.write(b"\x01")
        assert self.read(4) == b"\0\0\0\0"
        self.write(b"\x01")
        w, h = struct.unpack("!HH", self.read(4))
        bpp = self.read(16)[0] // 8
        (name,) = struct.unpack("!I", self.read(4))
        self.read(name)
        return w, h, bpp

    def update(self, w: int, h: int, bpp: int) -> int:
        """One full-screen non-incremental update; the bytes of pixel data received."""
        self.write(struct.pack("!BBHHHH", 3, 0, 0, 0, w, h))
        while True:
            kind = self.read(1)[0]
            if kind == 0:
                break
            if kind == 2:  # bell
                continue
            raise SystemExit(f"unexpected RFB message {kind}")
        _pad, rects = struct.unpack("!BH", self.read(3))
        got = 0
        for _ in range(rects):
            _x, _y, rw, rh, enc = struct.unpack("!HHHHi", self.read(12))
            if enc != 0:
                raise SystemExit(f"unexpected encoding {enc}")
            got += len(self.read(rw * rh * bpp))
        return got


class Buffered:
    def __init__(self, recv: Any) -> None:
        self.recv, self.buf = recv, bytearray()

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.recv()
            if not chunk or not isinstance(chunk, bytes | bytearray):
                raise SystemExit(f"connection ended: {chunk!r}")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def throughput(rfb: Rfb, geometry: tuple[int, int, int], seconds: float) -> float:
    total, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        total += rfb.update(*geometry)
    return total / (time.perf_counter() - t0) / 1e6


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--setups", type=int, default=30)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--power", type=int, default=200)
    args = parser.parse_args()
    uri = os.environ.get("FLIGHTDECK_TEST_LIBVIRT", "qemu:///system")
    token = secrets.token_hex(3)
    tmp = Path(tempfile.mkdtemp(prefix="fd-bench-console-"))
    env = {**os.environ, "FLIGHTDECK_HOME": str(tmp), "FLIGHTDECK_DB": f"sqlite:///{tmp}/fd.db"}
    vlan = next(v for v in range(3699, 3599, -1) if not Path(f"/sys/class/net/vlan{v}").exists())
    bridges = [f"vlan{vlan}", f"fdb{token}pub", f"fdb{token}prv"]
    fe, vm = f"fdbc-{token}", f"vm-fdbc-{token}-0"
    server = None
    from flightdeck.crypto import keys as ck
    from flightdeck.pilot.client import AirbossClient

    try:
        for br in bridges:
            subprocess.run(["ip", "link", "add", "name", br, "type", "bridge"], check=True)
            with contextlib.suppress(OSError):
                Path(f"/proc/sys/net/ipv6/conf/{br}/disable_ipv6").write_text("1\n")
            subprocess.run(["ip", "link", "set", br, "up"], check=True)
        rocks(env, "init", "frontend", f"name={fe}.example.org", "public-ip=192.0.2.10",
              "public-netmask=255.255.255.0", "private-ip=10.1.1.1",
              "private-netmask=255.255.0.0", f"public-iface={bridges[1]}",
              f"private-iface={bridges[2]}")
        rocks(env, "set", "attr", "kvm_domain_type", "qemu")
        rocks(env, "set", "attr", "kvm_disk_dir", str(tmp / "disks"))
        rocks(env, "set", "host", "attr", "frontend-0-0", "libvirt_uri", uri)
        rocks(env, "set", "host", "attr", "frontend-0-0", "kvm_vlan_mode", "bridge")
        rocks(env, "add", "cluster", "192.0.2.20", "2", f"vlan={vlan}", f"fe-name={fe}",
              "cluster-naming=yes", "mem-per-frontend=256", "mem-per-compute=256",
              "disk-per-frontend=1", "disk-per-compute=1")
        key = ck.generate_private_key()
        (tmp / "k.pub").write_text(ck.public_key_to_pem(key.public_key()))
        rocks(env, "add", "host", "key", fe, f"key={tmp / 'k.pub'}")
        rocks(env, "start", "host", "vm", vm)
        macs = {r[-1]: r[0] for r in (ln.split() for ln in
                rocks(env, "list", "host", "macs", fe, "output-header=no").splitlines())}
        (tmp / "airboss.toml").write_text(
            f"rate = 100000.0\nburst = 100000\nclient_rate = 100000.0\nclient_burst = 100000\n"
            f"console_sessions = {args.sessions + 10}\n")
        server, address = start_airboss(tmp, env)
        client = AirbossClient(key, address)
        from flightdeck.virt import hypervisor as hv
        from flightdeck.virt.console import vnc_port

        port = vnc_port(hv.connect("bench", uri), vm)
        time.sleep(3)  # let the guest's firmware get to its screen

        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        direct = Rfb(Buffered(lambda: sock.recv(1 << 20)).read, sock.sendall)
        geometry = direct.handshake()
        ws = client.open_console(macs[vm], "vnc")
        relay = Rfb(Buffered(ws.recv).read, ws.send)
        assert relay.handshake() == geometry
        rounds: dict[str, list[float]] = {"direct": [], "relay": []}
        for _ in range(3):  # alternate, so drift hits both alike
            rounds["direct"].append(throughput(direct, geometry, args.seconds / 3))
            rounds["relay"].append(throughput(relay, geometry, args.seconds / 3))
        sock.close()
        ws.close()
        d, r = (sum(v) / len(v) for v in (rounds["direct"], rounds["relay"]))
        print(f"screen {geometry[0]}x{geometry[1]} at {geometry[2] * 8} bpp, "
              f"{geometry[0] * geometry[1] * geometry[2] / 1e6:.2f} MB per update")
        print(f"throughput: direct {d:.1f} MB/s, relay {r:.1f} MB/s ({r / d * 100:.0f}%)")

        setups = []
        for _ in range(args.setups):
            t0 = time.perf_counter()
            s = client.open_console(macs[vm], "vnc")
            assert s.recv() == b"RFB 003.008\n"
            setups.append(time.perf_counter() - t0)
            s.close()
        print(f"session set-up (signed upgrade to banner), {args.setups} sessions: "
              f"p50 {pct(setups, 0.5):.1f} ms, p99 {pct(setups, 0.99):.1f} ms")

        def power_times(n: int) -> list[float]:
            out = []
            for _ in range(n):
                t0 = time.perf_counter()
                with contextlib.suppress(Exception):
                    client.power(macs[f"vm-fdbc-{token}-1"], "shutdown")
                out.append(time.perf_counter() - t0)
            return out

        base = power_times(args.power)
        held = [client.open_console(macs[vm], "vnc") for _ in range(args.sessions)]
        loaded = power_times(args.power)
        alive = sum(1 for h in held if h.recv() == b"RFB 003.008\n")
        for h in held:
            h.close()
        print(f"power, no session open:     p50 {pct(base, 0.5):.1f} ms, "
              f"p99 {pct(base, 0.99):.1f} ms")
        print(f"power, {args.sessions} sessions open: p50 {pct(loaded, 0.5):.1f} ms, "
              f"p99 {pct(loaded, 0.99):.1f} ms ({alive} sessions alive after)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(40)
        import libvirt

        conn = libvirt.open(uri)
        for name in (fe, vm, f"vm-fdbc-{token}-1"):
            with contextlib.suppress(libvirt.libvirtError):
                dom = conn.lookupByName(name)
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        for pool in conn.listAllStoragePools(0):
            if f"<path>{tmp}/" in pool.XMLDesc(0):
                with contextlib.suppress(libvirt.libvirtError):
                    if pool.isActive():
                        pool.refresh(0)
                        for vol in pool.listAllVolumes(0):
                            vol.delete(0)
                        pool.destroy()
                    pool.undefine()
        for br in bridges:
            subprocess.run(["ip", "link", "del", br], check=False, capture_output=True)


if __name__ == "__main__":
    main()
