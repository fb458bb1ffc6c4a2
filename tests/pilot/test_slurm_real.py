"""Slurm's power saving drives the virtual cluster, with a real slurmctld (Debian's slurm-wlm)
and munge in a network namespace this test creates (issue 18).

A job submitted with sbatch to powered-off `State=CLOUD` nodes makes slurmctld run our
ResumeProgram (`pilot slurm resume <hostlist>` with an attenuated token and a node map), whose
requests reach the Airboss (also in the namespace) and power the VMs on; forcing the nodes down
(`scontrol update ... state=power_down_force`, what SuspendTime does for idle nodes that had
joined) runs SuspendProgram, which powers them off. The nodes' slurmd never joins (no guest
image here): the audit log, which the Airboss writes to the shared database, is the witness.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("biscuit_auth")

from flightdeck.crypto import capability as cap

VENV_BIN = Path(sys.executable).parent
NEEDED = ("slurmctld", "sbatch", "scontrol", "scancel", "munged", "mungekey", "ip")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or any(shutil.which(c) is None for c in NEEDED),
        reason="needs root and Debian's slurmctld, slurm-client and munge",
    ),
]


@contextlib.contextmanager
def namespace() -> Iterator[str]:
    """A network namespace with lo up, plus 127.0.0.2 (slurmctld's getaddrinfo needs an
    address besides 127.0.0.1, see the feasibility notes)."""
    name = f"fdslurm-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", "127.0.0.2/32", "dev", "lo"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


SLURM_CONF = """\
ClusterName=fdtest
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={d}/munge/munge.socket.2
CredType=cred/munge
StateSaveLocation={d}/state
SlurmctldPidFile={d}/slurmctld.pid
SlurmctldLogFile={d}/slurmctld.log
SelectType=select/cons_tres
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
PrivateData=cloud
SuspendProgram={d}/suspend.sh
ResumeProgram={d}/resume.sh
ResumeFailProgram={d}/suspend.sh
SuspendTime=600
SuspendTimeout=30
ResumeTimeout=300
NodeName=compute-0-[0-1] State=CLOUD CPUs=1 RealMemory=100
PartitionName=batch Nodes=compute-0-[0-1] Default=YES MaxTime=INFINITE State=UP
"""

PROGRAM = """\
#!/bin/sh
# Slurm's {verb} program: one hostlist argument; our output goes to the log.
exec {pilot} slurm {verb} "$1" token={d}/power.token map={d}/nodes.map \\
     airboss={airboss} >> {d}/{verb}.log 2>&1
"""


def power_rows(site: Any, action: str, token_id: str) -> list[Any]:
    return [
        r
        for r in site.audit(200)
        if r.operation == f"power {action}" and r.token_id == token_id and r.accepted
    ]


def test_slurm_resumes_and_suspends_vms_through_the_airboss(site: Any, alice: Any) -> None:
    if not site.url.startswith("sqlite"):
        pytest.skip("the Airboss runs in the namespace: SQLite only (no route to PostgreSQL)")
    # munged wants every directory above its socket world-executable: pytest's are 0700.
    d = Path(tempfile.mkdtemp(prefix="fdslurm-"))
    (d / "munge").mkdir()
    (d / "state").mkdir()
    for p in (d, d / "munge"):
        p.chmod(0o755)
    try:
        _run(site, alice, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _run(site: Any, alice: Any, d: Path) -> None:
    computes = site.cluster_a[1:3]
    (d / "nodes.map").write_text(
        "".join(f"compute-0-{i} {site.mac(n)}\n" for i, n in enumerate(computes))
    )
    token = cap.attenuate(
        cap.mint(alice.key, cap.Restrictions()),
        cap.Restrictions(ops=("power.on", "power.off"), hosts=tuple(site.mac(n) for n in computes)),
    )
    (d / "power.token").write_text(token.dump())
    env = {**os.environ, "FLIGHTDECK_HOME": str(site.tmp), "SLURM_CONF": str(d / "slurm.conf")}
    with contextlib.ExitStack() as stack, namespace() as ns:
        run = ["ip", "netns", "exec", ns]
        subprocess.run(["mungekey", "-c", "-k", str(d / "munge" / "munge.key")], check=True)
        munged = subprocess.Popen(
            [*run, "munged", "-F", f"--key-file={d}/munge/munge.key",
             f"--socket={d}/munge/munge.socket.2", f"--pid-file={d}/munge/munged.pid",
             f"--log-file={d}/munge/munged.log", f"--seed-file={d}/munge/seed"],
            stdout=subprocess.DEVNULL, stderr=(d / "munged.err").open("wb"),
        )  # fmt: skip
        stack.callback(stop, munged)
        wait_for("munged's socket", (d / "munge" / "munge.socket.2").exists, 20)

        state = d / "airboss.json"
        with (d / "airboss.log").open("wb") as log:
            airboss = subprocess.Popen(
                [*run, str(VENV_BIN / "airboss"), "serve", "--listen", "127.0.0.1:0",
                 "--database", site.url, "--pid-file", str(d / "airboss.pid")],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        stack.callback(stop, airboss)
        url = wait_for(
            "the Airboss", lambda: state.exists() and json.loads(state.read_text()).get("url")
        )
        for verb in ("resume", "suspend"):
            script = d / f"{verb}.sh"
            script.write_text(PROGRAM.format(verb=verb, d=d, pilot=VENV_BIN / "pilot",
                                             airboss=url.split("://", 1)[1]))  # fmt: skip
            script.chmod(0o755)
        (d / "slurm.conf").write_text(SLURM_CONF.format(d=d))
        with (d / "slurmctld.out").open("wb") as out:
            ctld = subprocess.Popen([*run, "slurmctld", "-D", "-f", str(d / "slurm.conf")],
                                    stdout=out, stderr=subprocess.STDOUT, env=env)  # fmt: skip
        stack.callback(stop, ctld)

        def slurm(*argv: str) -> str:
            done = subprocess.run([*run, *argv], env=env, capture_output=True, text=True,
                                  timeout=60, check=False)  # fmt: skip
            assert done.returncode == 0, (argv, done.stderr, (d / "slurmctld.log").read_text())
            return done.stdout

        wait_for("slurmctld", lambda: subprocess.run(
            [*run, "sinfo"], env=env, capture_output=True, check=False).returncode == 0)
        submitted = slurm("sbatch", "-N2", "--wrap", "hostname")
        job = submitted.split()[-1]
        rows = wait_for("two power-on requests with the token",
                        lambda: len(power_rows(site, "on", token.id)) == 2 and
                        power_rows(site, "on", token.id))  # fmt: skip
        assert {r.target for r in rows} == {site.mac(n) for n in computes}
        assert all(r.keyid == alice.keyid and "power.on" in r.restrictions for r in rows)
        assert "compute-0-0" in (d / "resume.log").read_text()

        slurm("scancel", job)
        slurm("scontrol", "update", "nodename=compute-0-[0-1]", "state=power_down_force")
        wait_for("two power-off requests with the token",
                 lambda: len(power_rows(site, "off", token.id)) == 2)  # fmt: skip
        assert "error" not in (d / "suspend.log").read_text()
