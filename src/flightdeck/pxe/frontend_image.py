"""The frontend image: a bootable Debian 12 disk image of a virtual frontend, running Flightdeck.

`rocks create frontend image` builds it; the installer image writes it onto a virtual frontend's
disk (see `flightdeck.pxe.image.IMAGE_INSTALL_SCRIPT`). What is inside is declared in
`flightdeck.pxe.guest`; this module only builds, without loop devices or mounts:

1. The Debian root, with `mmdebstrap --variant=minbase` and the frontend's own apt sources (the
   files under /etc/apt, or `sources=`). Cached as a tar (`base-<key>.tar`, ~480 MB), keyed by the
   package list, the sources and the apt lists' fingerprint (an `apt-get update` that brought new
   packages rebuilds it).
2. The wheels: Flightdeck's own wheel, built from the source tree this Flightdeck runs from (or
   given with `wheel=`), and its server extra's dependencies at the versions installed here
   (`pip wheel` with those pins as constraints; kept in `wheels/`, so a rebuild is offline).
3. The root: the base unpacked, a virtualenv at /opt/flightdeck with those wheels (pip in a chroot
   with a clean environment), the installer image, the files of `guest`, units enabled and masked,
   host keys and machine-id removed (each frontend makes its own).
4. The disk: an MBR with syslinux's boot code; partition 1 a FAT file system with syslinux, the
   kernel, the initrd and syslinux.cfg (written with mtools); partition 2 ext4 made from the root
   with `mkfs.ext4 -d`. gzip'd (level 1) while its SHA-256 is computed.

The result is `frontend-<sha256 prefix>.img.gz` and `image.json` in `dest`; `image.json` is written
last and names the image, so a build that fails halfway leaves the previous image current and the
new one's pieces in a temporary directory that is removed. Builds of one destination wait for each
other (a file lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from flightdeck import __version__
from flightdeck.config import state_dir
from flightdeck.errors import DriverError, UserError
from flightdeck.pxe import guest
from flightdeck.pxe.image import Image, lists_fingerprint

#: Bump when the build changes in a way the inputs below do not show.
RECIPE = 1
SUITE = "bookworm"
MANIFEST = "image.json"
DEFAULT_CACHE = Path("/var/cache/flightdeck/frontend")
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
#: The FAT boot partition (MiB) and where partitions start (MiB, for alignment).
BOOT_MIB = 64
START_MIB = 1
SECTOR = 512
MIB = 1 << 20
SYSLINUX_MBR = (Path("/usr/lib/syslinux/mbr/mbr.bin"), Path("/usr/lib/SYSLINUX/mbr.bin"))
#: Tools of the build and the Debian package each comes from (for the error's fix).
TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "syslinux": "syslinux",
    "mcopy": "mtools",
    "sfdisk": "fdisk",
}

Say = Callable[[str], None]


@dataclass(frozen=True)
class FrontendImage:
    """A built frontend image: what the installer fetches and checks."""

    path: Path
    #: SHA-256 of the gzip'd bytes (what the installer checks as it streams them).
    sha256: str
    #: Bytes of the gzip'd file and of the raw disk image it holds.
    size: int
    disk_bytes: int
    flightdeck: str
    kernel: str
    built: str
    #: False when an up-to-date image was reused.
    rebuilt: bool = True


def default_dest() -> Path:
    """`<state dir>/images/frontend` (the state dir follows FLIGHTDECK_HOME)."""
    return state_dir() / "images" / "frontend"


def current(dest: Path) -> FrontendImage | None:
    """The image `dest/image.json` names, if its file is there with the recorded size."""
    try:
        data = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
        path = dest / str(data["file"])
        if "/" in str(data["file"]) or not path.is_file() or path.stat().st_size != data["size"]:
            return None
        return FrontendImage(
            path=path,
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            disk_bytes=int(data["disk_bytes"]),
            flightdeck=str(data["flightdeck"]),
            kernel=str(data["kernel"]),
            built=str(data["built"]),
            rebuilt=False,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _inputs(dest: Path) -> dict[str, object]:
    try:
        value = json.loads((dest / MANIFEST).read_text(encoding="utf-8")).get("inputs")
    except (OSError, ValueError, AttributeError):
        return {}
    return value if isinstance(value, dict) else {}


# Processes ----------------------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """The environment of a build step: no pip/python settings of the caller leak into it."""
    keep = ("PATH", "HOME", "TMPDIR", "http_proxy", "https_proxy", "no_proxy")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(LC_ALL="C.UTF-8", DEBIAN_FRONTEND="noninteractive")
    return env


def _run(
    step: str, argv: Sequence[str], fix: str, *, timeout: float = 1800, clean: bool = True
) -> str:
    """Run a build tool; a failure is a DriverError naming the step, its last words and the fix.

    `clean`: with the environment of `_clean_env` (tools working on the image); pip on this
    machine keeps the caller's (its index settings may live there).
    """
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            env=_clean_env() if clean else None,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        tool = os.path.basename(argv[0])
        pkg = TOOLS.get(tool, tool)
        raise DriverError(
            f"{step} failed: {tool} is not installed; apt-get install {pkg}"
        ) from None
    except subprocess.TimeoutExpired:
        raise DriverError(f"{step} did not finish within {timeout:g} s: {fix}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "ERROR", "error"))] or lines
        why = errors[-1][:300] if errors else f"exit status {done.returncode}"
        raise DriverError(f"{step} failed ({why}): {fix}")
    return done.stdout


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _mkdir(path: Path, what: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DriverError(
            f"cannot create the {what} directory {path}: {exc.strerror}; run as root or give "
            "another directory"
        ) from None
    return path


# 1. The Debian root -------------------------------------------------------------------------------


def apt_sources(given: Path | None = None) -> list[Path]:
    """The apt source files mmdebstrap gets: `given`, or this machine's own."""
    if given is not None:
        if not given.is_file():
            raise UserError(f"sources={given}: no such file (give an apt sources file)")
        return [given]
    found: list[Path] = []
    for entry in APT_SOURCES:
        if entry.is_file():
            found.append(entry)
        elif entry.is_dir():
            found += sorted(
                p for p in entry.iterdir() if p.suffix in (".list", ".sources") and p.is_file()
            )
    if not found:
        raise UserError(
            "this machine has no apt sources (/etc/apt/sources.list or sources.list.d): give "
            "sources=<file> with a Debian 12 mirror"
        )
    return found


