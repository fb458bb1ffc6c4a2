"""rocks apply cluster"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, Example, Param, Parsed


class Command(Base):
    summary = "Make a virtual cluster what a spec says: print the plan, apply it in one go"
    description = """
        Compares the spec (YAML or JSON, as 'rocks report cluster' prints it; schema
        docs/cluster-spec.schema.json) with the database and, for VMs that run, with libvirt,
        and prints one line per change: '+ hosted-vm-0-1-1 on vm-container-0-1' (added),
        '~ hosted-vm-0-0-0 memory 1024 -> 2048 (needs a restart)' (changed), '- hosted-vm-0-1-1'
        (removed). A cluster that does not exist is created as 'rocks add cluster' would.
        Everything is one transaction, and the VMs it stops or restarts are put back if a
        later step fails. CPUs, memory and removals of a running VM need it stopped: refused
        unless restart=yes. Keys absent from the spec are left as they are.
    """
    params = (
        Param("file", "the spec: a file, or - for standard input", required=True),
        Param("dry-run", "print the plan, change nothing", BOOL, default=False),
        Param("restart", "stop and start running VMs whose change needs it", BOOL, default=False),
    )
    examples = (
        Example(
            "rocks apply cluster file=vc1.yaml dry-run=yes",
            "Show what applying vc1.yaml would change.",
        ),
        Example(
            "rocks apply cluster file=vc1.yaml restart=yes",
            "Apply it, restarting running VMs whose memory or CPUs change.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.spec.apply import apply_cluster

        name, text = _read(p["file"], self.ctx)
        done = apply_cluster(self.ctx.db, text, name, dry_run=p["dry_run"], restart=p["restart"])
        for line in done.lines:
            self.say(line)
        for line in done.warnings:
            self.ctx.warn(line)
        if not done.lines:
            self.say("no changes: the cluster is as the spec says")
        elif done.dry_run:
            self.say(f"dry run: {_count(done.lines)}; nothing was changed")
        else:
            self.say(f"applied: {_count(done.lines)}")


def _count(lines: list[str]) -> str:
    signs = [line[:1] for line in lines]
    return f"{signs.count('+')} to add, {signs.count('~')} to change, {signs.count('-')} to remove"


def _read(path: str, ctx: object) -> tuple[str, str]:
    """The spec's text and the name its errors use; a file of at most MAX_SPEC_BYTES."""
    import sys

    from flightdeck.errors import UserError
    from flightdeck.services.spec.model import MAX_SPEC_BYTES

    if path == "-":
        data = sys.stdin.buffer.read(MAX_SPEC_BYTES + 1)
        name = "<stdin>"
    else:
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            raise UserError(f"cannot read file={path}: {exc.strerror}") from None
        name = path
    if len(data) > MAX_SPEC_BYTES:
        raise UserError(f"file={path} is larger than {MAX_SPEC_BYTES // (1 << 20)} MB")
    try:
        return name, data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"file={path} is not UTF-8 text") from None
