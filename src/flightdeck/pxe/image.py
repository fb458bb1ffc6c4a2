"""The installer image: a Debian cloud kernel plus a busybox initramfs, built from Debian packages.

Flightdeck's demo and end-to-end tests "install" VMs with this image instead of a distribution
installer: it boots in about four seconds under TCG, prints a marker on the serial console and,
when asked, writes a stamp to the start of the first disk, so a test can prove that the install
path (boot action -> kernel boot or PXE -> guest -> disk) really ran.

How it is built (after `shared/reference/ci-vm-recipe.sh`), without installing anything on the
machine:

1. Resolve the packages: the kernel package that `linux-image-cloud-amd64` depends on, and
   `busybox-static`, with one `apt-cache show` (the machine keeps no apt binary cache, so every
   apt-cache call parses all the package lists: ~1-2 s). The answer is remembered next to the
   debs together with a fingerprint of the apt lists, so it is asked again only after an
   `apt-get update` changed them.
2. `apt-get download` the exact versions into the cache directory (skipped when the debs are
   there). Downloads go to a temporary directory first, so the cache never holds half a deb.
3. `dpkg-deb -x` both, copy the kernel, and write a gzip'd newc initramfs with busybox, the
   virtio modules in dependency order (read from each module's `depends=`, since a deb ships no
   modules.dep) and the /init script below. The archive is written here in Python, so device
   nodes need no root and the same inputs give the same bytes.

The result lives in `dest` under fixed names (`vmlinuz`, `initrd.gz`), so boot actions keep
pointing at it across rebuilds; `image.json` records the inputs, and an image whose inputs did
not change is reused as it is (a few milliseconds). Concurrent builds of the same cache or
destination wait for each other (file locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flightdeck.config import state_dir
from flightdeck.errors import DriverError

KERNEL_META = "linux-image-cloud-amd64"
BUSYBOX = "busybox-static"
DEFAULT_CACHE = Path("/var/cache/flightdeck/debs")
APT_LISTS = Path("/var/lib/apt/lists")
#: Bump when the layout of the image changes, so existing images are rebuilt.
RECIPE = 3
#: NOTE: busybox 1.35's `wget -T` segfaults (static build); /init uses `timeout 30 wget`.
#: The modules the guest needs (virtio disk and NIC over PCI); their dependencies are added.
MODULE_ROOTS = ("virtio_pci", "virtio_blk", "virtio_net")
#: Applets /init uses; the symlinks of the rest come from `busybox --list` when it runs here.
REQUIRED_APPLETS = (
    "sh", "mount", "insmod", "cat", "cut", "echo", "printf", "dd", "sleep", "sync",
    "poweroff", "ls", "tr", "grep", "ip", "udhcpc", "wget", "timeout",
    "mkfifo", "sha256sum", "tee", "gunzip", "blockdev", "tar", "umount", "mkdir", "wait",
)  # fmt: skip
KERNEL_NAME = "vmlinuz"
INITRD_NAME = "initrd.gz"
MANIFEST_NAME = "image.json"
MARKER_BOOTED = "FLIGHTDECK-BOOTED"
MARKER_STAMPED = "FLIGHTDECK-STAMPED"
MARKER_DHCP = "FLIGHTDECK-DHCP"
MARKER_REPORTED = "FLIGHTDECK-REPORTED"
#: udhcpc's hook: configures the address it got and says so on the console.
UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc hook of the Flightdeck installer image (flightdeck.pxe.image).
case "$1" in
    deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
    bound|renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        if [ -n "$router" ]; then ip route add default via "${router%% *}" 2>/dev/null; fi
        echo "FLIGHTDECK-DHCP ip=$ip server=$serverid"
        ;;
esac
"""
STAMP = "FLIGHTDECK-STAMP"
STAMP_SIZE = 512
MARKER_IMAGE_WRITTEN = "FLIGHTDECK-IMAGE-WRITTEN"
MARKER_IMAGE_REFUSED = "FLIGHTDECK-IMAGE-REFUSED"
#: Where /init finds the image installer (below), which it runs when the command line says
#: `fd.image=`: a separate file, so /init stays the small program the tests read.
IMAGE_INSTALLER = "bin/fd-image-install"
#: The image install of a virtual frontend (`install vm frontend image`), run by /init with the
#: values of the kernel command line in its environment:
#:
#:   FD_NET="<mac>,<ip>/<prefix>,<gateway>"  the public NIC (found by its MAC) and its address
#:   FD_IDENTITY, FD_IDENTITY_SHA256         the VM's identity (a tar of files) and its SHA-256
#:   FD_IMAGE, FD_IMAGE_SHA256               the gzip'd disk image and the SHA-256 of those bytes
#:   FD_REPORT, FD_FAILED                    where to POST completion / a refusal
#:   FD_DISK (/dev/vda), FD_ROOT (/dev/vda2) the disk, and the image's root partition
#:
#: Both checksums come from the domain's kernel command line, which only the physical
#: frontend writes (through libvirt): what travels over plain HTTP is trusted only after it
#: matches. The identity is checked before anything is written. The image is streamed straight
#: to the disk (a virtual frontend may have less memory than the image) while a second reader
#: of the same bytes computes their checksum; when it does not match, the first 2 MiB of the
#: disk (boot sector, partition table, boot partition's start) are zeroed, so nothing of it can
#: boot, the refusal is reported, and the VM powers off with its boot action still `install`.
IMAGE_INSTALL_SCRIPT = r"""#!/bin/sh
# Image install of a Flightdeck virtual frontend (flightdeck.pxe.image.IMAGE_INSTALL_SCRIPT).
disk=${FD_DISK:-/dev/vda}
root=${FD_ROOT:-${disk}2}
say() { echo "$*"; }
up() { cut -d' ' -f1 /proc/uptime; }
post() { timeout 30 wget -q -O /tmp/answer --post-data "$2" "$1" && cat /tmp/answer; }
refuse() {
    say "FLIGHTDECK-IMAGE-REFUSED $1"
    [ -n "$FD_FAILED" ] && post "$FD_FAILED" "reason=$1" >/dev/null
    exit 1
}
mac=${FD_NET%%,*}
rest=${FD_NET#*,}
addr=${rest%%,*}
gw=${rest#*,}
dev=
for d in /sys/class/net/*; do
    [ "$(cat "$d/address" 2>/dev/null)" = "$mac" ] && dev=${d##*/}
done
[ -n "$dev" ] || refuse "no network interface has MAC $mac"
ip link set lo up
ip link set "$dev" up
ip addr add "$addr" dev "$dev" || refuse "cannot give $dev the address $addr"
[ -n "$gw" ] && ip route add default via "$gw" 2>/dev/null
say "FLIGHTDECK-NET dev=$dev addr=$addr gateway=$gw"
i=0
while [ ! -b "$disk" ] && [ "$i" -lt 10 ]; do sleep 1; i=$((i + 1)); done
[ -b "$disk" ] || refuse "no disk $disk"
timeout 60 wget -q -O /tmp/identity.tar "$FD_IDENTITY" || refuse "identity download failed"
set -- $(sha256sum /tmp/identity.tar)
[ "$1" = "$FD_IDENTITY_SHA256" ] || refuse "identity checksum mismatch: got $1"
say "FLIGHTDECK-IMAGE-FETCHING $FD_IMAGE uptime=$(up)"
mkfifo /tmp/image.fifo
sha256sum </tmp/image.fifo >/tmp/image.sum &
summer=$!
timeout 1800 wget -q -O - "$FD_IMAGE" | tee /tmp/image.fifo | gunzip -c |
    dd of="$disk" bs=1M conv=fsync 2>/tmp/dd.err
wait "$summer"
set -- $(cat /tmp/image.sum)
if [ "$1" != "$FD_IMAGE_SHA256" ]; then
    dd if=/dev/zero of="$disk" bs=1M count=2 conv=fsync 2>/dev/null
    refuse "image checksum mismatch: got ${1:-nothing}, expected $FD_IMAGE_SHA256"
fi
sync
blockdev --rereadpt "$disk"
i=0
while [ ! -b "$root" ] && [ "$i" -lt 10 ]; do sleep 1; i=$((i + 1)); done
mkdir -p /mnt
mount -t ext4 "$root" /mnt || refuse "cannot mount $root"
tar -xf /tmp/identity.tar -C /mnt || { umount /mnt; refuse "cannot write the identity"; }
umount /mnt
sync
say "FLIGHTDECK-IMAGE-WRITTEN $(tr '
' ' ' </tmp/dd.err)"
if [ -n "$FD_REPORT" ]; then
    if answer=$(post "$FD_REPORT" "host=$FD_HOST image=$FD_IMAGE_SHA256"); then
        say "FLIGHTDECK-REPORTED $answer"
    else
        say "FLIGHTDECK-REPORT-FAILED $FD_REPORT"
    fi
fi
"""

