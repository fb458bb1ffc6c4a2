"""What the frontend image holds besides Debian's packages: the virtual frontend's own files.

The image is a Debian 12 system that boots with systemd like any Debian machine (an owner who logs
in finds `systemctl`, `journalctl`, sshd, dnsmasq), with these additions, all written here so they
are read and tested in one place:

- Boot: syslinux on a small FAT partition (`FDBOOT`) loads the image's own kernel and initrd with
  `root=LABEL=fd-root`; a kernel hook copies a newer kernel there after an `apt upgrade`.
- First boot (`flightdeck-firstboot.service`, once): grow the root partition to the disk, make the
  ssh host key, then `rocks init frontend` with the identity the installer wrote into
  `/etc/flightdeck/frontend.env` and register the installer image the image carries.
- Every boot: `flightdeck-dhcp.service` runs `rocks start service dhcp` on the private interface
  (dnsmasq and the boot server, for the cluster's computes on its VLAN); then
  `flightdeck-ready.service` prints `FLIGHTDECK-FRONTEND-READY <fqdn>` on the serial console, and
  only then does the QEMU guest agent start, so "the agent answers" means "ready" to the physical
  side. After that, `flightdeck-rocksd.service` starts `rocksd` (niced), which imports Flightdeck
  once so that each `rocks` command the owner types is served by a fork of it instead of paying
  its imports (~0.4 s on the host, ~10 s here; cli/resident_server.py).
- Logins: ssh with the owner's keys (`/root/.ssh/authorized_keys`, from the identity), key only;
  the serial console logs root in without a password, because whoever reaches it already controls
  the VM (root on its container, or the owner's key through the Airboss; see docs/provisioning.md).

Trimmed for TCG, where Python runs ~25x slower than on the host: no units Debian would start for
hardware a VM lacks, the Python work of a boot is one `rocks` process, and nothing polls.
"""

from __future__ import annotations

#: The root file system's label (syslinux's `root=`, fstab), and the boot partition's.
ROOT_LABEL = "fd-root"
BOOT_LABEL = "FDBOOT"
#: Where the FAT boot partition is mounted in the running system.
BOOT_MOUNT = "/boot/firmware"
#: The virtualenv Flightdeck is installed into inside the image.
VENV = "/opt/flightdeck"
#: The files the installer writes (the identity tar) and first boot reads.
IDENTITY_ENV = "/etc/flightdeck/frontend.env"
FIRSTBOOT_DONE = "/var/lib/flightdeck/.firstboot-done"
#: The installer image the virtual frontend installs its own computes with.
INSTALLER_DIR = "/var/lib/flightdeck/images/installer"
READY = "FLIGHTDECK-FRONTEND-READY"

#: Debian packages of the image (minbase plus these). Changing the list rebuilds the image.
PACKAGES = (
    "linux-image-cloud-amd64",
    "systemd-sysv",
    "udev",
    "dbus",
    "python3",
    "python3-venv",
    "libvirt0",
    "dnsmasq-base",
    "ipxe",
    "openssh-server",
    "openssh-client",
    "qemu-guest-agent",
    "iproute2",
    "iputils-ping",
    "cloud-guest-utils",
    "fdisk",
    "e2fsprogs",
    "ca-certificates",
    "procps",
    "less",
    "vim-tiny",
)

#: Kernel command line of the installed system. `net.ifnames=0`: the NICs keep the kernel's
#: eth0/eth1 names (the .link files of the identity pin them to their MACs as well).
KERNEL_ARGS = f"root=LABEL={ROOT_LABEL} ro net.ifnames=0 console=tty0 console=ttyS0,115200n8"

SYSLINUX_CFG = f"""\
SERIAL 0 115200
DEFAULT flightdeck
PROMPT 0
TIMEOUT 0
LABEL flightdeck
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND {KERNEL_ARGS}
"""

FSTAB = f"""\
# Flightdeck virtual frontend (written by rocks create frontend image)
LABEL={ROOT_LABEL} / ext4 errors=remount-ro 0 1
LABEL={BOOT_LABEL} {BOOT_MOUNT} vfat defaults,nofail,umask=0077 0 2
"""

