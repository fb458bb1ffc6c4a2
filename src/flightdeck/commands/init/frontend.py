"""rocks init frontend"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Param, Parsed


class Command(Base):
    summary = "Create the cluster database and register this machine as the physical frontend"
    description = """
        Creates (or upgrades) the database in the state directory and registers this machine
        as the physical frontend ("VM server"): the default appliances, the private and public
        networks, the frontend with its two interfaces and the global attributes (VM MAC base
        derived from the public IP, Airboss host, libvirt URI template). Running it again with
        the same name changes nothing.
    """
    params = (
        Param("name", "fully-qualified public name of the frontend", required=True),
        Param("public-ip", "public IPv4 address", required=True),
        Param("public-netmask", "public netmask (dotted or prefix length)", required=True),
        Param("private-ip", "private IPv4 address", required=True),
        Param("private-netmask", "private netmask (dotted or prefix length)", required=True),
        Param(
            "private-hostname", "the frontend's name on the private network", default="frontend-0-0"
        ),
        Param("gateway", "public default gateway", default_text="first address of public"),
        Param("dns", "public DNS servers, comma-separated", default_text="the gateway"),
        Param("public-mac", "MAC of the public interface"),
        Param("private-mac", "MAC of the private interface"),
        Param("public-iface", "public interface device", default="eth1"),
        Param("private-iface", "private interface device", default="eth0"),
        Param(
            "installer",
            "directory of an installer image already built here (rocks create installer "
            "image): install computes with it",
        ),
    )
    examples = (
        Example(
            "rocks init frontend name=espresso.rocksclusters.org public-ip=137.110.119.117 "
            "public-netmask=255.255.255.0 private-ip=10.1.1.1 private-netmask=255.255.0.0",
            "The guide's VM server, espresso.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.frontend import FrontendSpec, init_frontend

        result = init_frontend(
            FrontendSpec(
                name=p["name"],
                public_ip=p["public_ip"],
                public_netmask=p["public_netmask"],
                private_ip=p["private_ip"],
                private_netmask=p["private_netmask"],
                private_hostname=p["private_hostname"],
                gateway=p["gateway"],
                dns_servers=p["dns"],
                public_mac=p["public_mac"],
                private_mac=p["private_mac"],
                public_iface=p["public_iface"],
                private_iface=p["private_iface"],
            )
        )
        if result.created:
            self.say(f"initialised frontend {p['name']} ({p['private_hostname']})")
        else:
            self.say(f"frontend {p['name']} is already initialised; database is up to date")
        if p["installer"]:
            from pathlib import Path

            from flightdeck.errors import UserError
            from flightdeck.services.bootactions import create_installer

            if not p["installer"].startswith("/"):
                raise UserError(f"installer={p['installer']}: give an absolute path")
            done = create_installer(self.ctx.db, Path(p["installer"]), None)
            self.say(f"installer image {done.image.kernel.parent} (Linux {done.image.version})")
