"""rocks sync dhcp"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "Write dnsmasq's fixed leases from the database and make the running one reload"
    description = (
        "Rewrites the hosts and options files that 'rocks report host dhcp' prints, and sends "
        "the running dnsmasq SIGHUP, which re-reads them (it is never restarted: leases in "
        "flight survive). Says 'no change' when the files already match the database."
    )
    examples = (Example("rocks sync dhcp", "After adding or changing hosts by hand."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.dhcp import sync_dhcp

        r = sync_dhcp(self.ctx.db)
        if not r.changed:
            self.say(f"dhcp: no change ({r.hosts} fixed lease(s))")
            return
        how = f"dnsmasq reloaded (pid {r.reloaded})" if r.reloaded else "dnsmasq is not running"
        self.say(f"dhcp: wrote {', '.join(str(p) for p in r.changed)}; {r.hosts} fixed lease(s)")
        self.say(f"dhcp: {how}")