#: /etc/kernel/postinst.d and /etc/initramfs/post-update.d hook: syslinux reads the kernel from
#: the FAT partition, so a kernel or initrd that apt installs is copied there (newest version).
KERNEL_HOOK = f"""\
#!/bin/sh
# Copies the newest kernel and initrd to the boot partition syslinux reads (Flightdeck image).
set -e
mountpoint -q {BOOT_MOUNT} || exit 0
version=$(ls /boot/vmlinuz-* 2>/dev/null | sed 's,^/boot/vmlinuz-,,' | sort -V | tail -n 1)
[ -n "$version" ] && [ -f "/boot/initrd.img-$version" ] || exit 0
cp "/boot/vmlinuz-$version" {BOOT_MOUNT}/vmlinuz.new
cp "/boot/initrd.img-$version" {BOOT_MOUNT}/initrd.img.new
mv {BOOT_MOUNT}/vmlinuz.new {BOOT_MOUNT}/vmlinuz
mv {BOOT_MOUNT}/initrd.img.new {BOOT_MOUNT}/initrd.img
sync
"""

#: Once, on the first boot after an install. Every step can run again (a first boot cut short by a
#: power failure starts over); the marker is written last.
FIRSTBOOT = f"""\
#!/bin/sh
# First boot of a Flightdeck virtual frontend (flightdeck-firstboot.service).
set -eu
. {IDENTITY_ENV}
say() {{ echo "flightdeck-firstboot: $* (uptime $(cut -d' ' -f1 /proc/uptime) s)"; }}
# The NIC with a MAC, by name (the identity's .link files name them; this does not depend on it).
nic() {{
    for d in /sys/class/net/*; do
        if [ "$(cat "$d/address")" = "$1" ]; then echo "${{d##*/}}"; return 0; fi
    done
    return 1
}}
rootdev=$(findmnt -n -o SOURCE /)
disk=/dev/$(lsblk -n -o PKNAME "$rootdev")
part=$(cat "/sys/class/block/${{rootdev##*/}}/partition")
if growpart "$disk" "$part" >/dev/null; then
    resize2fs "$rootdev" >/dev/null 2>&1
    say "root file system grown to $(df -h --output=size / | tail -n 1 | tr -d ' ')"
fi
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
    ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
    say "ssh host key $(ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2)"
fi
private=$(nic "$FD_PRIVATE_MAC")
public=$(nic "$FD_PUBLIC_MAC")
{VENV}/bin/rocks init frontend name="$FD_FQDN" \\
    public-ip="$FD_PUBLIC_IP" public-netmask="$FD_PUBLIC_NETMASK" \\
    private-ip="$FD_PRIVATE_IP" private-netmask="$FD_PRIVATE_NETMASK" \\
    gateway="$FD_GATEWAY" dns="$FD_DNS" \\
    public-mac="$FD_PUBLIC_MAC" private-mac="$FD_PRIVATE_MAC" \\
    public-iface="$public" private-iface="$private" \\
    installer={INSTALLER_DIR}
say "rocks init frontend done"
mkdir -p "$(dirname {FIRSTBOOT_DONE})"
date -u +%Y-%m-%dT%H:%M:%SZ > {FIRSTBOOT_DONE}
"""

FIRSTBOOT_UNIT = f"""\
[Unit]
Description=Flightdeck virtual frontend: first boot (grow root, ssh host key, rocks init frontend)
ConditionPathExists=!{FIRSTBOOT_DONE}
ConditionPathExists={IDENTITY_ENV}
After=local-fs.target systemd-networkd.service
Before=ssh.service flightdeck-dhcp.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/flightdeck/firstboot
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""

DHCP_UNIT = f"""\
[Unit]
Description=Flightdeck virtual frontend: dnsmasq and the boot server on the private network
After=flightdeck-firstboot.service systemd-networkd.service
Requires=flightdeck-firstboot.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={VENV}/bin/rocks start service dhcp
ExecStop={VENV}/bin/rocks stop service dhcp
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""

READY_UNIT = """\
[Unit]
Description=Flightdeck virtual frontend: say it is ready on the serial console
After=flightdeck-dhcp.service ssh.service systemd-networkd.service
Requires=flightdeck-dhcp.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/flightdeck/ready

[Install]
WantedBy=multi-user.target
"""

