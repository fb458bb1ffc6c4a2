"""`rocks start service dhcp`: dnsmasq and the boot server, started in the background.

Apart from `services.dhcp` (the files, the status, the stop) because of what it starts: the
boot server's process (`python -m flightdeck.services.bootserver`) answers from
`services.provisioning`, which uses `services.dhcp` (insert-ethers syncs the leases). Naming
that process from `services.dhcp` would close a circle; from here, above both, it does not.
"""

from __future__ import annotations

import json
import sys

from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.errors import Conflict, UserError
from flightdeck.process.daemon import in_netns, python_module
from flightdeck.pxe import bootserver, discovery, dnsmasq, ipxe
from flightdeck.services.base import reading
from flightdeck.services.dhcp import (
    STATE_NAME,
    Status,
    boot_daemon,
    dhcp_dir,
    discovery_hook,
    discovery_pool,
    discovery_socket,
    make_dhcp_dir,
    paths,
    render,
    site,
    status,
)
from flightdeck.services.reverter import Reverter

#: The boot server's process (`services.bootserver`), started by its module's path.
BOOTSERVER_MODULE = "flightdeck.services.bootserver"
#: Seconds the boot server has to listen.
BOOTSERVER_TIMEOUT = 20.0


def start_service(
    db: Database,
    *,
    netns: str | None = None,
    interface: str | None = None,
    port: int = bootserver.DEFAULT_PORT,
    ra: bool = True,
    public: bool | None = None,
) -> Status:
    """Write dnsmasq's files and the TFTP chain script, start dnsmasq and the boot server.

    `public`: the boot server also listens on the frontend's public address, where virtual
    frontends fetch the frontend image (yes, no, or None: when that address is here).
    """
    now = status()
    if now.dnsmasq is not None or now.bootserver is not None:
        raise Conflict(
            f"the DHCP service already runs (dnsmasq pid {now.dnsmasq}, boot server pid "
            f"{now.bootserver}): rocks stop service dhcp first"
        )
    if not 1 <= port <= 65535:
        raise UserError(f"port={port} is not a TCP port (1-65535)")
    with reading(db) as s:
        st = site(s)
        pool = discovery_pool(s, st)
        public_ip = attrs.global_value(s, "Kickstart_PublicAddress")
    if public is None:
        public = bool(public_ip) and bootserver.local_address(str(public_ip), netns)
    elif public and not public_ip:
        raise UserError("the frontend has no public address (Kickstart_PublicAddress)")
    files = render(db, interface, ra, pool)
    iface = interface or st.interface or ""
    p = paths()
    make_dhcp_dir()
    p.tftp.mkdir(exist_ok=True)
    base = f"http://{st.server_ip}:{port}"
    dnsmasq.write_if_changed(p.conf, files.conf)
    dnsmasq.write_if_changed(p.hosts, files.hosts)
    dnsmasq.write_if_changed(p.opts, files.opts)
    dnsmasq.write_if_changed(p.tftp / dnsmasq.CHAIN_NAME, ipxe.chain_script(base))
    dnsmasq.write_if_changed(p.tftp / dnsmasq.DISCOVER_NAME, ipxe.discover_script())
    hook = discovery.render_hook(sys.executable, discovery_socket(), iface, pool)
    dnsmasq.write_if_changed(discovery_hook(), hook, mode=0o700)
    undionly = dnsmasq.find_undionly()
    if undionly is not None:
        target = p.tftp / dnsmasq.UNDIONLY_NAME
        if not target.exists():
            target.write_bytes(undionly.read_bytes())
    with Reverter() as undo:
        dnsmasq.start(p, netns)
        undo.add("dnsmasq", lambda: dnsmasq.stop(p))
        boot = boot_daemon()
        argv = ["--listen", st.server_ip, "--port", str(port), "--pid-file", str(boot.pid_file)]
        if public:
            argv += ["--public", str(public_ip)]
        boot.spawn(
            [*in_netns(netns), *python_module(BOOTSERVER_MODULE, *argv)],
            timeout=BOOTSERVER_TIMEOUT,
            cwd=None,  # the database may be a relative FLIGHTDECK_HOME / FLIGHTDECK_DB
        )
        undo.success()
    state = {
        "netns": netns,
        "interface": iface,
        "url": base,
        "ra": ra,
        "pool": [pool.first, pool.last],
        "port": port,
        "public_url": f"http://{public_ip}:{port}" if public else None,
    }
    dnsmasq.write_if_changed(dhcp_dir() / STATE_NAME, json.dumps(state) + "\n")
    return status()
