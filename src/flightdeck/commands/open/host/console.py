"""rocks open host console"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import BOOL, COUNT, ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "Open a VM's VNC or serial console through the Airboss, with your key"
    description = """
        The VM is a MAC, or a name (rocks: one this frontend's database knows is sent as its
        first MAC). console=vnc (the default) listens on 127.0.0.1 (port=, else a free port)
        and relays each connection to it through the Airboss; a VNC viewer is started if one
        is installed (vncviewer, xtightvncviewer, remote-viewer; viewer= chooses, viewer=none
        never), else the address is printed for any viewer and the command waits for Ctrl-C.
        console=serial attaches this terminal to the VM's serial console in raw mode; Ctrl-]
        detaches. When standard input is not a terminal, it is sent as is and the output
        printed until the VM stops. web=yes prints a link to the console page in a browser
        instead (single-use, 60 s).
    """
    args = ONE_HOST
    params = (
        Param("console", "vnc or serial", default="vnc"),
        Param("viewer", "the VNC viewer program, or none", default_text="the first installed"),
        Param("port", "local port to listen on (0: a free one)", COUNT, default=0),
        Param("web", "print a one-time link to the console in a browser", BOOL, default=False),
        *AIRBOSS_PARAMS,
    )
    writes = False
    owner = True
    examples = (
        Example(
            "rocks open host console frontend-0-0-0 key=private.key",
            "Watch the virtual frontend's screen (its install) in a VNC viewer.",
        ),
        Example(
            "rocks open host console 36:77:6e:c0:00:02 console=serial key=private.key",
            "Attach this terminal to a compute node's serial console (Ctrl-] leaves).",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.cli import owner
        from flightdeck.errors import FlightdeckError
        from flightdeck.pilot.console import check_kind, open_console

        kind = check_kind(p["console"])
        client = owner.client(self, p)
        target = owner.target(self, p.args[0])
        if p["web"]:
            from flightdeck.pilot.webconsole import print_web_console

            print_web_console(client, target, kind, self.say, self.ctx.warn)
            return
        code = open_console(
            client,
            target,
            kind=kind,
            viewer=p["viewer"],
            port=int(p["port"]),
            say=self.say,
            warn=self.ctx.warn,
        )
        if code:
            raise FlightdeckError(f"the console of {target} ended with status {code}")
