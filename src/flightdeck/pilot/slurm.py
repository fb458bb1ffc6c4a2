"""Slurm power saving through the Airboss: `pilot slurm resume|suspend <hostlist>`.

Slurm's contract for `ResumeProgram` and `SuspendProgram`: one argument, a hostlist of the
nodes (`compute-0-[0-3]`); stdout and stderr go to slurmctld's log; the exit status says
whether it worked. Slurm's node names are the virtual cluster's (`compute-0-0`); the Airboss
knows VMs by their MACs or physical-side names, so each node is mapped:

* with `map=<file>`: lines `<slurm node> <MAC or physical-side name>` (`#` comments);
* else, under `rocks` on the virtual frontend, by its database (the node's first MAC);
* else it is sent as it is.
"""

from __future__ import annotations

from flightdeck.errors import UserError

#: A map file is small; anything larger is not read whole.
MAX_MAP = 1024 * 1024


def read_map(path: str) -> dict[str, str]:
    """The node map in `path`: Slurm name -> what the Airboss is sent."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MAP + 1)
    except OSError as exc:
        raise UserError(f"cannot read the node map {path}: {exc.strerror}") from None
    if len(data) > MAX_MAP:
        raise UserError(f"node map {path} is over {MAX_MAP} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"node map {path} is not UTF-8 text") from None
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise UserError(f"node map {path} line {number}: give '<slurm node> <MAC or VM name>'")
        mapping[words[0]] = words[1]
    return mapping