#: The ready line, on the serial console (where the physical side and the owner read it) and in
#: /run/flightdeck-ready (for scripts inside).
READY_SCRIPT = f"""\
#!/bin/sh
. {IDENTITY_ENV}
line="{READY} $FD_FQDN uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "$line" >/run/flightdeck-ready
echo "$line" >/dev/ttyS0
"""

ROCKSD_UNIT = f"""\
[Unit]
Description=Flightdeck virtual frontend: rocksd, so that rocks commands start without importing
# Its imports take ~30 s of CPU under TCG: not before the frontend has said it is ready.
After=flightdeck-ready.service

[Service]
Type=simple
ExecStart={VENV}/bin/rocksd
Nice=10
# rocksd leaves when the code it imported changes on disk (an upgrade): start it on the new code.
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""

#: The guest agent starts only once the frontend is ready: its answer is the readiness signal
#: `rocks list host vm status=y` reads through libvirt.
AGENT_DROPIN = """\
[Unit]
After=flightdeck-ready.service
Requires=flightdeck-ready.service
"""

SERIAL_AUTOLOGIN = """\
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %I $TERM
"""

SSHD_CONFIG = """\
# Flightdeck virtual frontend: the owner logs in with the keys of the cluster, never a password.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
"""

MOTD = """
This is a Flightdeck virtual frontend. Its computes install from here, over the cluster's VLAN:
  insert-ethers                                   name computes as they ask for DHCP
  rocks list host macs <this frontend> key=...    the cluster's MACs, from the physical Airboss
  rocks set host power <MAC> key=... action=install
  rocks list host                                 what this frontend knows
"""

PROFILE = f"""\
# Flightdeck: the commands of the virtual frontend
case ":$PATH:" in *":{VENV}/bin:"*) ;; *) PATH="$PATH:{VENV}/bin" ;; esac
"""


def files() -> dict[str, tuple[str, int]]:
    """The image's own files: path (absolute in the image) -> (text, mode)."""
    unit_dir = "/etc/systemd/system"
    return {
        "/etc/fstab": (FSTAB, 0o644),
        "/etc/kernel/postinst.d/zz-flightdeck-boot": (KERNEL_HOOK, 0o755),
        "/etc/initramfs/post-update.d/zz-flightdeck-boot": (KERNEL_HOOK, 0o755),
        "/usr/local/lib/flightdeck/firstboot": (FIRSTBOOT, 0o755),
        "/usr/local/lib/flightdeck/ready": (READY_SCRIPT, 0o755),
        f"{unit_dir}/flightdeck-firstboot.service": (FIRSTBOOT_UNIT, 0o644),
        f"{unit_dir}/flightdeck-dhcp.service": (DHCP_UNIT, 0o644),
        f"{unit_dir}/flightdeck-ready.service": (READY_UNIT, 0o644),
        f"{unit_dir}/flightdeck-rocksd.service": (ROCKSD_UNIT, 0o644),
        f"{unit_dir}/qemu-guest-agent.service.d/flightdeck.conf": (AGENT_DROPIN, 0o644),
        f"{unit_dir}/serial-getty@ttyS0.service.d/autologin.conf": (SERIAL_AUTOLOGIN, 0o644),
        "/etc/ssh/sshd_config.d/flightdeck.conf": (SSHD_CONFIG, 0o644),
        "/etc/motd": (MOTD, 0o644),
        "/etc/profile.d/flightdeck.sh": (PROFILE, 0o644),
    }


#: Units enabled in the image (systemctl enable).
ENABLED = (
    "flightdeck-firstboot.service",
    "flightdeck-dhcp.service",
    "flightdeck-ready.service",
    "flightdeck-rocksd.service",
    "systemd-networkd.service",
)
#: Units of Debian's packages the virtual frontend does not need at boot (masked): timers that
#: would wake a TCG guest for work nobody asked for.
MASKED = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
)
#: Commands linked into /usr/local/bin from the virtualenv.
COMMANDS = ("rocks", "insert-ethers", "pilot", "airboss")
