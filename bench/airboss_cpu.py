"""The Airboss's CPU per request, counted in instructions: steady where timings are not.

On a shared 2-core machine the same `bench/airboss.py` run moves by +-30 % between minutes;
instruction counts do not. This runs `airboss serve` under valgrind's callgrind three times on
one site (the same 10 test:/// containers and 50-VM cluster as `bench/airboss.py`):

* `idle`   - started, 20 warm-up requests, stopped: the fixed cost (imports, start, stop);
* `health` - the same, then `--requests` unsigned `GET /health` (the HTTP floor: uvicorn, h11,
             Starlette, no signature, no database);
* `signed` - the same, then `--requests` signed `GET /v1/macs` (the 51-node MAC list);

and prints each one's instructions per request over `idle`. The client (pilot's
`AirbossClient`, one connection) runs outside valgrind. Compare two trees by running it with
`PYTHONPATH=<other tree>/src`.

    .venv/bin/python bench/airboss_cpu.py [--requests 300]   # needs valgrind (apt)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from airboss import UNLIMITED, owner_site

WARM_UP = 20


def instructions(home: Path, env: dict[str, str], kind: str, requests: int) -> int:
    """Instructions callgrind counts in one `airboss serve` that answers `requests` of `kind`."""
    from flightdeck.crypto import keys as ck
    from flightdeck.db.engine import open_database
    from flightdeck.pilot.client import AirbossClient
    from flightdeck.services.clusters import cluster_macs

    key = ck.load_private_key(home / "owner.key")
    db = open_database(env.get("FLIGHTDECK_DB"))
    try:
        mac = cluster_macs(db, "frontend-0-0-0")[1][0][0]
    finally:
        db.dispose()
    pid_file, log = home / f"{kind}.pid", home / f"{kind}.log"
    state = pid_file.with_suffix(".json")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         str(Path(sys.executable).parent / "airboss"), "serve", "--listen", "127.0.0.1:0",
         "--pid-file", str(pid_file), *UNLIMITED],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while not state.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"airboss under valgrind did not start: see {log}")
            time.sleep(0.5)
        client = AirbossClient(key, json.loads(state.read_text())["listen"])
        for _ in range(WARM_UP):
            client.macs(mac)
            client.health()
        for _ in range(requests):
            if kind == "signed":
                client.macs(mac)
            else:
                client.health()
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=600)
    found = re.search(r"Collected : (\d+)", log.read_text())
    if found is None:
        raise SystemExit(f"no instruction count in {log}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    a = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    from flightdeck.crypto import keys as ck

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env, key = owner_site(home)
        (home / "owner.key").write_bytes(ck.private_key_to_pem(key, None))
        os.environ.update({k: v for k, v in env.items() if k.startswith("FLIGHTDECK")})
        idle = instructions(home, env, "idle", 0)
        print(f"idle (start, {WARM_UP} warm-up requests of each kind, stop): {idle / 1e6:.0f} M")
        for kind, what in (
            ("health", "GET /health, unsigned"),
            ("signed", "GET /v1/macs, signed (51 nodes)"),
        ):
            total = instructions(home, env, kind, a.requests)
            print(f"{what:34} {(total - idle) / a.requests / 1e6:7.2f} M instructions a request")


if __name__ == "__main__":
    main()