def _sources_text(sources: Sequence[Path]) -> str:
    return "".join(f"# {p}\n{p.read_text(encoding='utf-8', errors='replace')}\n" for p in sources)


def base_key(sources: Sequence[Path]) -> str:
    """What the Debian root is made of; a change rebuilds it."""
    h = hashlib.sha256()
    h.update(json.dumps([RECIPE, SUITE, sorted(guest.PACKAGES)]).encode())
    h.update(_sources_text(sources).encode())
    h.update(lists_fingerprint().encode())
    return h.hexdigest()[:16]


def build_base(cache: Path, sources: Sequence[Path], say: Say, *, refresh: bool = False) -> Path:
    """The Debian root as a tar in `cache`, built with mmdebstrap unless it is there already
    (or `refresh`). The cached tar is replaced only by a complete new one."""
    key = base_key(sources)
    tar = cache / f"base-{key}.tar"
    if tar.is_file() and not refresh:
        say(f"Debian root: cached ({tar.name})")
        return tar
    say(f"Debian root: mmdebstrap {SUITE} with {len(guest.PACKAGES)} packages (about a minute)")
    tmp = cache / f".base-{key}.{os.getpid()}.tar"
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--include=" + ",".join(guest.PACKAGES),
        # Documentation and translations are not needed on a frontend reached by ssh.
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        # The image's apt knows the same mirrors, and nothing of the build is left in it.
        "--customize-hook=rm -f $1/var/cache/apt/*.bin",
        "--aptopt=Acquire::Check-Valid-Until false",
        SUITE,
        str(tmp),
        *(str(p) for p in sources),
    ]
    t0 = time.monotonic()
    try:
        _run(
            "mmdebstrap (building the Debian root)",
            argv,
            "check the apt sources (sources=) and that the Debian mirror is reachable",
        )
        os.replace(tmp, tar)
    finally:
        tmp.unlink(missing_ok=True)
    say(f"Debian root: built in {time.monotonic() - t0:.0f} s ({tar.stat().st_size // MIB} MiB)")
    for old in cache.glob("base-*.tar"):
        if old != tar:
            old.unlink(missing_ok=True)
    return tar


# 2. The wheels ------------------------------------------------------------------------------------


def source_tree() -> Path | None:
    """The project directory this Flightdeck was imported from, if it runs from a checkout."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "flightdeck").is_dir():
            return parent
    return None


def wheel_digest(wheel: Path) -> str:
    """A digest of a wheel's contents (names and bytes), independent of its timestamps."""
    h = hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            if name.endswith(".dist-info/RECORD"):
                continue
            h.update(name.encode() + b"\0" + hashlib.sha256(zf.read(name)).digest())
    return h.hexdigest()


