"""rocks report cluster"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "Print a virtual cluster as a spec (YAML or JSON) that 'rocks apply cluster' reads"
    description = """
        The frontend (name, FQDN, public IP, gateway, container, CPUs, memory, disks, boot
        actions, CD-ROM, attributes, owner keys), the VLAN, and the computes: the defaults they
        share and one entry per node with its container and what differs. Attributes that an
        installed plugin declares are listed under that plugin. Applying the printed spec to
        the same database changes nothing; applied to another site it makes the same cluster.
        The schema is docs/cluster-spec.schema.json.
    """
    args = ONE_HOST
    params = (Param("format", "yaml or json", default="yaml"),)
    writes = False
    examples = (
        Example(
            "rocks report cluster frontend-0-0-0",
            "The guide's cluster as code: save it, change it, rocks apply cluster file=...",
        ),
        Example("rocks report cluster frontend-0-0-0 format=json", "The same, as JSON."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.spec.model import render_spec
        from flightdeck.services.spec.report import report_cluster

        fmt = (p["format"] or "yaml").strip().lower()
        if fmt not in ("yaml", "json"):
            from flightdeck.errors import UserError

            raise UserError(f"format={p['format']!r}: use yaml or json")
        self.ctx.out.write(render_spec(report_cluster(self.ctx.db, p.args[0]), fmt))
