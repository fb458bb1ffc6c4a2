"""Example Flightdeck lifecycle plugin: pin VMs to a container, tag their domain, log releases.

Copy it into the plugin directory (`$FLIGHTDECK_PLUGIN_DIR`, default
`/var/lib/flightdeck/plugins`) and it runs at every `rocks start host vm` and
`rocks stop host vm ... terminate=yes`. The test suite runs this very file.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from sqlalchemy import select

from flightdeck.db import attrs
from flightdeck.db.models import VM, Host
from flightdeck.services.plugins import PluginContext


class Plugin:
    name = "pin-and-tag"
    order = 50

    def allocate(self, ctx: PluginContext) -> None:
        """Move the VM to the container its attribute `pin_container` names (the DB is writable)."""
        assert ctx.session is not None
        s = ctx.session
        host = s.scalar(select(Host).where(Host.name == ctx.vm))
        assert host is not None
        target = attrs.resolve(s, host, "pin_container")
        if not target:
            return
        container = s.scalar(select(Host).where(Host.name == target))
        if container is None:
            raise ValueError(f"pin_container names an unknown host {target!r}")
        vm = s.scalar(select(VM).where(VM.host_id == host.id))
        assert vm is not None
        vm.container_id = container.id

    def preboot(self, ctx: PluginContext) -> str | None:
        """Return the domain XML with a description saying who started it."""
        assert ctx.xml is not None
        root = ET.fromstring(ctx.xml)
        desc = root.find("description")
        if desc is None:
            desc = ET.Element("description")
            root.insert(1, desc)
        desc.text = f"started by Flightdeck on {ctx.container}"
        return ET.tostring(root, encoding="unicode")

    def disallocate(self, ctx: PluginContext) -> None:
        """Append the released VM to a log file (`$PIN_AND_TAG_LOG`), one line per release."""
        log = os.environ.get("PIN_AND_TAG_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"released {ctx.vm} on {ctx.container}\n")