def build_wheel(work: Path, given: Path | None, say: Say) -> Path:
    """Flightdeck's wheel: `given`, or built from the source tree this Flightdeck runs from."""
    if given is not None:
        if not given.is_file() or given.suffix != ".whl":
            raise UserError(f"wheel={given}: no such wheel file")
        return given
    tree = source_tree()
    if tree is None:
        raise UserError(
            "this Flightdeck is not running from its source tree: give wheel=<flightdeck wheel> "
            f"(of version {__version__})"
        )
    say(f"Flightdeck {__version__}: building its wheel from {tree}")
    out = work / "wheel"
    out.mkdir()
    _run(
        "pip wheel (Flightdeck)",
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(out),
         str(tree)],
        "check that pip can reach its index for setuptools (or give wheel=)",
        clean=False,
    )  # fmt: skip
    found = sorted(out.glob("flightdeck-*.whl"))
    if not found:
        raise DriverError(f"pip wheel left no Flightdeck wheel in {out}")
    return found[0]


def installed_pins() -> list[str]:
    """`name==version` of every distribution installed here but Flightdeck itself: the
    constraints that make the image's dependencies the versions this frontend runs."""
    pins = {}
    for dist in md.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name and name != "flightdeck":
            pins[name] = dist.version
    return sorted(f"{k}=={v}" for k, v in pins.items())


def build_wheels(cache: Path, wheel: Path, say: Say) -> Path:
    """A wheel directory with Flightdeck and its server dependencies at this machine's versions."""
    wheels = _mkdir(cache / "wheels", "wheel")
    for old in wheels.glob("flightdeck-*.whl"):
        old.unlink()
    shutil.copy2(wheel, wheels / wheel.name)
    constraints = cache / "constraints.txt"
    constraints.write_text("\n".join(installed_pins()) + "\n", encoding="utf-8")
    target = f"flightdeck[server] @ file://{wheels / wheel.name}"
    base = [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(wheels),
            "--constraint", str(constraints), "--find-links", str(wheels)]  # fmt: skip
    try:
        _run("pip wheel (offline)", [*base, "--no-index", target], "", clean=False)
        say("wheels: all cached")
    except DriverError:
        say("wheels: fetching the server extra's dependencies (pip wheel)")
        _run(
            "pip wheel (Flightdeck's dependencies)",
            [*base, target],
            "check that PyPI (or the pip index configured here) is reachable",
            clean=False,
        )
    return wheels


# 3. The root --------------------------------------------------------------------------------------


def _chroot(root: Path, step: str, *argv: str) -> str:
    return _run(step, ["chroot", str(root), *argv], "see the message; the image was not changed")


def _write(root: Path, path: str, text: str, mode: int) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    target.write_text(text, encoding="utf-8")
    os.chmod(target, mode)


