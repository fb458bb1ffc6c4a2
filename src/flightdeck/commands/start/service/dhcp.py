"""rocks start service dhcp"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, INT, Example, Param, Parsed, to_bool


class Command(Base):
    summary = "Start dnsmasq (DHCP, TFTP) and the boot server on the private network"
    description = """
        Writes dnsmasq's files from the database under <state dir>/dhcp (see 'rocks report
        host dhcp'), the TFTP chain script boot.ipxe, and starts dnsmasq and the boot server
        (HTTP on the frontend's private address: iPXE scripts, boot files, install
        instructions and completion reports), both in the background without systemd, with
        their pid files and logs there. netns= runs both inside a network namespace (labs,
        tests); ra=no leaves out the IPv6 router advertisement (it saves iPXE ~13 s a boot).
        The boot server also listens on the frontend's public address when that address is
        here (public=auto): virtual frontends fetch the frontend image there, and nothing else
        is answered on it.
    """
    params = (
        Param(
            "interface",
            "the device dnsmasq listens on",
            default_text="the frontend's private interface",
        ),
        Param("netns", "run inside this network namespace"),
        Param("port", "the boot server's TCP port", INT, default=8078),
        Param("ra", "send an IPv6 router advertisement", BOOL, default=True),
        Param(
            "public",
            "also serve virtual frontends' image installs on the public address (yes/no)",
            default_text="yes when the public address is here",
        ),
    )
    examples = (
        Example("rocks start service dhcp", "Serve the private network."),
        Example(
            "rocks start service dhcp netns=lab interface=srv0",
            "Serve a lab network inside the namespace 'lab'.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.dhcp_service import start_service

        public = None if p["public"] in (None, "auto") else to_bool(p["public"], "public")
        st = start_service(
            self.ctx.db,
            netns=p["netns"],
            interface=p["interface"],
            port=p["port"],
            ra=p["ra"],
            public=public,
        )
        where = f" in netns {st.netns}" if st.netns else ""
        self.say(f"dnsmasq started (pid {st.dnsmasq}) on {st.interface}{where}; log {st.log}")
        self.say(f"boot server started (pid {st.bootserver}) on {st.url}")
        if st.public_url:
            self.say(f"boot server serves virtual frontends' image installs on {st.public_url}")