_KERNEL_DEP = re.compile(r"^(linux-image-\d\S*)(?:\s*\(\s*=\s*([^)\s]+)\s*\))?$")


@dataclass(frozen=True)
class Image:
    """A built installer image: what a boot action's kernel and ramdisk point at."""

    kernel: Path
    initrd: Path
    #: The kernel release, e.g. 6.1.0-56-cloud-amd64.
    version: str
    #: False when an up-to-date image was reused.
    rebuilt: bool = True


@dataclass(frozen=True)
class Package:
    """A Debian binary package at one version, and the file name `apt-get download` gives it."""

    name: str
    version: str
    arch: str

    @property
    def deb_name(self) -> str:
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


def default_dest() -> Path:
    """`<state dir>/images/installer` (the state dir follows FLIGHTDECK_HOME)."""
    return state_dir() / "images" / "installer"


# Processes -------------------------------------------------------------------------------------


def _run(step: str, argv: Sequence[str], fix: str, cwd: Path | None = None) -> str:
    """Run a tool; a failure is a DriverError naming the step, the tool's last words and the fix."""
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C"),
            check=False,
        )
    except FileNotFoundError:
        raise DriverError(f"{step} failed: {argv[0]} is not installed; {fix}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("E:")] or lines
        why = errors[-1] if errors else f"exit status {done.returncode}"
        raise DriverError(f"{step} failed ({why}): {fix}")
    return done.stdout


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` (another build of it waits)."""
    with open(directory / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# 1. Which packages ----------------------------------------------------------------------------


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """`apt-cache show` output as one dict per package stanza (continuation lines joined)."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def _stanza(stanzas: Iterable[dict[str, str]], name: str) -> dict[str, str]:
    for s in stanzas:
        if s.get("Package") == name:
            return s
    raise DriverError(f"apt-cache has no package {name}: run apt-get update")


def kernel_dependency(meta: Mapping[str, str]) -> tuple[str, str | None]:
    """The kernel package (and pinned version, if any) a linux-image meta package depends on."""
    for alternative in meta.get("Depends", "").split(","):
        dep = alternative.split("|")[0].strip()
        m = _KERNEL_DEP.match(dep)
        if m:
            return m.group(1), m.group(2)
    raise DriverError(
        f"{meta.get('Package', KERNEL_META)} depends on no linux-image-<version> package: "
        "run apt-get update"
    )


def resolve_packages() -> list[Package]:
    """The kernel and busybox packages apt would download now (the candidate versions)."""
    fix = "run apt-get update (and check /etc/apt/sources.list)"
    show = ["apt-cache", "show", "--no-all-versions"]
    stanzas = parse_stanzas(
        _run("apt-cache show (resolving the kernel)", [*show, KERNEL_META, BUSYBOX], fix)
    )
    meta = _stanza(stanzas, KERNEL_META)
    kernel, version = kernel_dependency(meta)
    if version is None:
        # Unpinned dependency: ask for the kernel package's own candidate.
        stanzas += parse_stanzas(_run(f"apt-cache show {kernel}", [*show, kernel], fix))
        kernel_stanza = _stanza(stanzas, kernel)
        version, arch = kernel_stanza["Version"], kernel_stanza.get("Architecture", "amd64")
    else:
        arch = meta.get("Architecture", "amd64")
    bb = _stanza(stanzas, BUSYBOX)
    return [
        Package(kernel, version, arch),
        Package(BUSYBOX, bb["Version"], bb.get("Architecture", "amd64")),
    ]


def lists_fingerprint(lists: Path = APT_LISTS) -> str:
    """Changes whenever `apt-get update` brings new package lists (names, sizes, mtimes)."""
    h = hashlib.sha256()
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.scandir(lists), key=lambda e: e.name):
            if entry.is_file() and entry.name != "lock":
                st = entry.stat()
                h.update(f"{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _packages(cache: Path) -> list[Package]:
    """The resolved packages, from the memo next to the debs while the apt lists are unchanged.

    When apt cannot answer (no lists, broken sources) but debs were fetched before, those are
    used: an offline rebuild still works.
    """
    memo = cache / "resolved.json"
    fingerprint = lists_fingerprint()
    remembered: list[Package] = []
    remembered_lists = None
    with contextlib.suppress(FileNotFoundError, ValueError, TypeError, KeyError):
        old = json.loads(memo.read_text())
        remembered = [
            Package(str(p["name"]), str(p["version"]), str(p["arch"])) for p in old["packages"]
        ]
        remembered_lists = old["lists"]
    if remembered and remembered_lists == fingerprint:
        return remembered
    try:
        packages = resolve_packages()
    except DriverError:
        if remembered and all((cache / p.deb_name).exists() for p in remembered):
            return remembered
        raise
    _write_atomic(
        memo,
        json.dumps(
            {"lists": fingerprint, "packages": [p.__dict__ for p in packages]}, indent=1
        ).encode(),
    )
    return packages


# 2. Download ----------------------------------------------------------------------------------


def fetch(cache: Path, packages: Sequence[Package]) -> list[Path]:
    """The debs of `packages` in `cache`, downloaded (not installed) when missing."""
    missing = [p for p in packages if not (cache / p.deb_name).is_file()]
    if missing:
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
        try:
            # apt drops to the _apt user for downloads; it must be able to write here.
            if os.geteuid() == 0:
                with contextlib.suppress(KeyError, OSError):
                    os.chown(tmp, pwd.getpwnam("_apt").pw_uid, -1)
            _run(
                "apt-get download",
                ["apt-get", "download", "-q", *(f"{p.name}={p.version}" for p in missing)],
                "run apt-get update, and check that the Debian mirror is reachable",
                cwd=tmp,
            )
            for p in missing:
                got = tmp / p.deb_name
                if not got.is_file():
                    found = sorted(tmp.glob(f"{p.name}_*.deb"))
                    if not found:
                        raise DriverError(
                            f"apt-get download left no {p.name} deb in {tmp}: run apt-get update"
                        )
                    got = found[-1]
                os.chmod(got, 0o644)
                os.replace(got, cache / p.deb_name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _prune(cache, packages)
    return [cache / p.deb_name for p in packages]


def _prune(cache: Path, keep: Sequence[Package]) -> None:
    """Drop debs of older kernels and busybox versions (each kernel deb is ~27 MB)."""
    wanted = {p.deb_name for p in keep}
    for pattern in ("linux-image-*-cloud-amd64_*.deb", f"{BUSYBOX}_*.deb"):
        for old in cache.glob(pattern):
            if old.name not in wanted:
                old.unlink(missing_ok=True)


# 3. Build ------------------------------------------------------------------------------------


def init_script(modules: Sequence[str]) -> str:
    """The initramfs's /init (PID 1): mount, load modules, print the marker, stamp, power off.

    Kernel command line: `fd.host=<name>` is echoed in the marker (so a test knows which VM
    spoke); `fd.stamp=1` writes `FLIGHTDECK-STAMP <host>\\n` plus zeros as the first 512 bytes
    of /dev/vda, so the disk shows the install happened. Output goes to /dev/console, which is
    the serial port when the command line ends with `console=ttyS0`.

    Booted over the network (the boot server's iPXE script adds them): `fd.install=<url>` and
    `fd.report=<url>` (or `fd.dhcp=1`) bring eth0 up with udhcpc after the stamp; the install
    instructions are fetched and shown, and once the stamp is written the completion is POSTed
    to the report URL, from the address DHCP gave, which is the only one the frontend accepts.
    A failed stamp is never reported as an install. Without them (a virtual frontend's direct
    kernel boot) nothing touches the network.
    """
    names = " ".join(modules)
    return f"""#!/bin/sh
# /init of the Flightdeck installer image (flightdeck.pxe.image); runs as PID 1.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in {names}; do
    insmod "/lib/modules/$m.ko" || echo "FLIGHTDECK-WARNING insmod $m failed"
done
host=unknown
stamp=0
stamped=0
net=0
install=
report=
image=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        fd.host=*) host="${{arg#fd.host=}}" ;;
        fd.stamp=1) stamp=1 ;;
        fd.install=*) install="${{arg#fd.install=}}"; net=1 ;;
        fd.report=*) report="${{arg#fd.report=}}"; net=1 ;;
        fd.dhcp=1) net=1 ;;
        fd.image=*) image="${{arg#fd.image=}}" ;;
        fd.image.sha256=*) export FD_IMAGE_SHA256="${{arg#fd.image.sha256=}}" ;;
        fd.identity=*) export FD_IDENTITY="${{arg#fd.identity=}}" ;;
        fd.identity.sha256=*) export FD_IDENTITY_SHA256="${{arg#fd.identity.sha256=}}" ;;
        fd.net=*) export FD_NET="${{arg#fd.net=}}" ;;
        fd.failed=*) export FD_FAILED="${{arg#fd.failed=}}" ;;
    esac
done
echo "{MARKER_BOOTED} host=$host uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ -n "$image" ]; then
    FD_HOST="$host" FD_IMAGE="$image" FD_REPORT="$report" /{IMAGE_INSTALLER}
    sync
    poweroff -f
fi
if [ "$stamp" = 1 ]; then
    i=0
    while [ ! -b /dev/vda ] && [ "$i" -lt 10 ]; do sleep 1; i=$((i + 1)); done
    if [ -b /dev/vda ]; then
        dd if=/dev/zero of=/tmp/stamp bs={STAMP_SIZE} count=1 2>/dev/null
        printf '{STAMP} %s\\n' "$host" | dd of=/tmp/stamp conv=notrunc 2>/dev/null
        if dd if=/tmp/stamp of=/dev/vda bs={STAMP_SIZE} count=1 conv=fsync 2>/dev/null; then
            sync
            stamped=1
            echo "{MARKER_STAMPED}"
        else
            echo "FLIGHTDECK-STAMP-FAILED writing /dev/vda"
        fi
    else
        echo "FLIGHTDECK-STAMP-FAILED no /dev/vda"
    fi
fi
if [ "$net" = 1 ]; then
    ip link set lo up
    ip link set eth0 up
    udhcpc -i eth0 -n -q -t 10 -T 2 -s /bin/udhcpc.script || echo "FLIGHTDECK-DHCP-FAILED"
fi
if [ -n "$install" ]; then
    if timeout 30 wget -q -O /tmp/install "$install"; then
        echo "FLIGHTDECK-INSTRUCTIONS $(tr '\\n' ' ' </tmp/install)"
    else
        echo "FLIGHTDECK-INSTRUCTIONS-FAILED $install"
    fi
fi
if [ -n "$report" ]; then
    if [ "$stamp" = "$stamped" ]; then
        # The stamp as read back from the disk, for the frontend's log (never parsed there).
        back=$(dd if=/dev/vda bs={STAMP_SIZE} count=1 2>/dev/null | tr -d '\\000' | head -n 1)
        if timeout 30 wget -q -O /tmp/report --post-data "host=$host stamp=$back" "$report"; then
            echo "{MARKER_REPORTED} $(cat /tmp/report)"
        else
            echo "FLIGHTDECK-REPORT-FAILED $report"
        fi
    else
        echo "FLIGHTDECK-REPORT-SKIPPED the stamp failed"
    fi
fi
sync
poweroff -f
"""


def stamp_bytes(host: str) -> bytes:
    """The first 512 bytes /init writes to /dev/vda with `fd.stamp=1` (for tests to look for)."""
    return f"{STAMP} {host}\n".encode().ljust(STAMP_SIZE, b"\0")[:STAMP_SIZE]


def module_name(filename: str) -> str:
    """`virtio-net.ko.xz` -> `virtio_net` (the kernel treats - and _ alike in module names)."""
    return filename.split(".ko", 1)[0].replace("-", "_")


def module_order(roots: Sequence[str], depends: Mapping[str, Sequence[str]]) -> list[str]:
    """`roots` and everything they depend on, each after its dependencies (depth first)."""
    order: list[str] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in path:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise DriverError(f"kernel modules depend on each other in a circle: {cycle}")
        if name not in depends:
            raise DriverError(f"the kernel package has no module {name}")
        path.append(name)
        for dep in depends[name]:
            visit(dep)
        path.pop()
        done.add(name)
        order.append(name)

    for root in roots:
        visit(root)
    return order


def modinfo_depends(data: bytes) -> list[str]:
    """The `depends=` list of a module's .modinfo section (empty when it has none)."""
    m = re.search(rb"(?:^|\x00)depends=([^\x00]*)\x00", data)
    if not m:
        return []
    return [d.replace("-", "_") for d in m.group(1).decode().split(",") if d]


def _module_bytes(path: Path) -> bytes:
    if path.name.endswith(".ko"):
        return path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    raise DriverError(
        f"kernel module {path.name} is compressed in a format the image builder cannot read"
    )


@dataclass(frozen=True)
class _Modules:
    """The modules of one unpacked kernel: files by name and what is built in."""

    files: dict[str, Path]
    builtin: set[str]

    @classmethod
    def scan(cls, moddir: Path) -> _Modules:
        files: dict[str, Path] = {}
        for path in sorted((moddir / "kernel").rglob("*.ko*")):
            files.setdefault(module_name(path.name), path)
        builtin: set[str] = set()
        with contextlib.suppress(FileNotFoundError):
            for line in (moddir / "modules.builtin").read_text().splitlines():
                if line.strip():
                    builtin.add(module_name(os.path.basename(line.strip())))
        return cls(files, builtin)

    def resolve(self, roots: Sequence[str]) -> list[tuple[str, bytes]]:
        """(name, uncompressed .ko) of `roots` and their dependencies, in load order."""
        depends: dict[str, list[str]] = {}
        blobs: dict[str, bytes] = {}
        todo = [r for r in roots if r not in self.builtin]
        while todo:
            name = todo.pop()
            if name in depends:
                continue
            if name not in self.files:
                raise DriverError(f"the kernel package has no module {name}")
            blobs[name] = _module_bytes(self.files[name])
            depends[name] = [d for d in modinfo_depends(blobs[name]) if d not in self.builtin]
            todo += depends[name]
        order = module_order([r for r in roots if r not in self.builtin], depends)
        return [(name, blobs[name]) for name in order]


class Cpio:
    """A newc ("070701") archive, the format the kernel unpacks as an initramfs."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._ino = 0

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        self._ino += 1
        encoded = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = [self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1]]
        fields += [len(encoded), 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._parts += [header, encoded, _pad(len(header) + len(encoded)), data, _pad(len(data))]

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def bytes(self) -> bytes:
        self._ino = 0
        trailer = Cpio()
        trailer._entry("TRAILER!!!", 0)
        return b"".join(self._parts + trailer._parts)


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _busybox_applets(busybox: Path) -> list[str]:
    """Every applet of this busybox (it is static amd64, so it runs here), or the needed few."""
    try:
        done = subprocess.run(
            [str(busybox), "--list"], capture_output=True, text=True, timeout=10, check=True
        )
        listed = done.stdout.split()
    except (OSError, subprocess.SubprocessError):
        listed = []
    return sorted(set(listed) | set(REQUIRED_APPLETS) - {"busybox"})


def initramfs(
    busybox: bytes, applets: Sequence[str], modules: Sequence[tuple[str, bytes]]
) -> bytes:
    """The gzip'd newc initramfs: busybox and its applet links, the modules, /init."""
    a = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"):
        a.directory(d)
    a.char_device("dev/console", 5, 1)
    a.file("bin/busybox", busybox, 0o755)
    for applet in applets:
        if applet != "busybox" and "/" not in applet:
            a.symlink(f"bin/{applet}", "busybox")
    for name, data in modules:
        a.file(f"lib/modules/{name}.ko", data)
    a.file("bin/udhcpc.script", UDHCPC_SCRIPT.encode(), 0o755)
    a.file(IMAGE_INSTALLER, IMAGE_INSTALL_SCRIPT.encode(), 0o755)
    a.directory("mnt")
    a.file("init", init_script([name for name, _ in modules]).encode(), 0o755)
    return gzip.compress(a.bytes(), compresslevel=6, mtime=0)


def _find(root: Path, candidates: Sequence[str], what: str, deb: str) -> Path:
    for c in candidates:
        if (root / c).exists():
            return root / c
    raise DriverError(f"{deb} has no {what} (looked for {', '.join(candidates)})")


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _inputs(debs: Sequence[Path]) -> dict[str, object]:
    """What the image is made of: when any of it changes, the image is rebuilt."""
    return {
        "recipe": RECIPE,
        "init": hashlib.sha256(
            (init_script(["@"]) + UDHCPC_SCRIPT + IMAGE_INSTALL_SCRIPT).encode()
        ).hexdigest(),
        "roots": list(MODULE_ROOTS),
        "debs": [[d.name, d.stat().st_size] for d in debs],
    }


def _current(dest: Path, inputs: Mapping[str, object] | None) -> Image | None:
    """The image in `dest` if it was built from `inputs` (any inputs: None) and its files are
    still there."""
    try:
        manifest = json.loads((dest / MANIFEST_NAME).read_text())
    except (FileNotFoundError, ValueError):
        return None
    kernel, initrd = dest / KERNEL_NAME, dest / INITRD_NAME
    sizes = manifest.get("sizes", {})
    if (
        (inputs is not None and manifest.get("inputs") != inputs)
        or not kernel.is_file()
        or not initrd.is_file()
        or sizes.get(KERNEL_NAME) != kernel.stat().st_size
        or sizes.get(INITRD_NAME) != initrd.stat().st_size
    ):
        return None
    return Image(kernel, initrd, str(manifest.get("version", "")), rebuilt=False)


def _build(dest: Path, cache: Path, debs: Sequence[Path], inputs: Mapping[str, object]) -> Image:
    with tempfile.TemporaryDirectory(prefix=".unpack-", dir=cache) as tmp:
        root = Path(tmp)
        for deb in debs:
            _run(
                f"dpkg-deb -x {deb.name}",
                ["dpkg-deb", "-x", str(deb), str(root)],
                f"the cached deb may be damaged: delete {deb} and run the command again",
            )
        kernel_deb = debs[0].name
        moddirs = _find(root, ("lib/modules", "usr/lib/modules"), "lib/modules", kernel_deb)
        versions = sorted(p.name for p in moddirs.iterdir() if p.is_dir())
        if len(versions) != 1:
            raise DriverError(f"{kernel_deb} holds {len(versions)} kernel versions, expected one")
        version = versions[0]
        vmlinuz = _find(root, (f"boot/vmlinuz-{version}",), "kernel image", kernel_deb)
        busybox = _find(root, ("bin/busybox", "usr/bin/busybox"), "busybox", debs[1].name)
        modules = _Modules.scan(moddirs / version).resolve(MODULE_ROOTS)
        initrd_data = initramfs(busybox.read_bytes(), _busybox_applets(busybox), modules)
        kernel_data = vmlinuz.read_bytes()
    kernel, initrd = dest / KERNEL_NAME, dest / INITRD_NAME
    (dest / MANIFEST_NAME).unlink(missing_ok=True)
    _write_atomic(kernel, kernel_data)
    _write_atomic(initrd, initrd_data)
    manifest = {
        "inputs": inputs,
        "version": version,
        "modules": [name for name, _ in modules],
        "sizes": {KERNEL_NAME: len(kernel_data), INITRD_NAME: len(initrd_data)},
    }
    _write_atomic(dest / MANIFEST_NAME, json.dumps(manifest, indent=1).encode())
    return Image(kernel, initrd, version, rebuilt=True)


def build_image(dest: Path | None = None, cache: Path | None = None) -> Image:
    """Build (or reuse) the installer image in `dest` from debs kept in `cache`.

    Defaults: `<state dir>/images/installer` and /var/cache/flightdeck/debs. Raises DriverError
    naming the failing step (apt-cache, apt-get download, dpkg-deb...) and what to do about it.
    """
    dest = Path(dest) if dest is not None else default_dest()
    cache = Path(cache) if cache is not None else DEFAULT_CACHE
    for d, what in ((cache, "cache"), (dest, "image")):
        try:
            if not d.is_dir():
                d.mkdir(parents=True)
                os.chmod(d, 0o755)  # qemu may run as another user and must read the image
        except OSError as exc:
            raise DriverError(
                f"cannot create the {what} directory {d}: {exc.strerror}; run as root or give "
                "another directory"
            ) from None
    with _locked(cache):
        try:
            debs = fetch(cache, _packages(cache))
        except DriverError:
            # No package source (a virtual frontend has none): an image that is already here,
            # complete, is used as it is.
            with _locked(dest):
                found = _current(dest, None)
            if found is None:
                raise
            return found
        with _locked(dest):
            inputs = _inputs(debs)
            return _current(dest, inputs) or _build(dest, cache, debs, inputs)