def prepare_root(
    root: Path, base: Path, wheels: Path, wheel: Path, installer: Image, say: Say
) -> str:
    """Unpack the base into `root` and make it a virtual frontend. Returns the kernel release."""
    say("root: unpacking the Debian root")
    _run(
        "tar -x (the Debian root)",
        ["tar", "-C", str(root), "--numeric-owner", "-xpf", str(base)],
        f"the cached root may be damaged: delete {base}",
    )
    say(f"root: installing Flightdeck {__version__} and its server extra into {guest.VENV}")
    staged = root / "tmp" / "wheels"
    shutil.copytree(wheels, staged)
    _chroot(root, "python3 -m venv (in the image)", "/usr/bin/python3", "-m", "venv", guest.VENV)
    _chroot(
        root,
        "pip install (in the image)",
        f"{guest.VENV}/bin/pip",
        "install",
        "-q",
        "--no-index",
        "--find-links",
        "/tmp/wheels",
        f"flightdeck[server]=={wheel.name.split('-')[1]}",
    )
    shutil.rmtree(staged)
    for cmd in guest.COMMANDS:
        link = root / "usr" / "local" / "bin" / cmd
        link.unlink(missing_ok=True)
        link.symlink_to(f"{guest.VENV}/bin/{cmd}")
    target = root / guest.INSTALLER_DIR.lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    for src in (installer.kernel, installer.initrd, installer.kernel.parent / "image.json"):
        shutil.copy2(src, target / src.name)
    for path, (text, mode) in guest.files().items():
        _write(root, path, text, mode)
    (root / guest.BOOT_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
    _chroot(root, "systemctl enable (in the image)", "systemctl", "enable", *guest.ENABLED)
    _chroot(root, "systemctl mask (in the image)", "systemctl", "mask", *guest.MASKED)
    # Each frontend makes its own: ssh host keys (first boot), machine-id (systemd, first boot).
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc" / "machine-id").write_text("", encoding="utf-8")
    (root / "var" / "lib" / "dbus" / "machine-id").unlink(missing_ok=True)
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for f in (root / leftover).glob("*"):
            if f.is_file():
                f.unlink()
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise DriverError("the Debian root has no kernel in /boot (linux-image-cloud-amd64)")
    return kernels[-1].name.removeprefix("vmlinuz-")


# 4. The disk --------------------------------------------------------------------------------------


def _du_mib(root: Path) -> int:
    out = _run("du (sizing the root)", ["du", "-s", "--block-size=1M", str(root)], "")
    return int(out.split()[0])


def _mbr_code() -> Path:
    for p in SYSLINUX_MBR:
        if p.is_file():
            return p
    raise DriverError("syslinux's mbr.bin is missing: apt-get install syslinux-common")


def make_disk(root: Path, kernel: str, work: Path, say: Say) -> Path:
    """The raw disk image: MBR + syslinux, FAT boot partition, ext4 root partition."""
    used = _du_mib(root)
    root_mib = used + used // 4 + 256
    say(f"disk: ext4 root from {used} MiB of files, FAT boot of {BOOT_MIB} MiB")
    fs = work / "root.ext4"
    _run("mkfs.ext4 (the root)", ["mkfs.ext4", "-q", "-F", "-L", guest.ROOT_LABEL, "-d",
                                  str(root), str(fs), f"{root_mib}M"], "")  # fmt: skip
    # As small as it can be, plus a margin for the first boot's writes before it grows the
    # root to the disk: every MiB here is a MiB the installer inflates and writes under TCG.
    _run("e2fsck (the root)", ["e2fsck", "-fy", str(fs)], "")
    _run("resize2fs -M (the root)", ["resize2fs", "-M", str(fs)], "")
    minimum = os.path.getsize(fs) // MIB
    root_mib = minimum + 96
    _run("resize2fs (margin)", ["resize2fs", str(fs), f"{root_mib}M"], "")
    boot = work / "boot.fat"
    with open(boot, "wb") as fh:
        fh.truncate(BOOT_MIB * MIB)
    _run("mkfs.vfat (the boot partition)", ["mkfs.vfat", "-n", guest.BOOT_LABEL, str(boot)], "")
    _run("syslinux --install", ["syslinux", "--install", str(boot)], "")
    cfg = work / "syslinux.cfg"
    cfg.write_text(guest.SYSLINUX_CFG, encoding="utf-8")
    for src, name in (
        (root / "boot" / f"vmlinuz-{kernel}", "vmlinuz"),
        (root / "boot" / f"initrd.img-{kernel}", "initrd.img"),
        (cfg, "syslinux.cfg"),
    ):
        _run(f"mcopy {name}", ["mcopy", "-i", str(boot), str(src), f"::/{name}"], "")
    disk = work / "disk.img"
    root_start = START_MIB + BOOT_MIB
    with open(disk, "wb") as fh:
        fh.truncate((root_start + root_mib) * MIB)
    table = (
        "label: dos\n"
        f"start={START_MIB * MIB // SECTOR}, size={BOOT_MIB * MIB // SECTOR}, type=e, bootable\n"
        f"start={root_start * MIB // SECTOR}, type=83\n"
    )
    done = subprocess.run(
        ["sfdisk", "-q", str(disk)], input=table, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise DriverError(f"sfdisk (the partition table) failed: {done.stderr.strip()}")
    with open(disk, "r+b") as out:
        out.write(_mbr_code().read_bytes()[:440])
        for offset, part in ((START_MIB, boot), (root_start, fs)):
            out.seek(offset * MIB)
            with open(part, "rb") as piece:
                _copy_sparse(piece, out)
    fs.unlink()
    boot.unlink()
    return disk


def _copy_sparse(src: object, out: object, block: int = MIB) -> None:
    """Copy `src` to `out` at its position, seeking over blocks of zeros (the file stays sparse)."""
    zero = bytes(block)
    read = src.read  # type: ignore[attr-defined]
    while chunk := read(block):
        if chunk == zero[: len(chunk)]:
            out.seek(len(chunk), os.SEEK_CUR)  # type: ignore[attr-defined]
        else:
            out.write(chunk)  # type: ignore[attr-defined]


def compress(disk: Path, dest: Path, say: Say) -> tuple[Path, str, int]:
    """gzip `disk` into `dest` (level 1: the installer inflates it under TCG), hashing the bytes."""
    say(f"compressing {disk.stat().st_size // MIB} MiB")
    tmp = dest / f".frontend.{os.getpid()}.img.gz"
    h = hashlib.sha256()

    class _Hashing:
        def __init__(self, fh: object) -> None:
            self.fh = fh

        def write(self, data: bytes) -> int:
            h.update(data)
            return self.fh.write(data)  # type: ignore[attr-defined, no-any-return]

        def flush(self) -> None:
            self.fh.flush()  # type: ignore[attr-defined]

    with open(tmp, "wb") as raw, open(disk, "rb") as src:
        hashing = _Hashing(raw)
        with gzip.GzipFile(
            filename="",
            mode="wb",
            fileobj=hashing,
            compresslevel=1,
            mtime=0,  # type: ignore[arg-type]
        ) as gz:
            while chunk := src.read(4 * MIB):
                gz.write(chunk)
    digest = h.hexdigest()
    final = dest / f"frontend-{digest[:16]}.img.gz"
    os.chmod(tmp, 0o644)
    os.replace(tmp, final)
    return final, digest, final.stat().st_size


# The build ----------------------------------------------------------------------------------------


def build_frontend_image(
    installer: Image,
    dest: Path | None = None,
    cache: Path | None = None,
    *,
    wheel: Path | None = None,
    sources: Path | None = None,
    refresh: bool = False,
    say: Say | None = None,
) -> FrontendImage:
    """Build (or reuse) the frontend image in `dest`. Raises DriverError/UserError naming the step.

    Reused when the inputs are unchanged: the Debian root's key, Flightdeck's wheel (by content),
    the installer image, the recipe. `refresh` rebuilds the Debian root and the image anyway.
    """
    say = say or (lambda _text: None)
    if os.geteuid() != 0:
        raise UserError("building the frontend image needs root (mmdebstrap, chroot)")
    dest = _mkdir(Path(dest) if dest is not None else default_dest(), "image")
    cache = _mkdir(Path(cache) if cache is not None else DEFAULT_CACHE, "cache")
    os.chmod(dest, 0o755)  # the boot server (root) serves it; qemu never reads it
    src = apt_sources(sources)
    with _locked(dest), tempfile.TemporaryDirectory(prefix=".build-", dir=cache) as tmp:
        work = Path(tmp)
        whl = build_wheel(work, wheel, say)
        inputs: dict[str, object] = {
            "recipe": RECIPE,
            "flightdeck": __version__,
            "wheel": wheel_digest(whl),
            "base": base_key(src),
            "installer": [installer.version, installer.initrd.stat().st_size],
            "guest": hashlib.sha256(
                json.dumps(
                    [guest.files(), guest.SYSLINUX_CFG, guest.ENABLED, guest.MASKED]
                ).encode()
            ).hexdigest(),
        }
        found = current(dest)
        if found is not None and not refresh and _inputs(dest) == inputs:
            say(f"up to date: {found.path.name}")
            return found
        t0 = time.monotonic()
        base = build_base(cache, src, say, refresh=refresh)
        wheels = build_wheels(cache, whl, say)
        root = work / "root"
        root.mkdir()
        kernel = prepare_root(root, base, wheels, whl, installer, say)
        disk = make_disk(root, kernel, work, say)
        shutil.rmtree(root)
        path, digest, size = compress(disk, dest, say)
        image = FrontendImage(
            path=path,
            sha256=digest,
            size=size,
            disk_bytes=disk.stat().st_size,
            flightdeck=__version__,
            kernel=kernel,
            built=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        manifest = {k: v for k, v in asdict(image).items() if k not in ("path", "rebuilt")}
        manifest |= {"file": path.name, "inputs": inputs}
        tmp_manifest = dest / f".{MANIFEST}.{os.getpid()}"
        tmp_manifest.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        os.chmod(tmp_manifest, 0o644)
        os.replace(tmp_manifest, dest / MANIFEST)
        # Keep the image before this one (an install may be streaming it), drop older ones.
        previous = sorted(
            (p for p in dest.glob("frontend-*.img.gz") if p != path),
            key=lambda p: p.stat().st_mtime,
        )
        for old in previous[:-1]:
            old.unlink(missing_ok=True)
        say(
            f"built {path.name} in {time.monotonic() - t0:.0f} s: {size // MIB} MiB "
            f"({image.disk_bytes // MIB} MiB disk), Linux {kernel}, Flightdeck {__version__}"
        )
        return image
