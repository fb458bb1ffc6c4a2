"""rocks create installer image"""

from __future__ import annotations

from pathlib import Path

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Param, Parsed
from flightdeck.errors import UserError


def _absolute(value: str | None, name: str) -> Path | None:
    if value is None:
        return None
    if not value.startswith("/"):
        raise UserError(f"{name}={value}: give an absolute path")
    return Path(value)


class Command(Base):
    summary = "Build the installer image (Debian kernel + busybox) and install with it"
    description = """
        Downloads (does not install) the Debian cloud kernel and busybox-static with apt-get,
        and builds a kernel and a small initramfs in dir. The guest prints
        FLIGHTDECK-BOOTED host=<fd.host=> on its serial console and, with fd.stamp=1, writes a
        stamp to the start of its first disk, then powers off. Then the boot action
        'install vm frontend' uses it (its arguments kept, with console=ttyS0 last) and the
        boot action 'install' uses it with console=ttyS0 fd.stamp=1. Running it again reuses
        the image unless the packages changed.
    """
    params = (
        Param(
            "dir",
            "where the kernel and initrd go",
            default_text="<FLIGHTDECK_HOME or /var/lib/flightdeck>/images/installer",
        ),
        Param("cache", "where the downloaded debs are kept", default="/var/cache/flightdeck/debs"),
    )
    examples = (
        Example("rocks create installer image", "Build it in the state directory."),
        Example(
            "rocks create installer image dir=/export/flightdeck/installer",
            "Build it elsewhere (the path must be the same on every container).",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.bootactions import create_installer

        done = create_installer(
            self.ctx.db, _absolute(p["dir"], "dir"), _absolute(p["cache"], "cache")
        )
        img = done.image
        how = "built" if img.rebuilt else "up to date:"
        self.say(f"{how} installer image {img.kernel.parent} (Linux {img.version})")
        self.say(f"  kernel  {img.kernel}")
        self.say(f"  initrd  {img.initrd}")
        for name, _kernel, _ramdisk, args in done.actions:
            self.say(f"boot action {name!r}: args {args!r}")
