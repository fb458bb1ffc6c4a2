"""rocks create frontend image"""

from __future__ import annotations

import time
from pathlib import Path

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, Example, Param, Parsed
from flightdeck.errors import UserError


def _absolute(value: str | None, name: str) -> Path | None:
    if value is None:
        return None
    if not value.startswith("/"):
        raise UserError(f"{name}={value}: give an absolute path")
    return Path(value)


class Command(Base):
    summary = "Build the frontend image virtual frontends install (Debian 12 + Flightdeck)"
    description = """
        Builds a bootable disk image of a Debian 12 system from Debian packages with this
        frontend's own apt sources (mmdebstrap): this Flightdeck (its wheel, with the server
        extra, dependencies at the versions installed here), dnsmasq, iPXE, the installer
        image, sshd, a login on the serial console, syslinux to boot its own kernel. Virtual
        frontends then install with the boot action 'install vm frontend image': the installer
        fetches the image from the boot server's public listener (rocks start service dhcp),
        checks its SHA-256, writes it and the VM's identity (name, addresses, the owner's keys
        as authorized_keys), and the VM boots its own disk and runs rocks init frontend. The
        image is reused while its inputs (Flightdeck, the package list, the apt lists, the
        installer) are unchanged; refresh=yes rebuilds the Debian root too. Progress goes to
        the terminal.
    """
    params = (
        Param(
            "dir",
            "where the image goes",
            default_text="<FLIGHTDECK_HOME or /var/lib/flightdeck>/images/frontend",
        ),
        Param(
            "cache",
            "where the Debian root and the wheels are kept",
            default="/var/cache/flightdeck/frontend",
        ),
        Param("refresh", "rebuild even if nothing changed (new Debian packages)", BOOL, False),
        Param("wheel", "Flightdeck's wheel", default_text="built from this Flightdeck's source"),
        Param("sources", "an apt sources file", default_text="this machine's /etc/apt sources"),
    )
    examples = (
        Example("rocks create frontend image", "Build (or reuse) the image."),
        Example(
            "rocks create frontend image refresh=yes",
            "Rebuild it with today's Debian packages.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.frontend_image import create_frontend_image

        t0 = time.monotonic()
        err = self.ctx.err

        def say(text: str) -> None:
            if err.isatty():
                err.write(f"[{time.monotonic() - t0:5.0f}s] {text}\n")
                err.flush()

        done = create_frontend_image(
            self.ctx.db,
            _absolute(p["dir"], "dir"),
            _absolute(p["cache"], "cache"),
            wheel=_absolute(p["wheel"], "wheel"),
            sources=_absolute(p["sources"], "sources"),
            refresh=p["refresh"],
            say=say,
        )
        img = done.image
        how = "built" if img.rebuilt else "up to date:"
        self.say(f"{how} frontend image {img.path}")
        self.say(f"  sha256  {img.sha256}")
        self.say(
            f"  size    {img.size // 2**20} MiB ({img.disk_bytes // 2**20} MiB disk), "
            f"Linux {img.kernel}, Flightdeck {img.flightdeck}"
        )
        where = done.installer.kernel.parent
        self.say(f"boot action 'install vm frontend image': installer image {where}")
        for name, action in done.others:
            self.say(
                f"note - {name} installs with {action!r}: rocks set host installaction {name} "
                "action='install vm frontend image' to install it from the image"
            )
