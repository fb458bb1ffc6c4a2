"""rocks set cluster power"""

from __future__ import annotations

import os

from flightdeck.cli.command import Command as Base
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import BOOL, ONE_HOST, POSITIVE, Example, Param, Parsed
from flightdeck.errors import FlightdeckError, PermissionDenied


class Command(Base):
    summary = "Power a virtual cluster in order: the frontend, then its computes once it is ready"
    description = """
        action=on starts the frontend, waits until it is ready (its guest agent answers: the
        frontend image starts it after its boot server; timeout= seconds, then an error and no
        compute is started; wait=no starts the computes right away), then starts every compute
        at once, at most max-parallel per container (attribute kvm_power_parallel, default 4).
        action=off stops the computes first (ACPI, then off after kvm_shutdown_grace seconds,
        default 30), the frontend last; action=install reinstalls in the same order. One line
        per node as it completes, then a summary; nodes already in that state say so and
        succeed; the exit status is non-zero if any node failed. With key= (and always under
        pilot) the Airboss runs the sequence as a job, which goes on if you disconnect
        (follow=no prints its id; 'pilot report job' follows it); reset and shutdown act on
        the computes only, at once. Run on the virtual frontend itself (rocks there, naming
        itself), or with frontend=no, the frontend is left as it is and only its computes are
        powered, as in the original; an install marks them for install in its database,
        where they PXE-boot.
        Without key=, rocks runs it here (root).
    """
    args = ONE_HOST
    params = (
        Param("action", "on, off or install (with key=: also reset, shutdown)", required=True),
        Param("wait", "start the computes only once the frontend is ready", BOOL, default=True),
        Param("timeout", "without key=: seconds to wait for the frontend", POSITIVE,
              default_text="attribute kvm_frontend_ready_timeout, else 900"),
        Param("max-parallel", "computes started at once per container", POSITIVE,
              default_text="attribute kvm_power_parallel, else 4"),
        Param("follow", "with key=: follow the job until it ends", BOOL, default=True),
        Param("frontend", "with key=: power the frontend too (no: its computes only)", BOOL,
              default=True),
        *AIRBOSS_PARAMS,
    )  # fmt: skip
    writes = False
    owner = True
    examples = (
        Example(
            "rocks set cluster power frontend-0-0-0 action=install key=private.key",
            "As the owner: reinstall the cluster in order, through the Airboss.",
        ),
        Example(
            "rocks set cluster power frontend-0-0-0 action=on",
            "As root on the physical frontend: the frontend, then its computes once it is up.",
        ),
    )

    def run(self, p: Parsed) -> None:
        if self.ctx.program.owner_only or p["key"] is not None or p["airboss"] is not None:
            self._owner(p)
            return
        if os.geteuid() != 0:
            raise PermissionDenied(
                "'rocks set cluster power' without key= runs the sequence here and must be "
                "run as root; as the cluster's owner give key=<your private key>"
            )
        from flightdeck.services.clusterpower import NodeResult, power_cluster

        def echo(r: NodeResult) -> None:
            (self.say if r.ok else self.ctx.warn)(r.line())

        done = power_cluster(
            self.ctx.db, p.args[0], p["action"], wait=p["wait"], ready_timeout=p["timeout"],
            max_parallel=p["max_parallel"], echo=echo,
        )  # fmt: skip
        self.say(done.summary())
        if done.failed:
            raise FlightdeckError(
                f"{len(done.failed)} node(s) failed: " + ", ".join(r.node for r in done.failed)
            )

    def _owner(self, p: Parsed) -> None:
        from flightdeck.cli import owner
        from flightdeck.pilot import commands as c

        action = c.check_action(p["action"])
        client = owner.client(self, p)
        target = owner.target(self, p.args[0])
        if action in ("reset", "shutdown"):
            results = c.cluster_power(client, target, action)
            if not results:
                self.say(f"{p.args[0]}: the cluster has no compute nodes")
                return
            c.report(results, self.say, self.ctx.warn)
            return
        # On the virtual frontend itself: its computes only (it must not stop or reinstall
        # the machine this runs on), and an install marks them here, where they PXE-boot.
        here = owner.is_this_frontend(self, target)
        marked: list[str] = []
        if action == "install":
            marked = [n.macs[0] for n in client.macs(target) if not n.frontend and n.macs]
        before = owner.mark_install(self, marked)
        try:
            job = c.start_cluster_job(
                client, target, action, p["wait"], p["max_parallel"],
                frontend=p["frontend"] and not here,
            )  # fmt: skip
        except FlightdeckError:
            owner.restore_boot(self, before, marked)
            raise
        self.say(f"job {job.job}: power {action} of {job.frontend} (the Airboss runs it)")
        if here:
            self.say(f"{p.args[0]} is this machine: left as it is, its computes only")
        elif not p["frontend"]:
            self.say(f"{p.args[0]}: left as it is (frontend=no), its computes only")
        if not p["follow"]:
            self.say(f"follow it with: pilot report job host={p.args[0]} job={job.job}")
            return
        c.follow_job(client, target, job.job, self.say, self.ctx.warn)
