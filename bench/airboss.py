"""The Airboss under load: signed power requests against the HTTP floor and the direct call.

One run, one machine, same database and the same libvirt test driver behind:

* `health`  - unsigned GET /health of the same Airboss process: the HTTP floor (uvicorn,
              Starlette, the client), no signature, no database;
* `signed power` - POST /v1/power, each client toggling its own VM on and off, signed with
              Ed25519 by the pilot client library: signature, replay cache (database insert),
              rate limit, authorisation, the power operation, the audit row;
* `signed macs`  - GET /v1/macs (no libvirt): the signed pipeline with a light operation;
  `signed macs, threaded` the same on a second Airboss with `gate_on_loop=false` (the gate's
  transaction in a database thread, as before issue 20), with each server's CPU per request;
* `direct power` - `services.airboss.power.on/off` in this process, as many threads: the same
              operation with no HTTP and no signature;

each with 1, 10 and 50 concurrent clients (threads, one keep-alive connection each), then the
CPU cost of one signature verification (Ed25519, RSA-3072 PSS), in this process.

With capability tokens (issue 18), in the same run:

* `token macs` - GET /v1/macs made with an attenuated token (its binding appended by the client
              for each request) instead of a signature: the same pipeline plus the token's
              checks;
* `slurm resume` - what `pilot slurm resume` does for 32 nodes (`--slurm-nodes`): 32 token
              power-on requests in parallel (32 threads), wall time of the batch, then the
              same for suspend (power off): the control plane's part of Slurm's ResumeTimeout;
* CPU per request in this process: binding (client) and full verification (Airboss) of a token
  against signing and verifying a signature.

    .venv/bin/python bench/airboss.py [--seconds 5] [--clients 1,10,50] [--database URL]

The Airboss runs as `airboss serve` (one process), its rate limit raised for the run. The
clients run in this process, on the same 2 cores: their cost is in every figure alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import start_airboss

VENV_BIN = Path(sys.executable).parent
CONTAINERS = 10
COMPUTES = 50


def rocks(env: dict[str, str], *args: str) -> None:
    subprocess.run([str(VENV_BIN / "rocks"), *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)


#: `airboss serve` arguments that lift its rate limits for a benchmark's load.
UNLIMITED = ("--rate", "1000000", "--burst", "1000000",
             "--set", "client_rate=1000000", "--set", "client_burst=1000000")  # fmt: skip


def build_site(home: Path, env: dict[str, str]) -> None:
    rocks(env, "init", "frontend", "name=bench.example.org", "public-ip=192.0.2.10",
          "public-netmask=255.255.255.0", "private-ip=10.1.1.1", "private-netmask=255.255.0.0")
    rocks(env, "set", "attr", "kvm_domain_type", "qemu")
    rocks(env, "set", "attr", "kvm_disk_dir", str(home / "disks"))
    rocks(env, "set", "host", "attr", "frontend-0-0", "libvirt_uri",
          f"test://{_node(home, 'frontend-0-0')}")
    for c in range(CONTAINERS):
        name = f"vm-container-0-{c}"
        rocks(env, "add", "host", name, "membership=VM Container", "rack=0", f"rank={c}")
        rocks(env, "add", "host", "interface", name, "eth0", f"mac=52:54:00:fd:01:{c:02x}",
              "ip=auto", "subnet=private")
        rocks(env, "set", "host", "attr", name, "libvirt_uri", f"test://{_node(home, name)}")
    rocks(env, "add", "cluster", "192.0.2.20", str(COMPUTES), "disk-per-compute=1",
          "disk-per-frontend=1", "mem-per-compute=256", "mem-per-frontend=256")


def owner_key(home: Path, env: dict[str, str]) -> Any:
    """A new Ed25519 key for the owner of the bench cluster: its public half in
    `home/owner.pub` and added to the cluster's frontend (`rocks add host key`)."""
    from flightdeck.crypto import keys

    key = keys.generate_private_key()
    (home / "owner.pub").write_text(keys.public_key_to_pem(key.public_key()))
    rocks(env, "add", "host", "key", "frontend-0-0-0", f"key={home / 'owner.pub'}")
    return key


def owner_site(home: Path, database: str | None = None) -> tuple[dict[str, str], Any]:
    """The bench site under `home` (on `database`, a URL, or SQLite there) with its owner's
    key: the environment that names it, and the key (`owner_key`)."""
    env = dict(os.environ, FLIGHTDECK_HOME=str(home))
    if database:
        env["FLIGHTDECK_DB"] = database
    else:
        env.pop("FLIGHTDECK_DB", None)
    build_site(home, env)
    return env, owner_key(home, env)


def _node(home: Path, name: str) -> Path:
    path = home / f"{name}.xml"
    path.write_text("<node/>\n")
    return path


def measure(clients: int, seconds: float, work: Callable[[int, int], object]) -> dict[str, float]:
    """Run `work(client, i)` in `clients` threads for `seconds`; throughput and latencies."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def loop(n: int) -> None:
        start.wait()
        i = 0
        mine = latencies[n]
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            try:
                work(n, i)
            except Exception as exc:  # counted, and the first one shown
                errors.append(exc)
            mine.append(time.perf_counter() - t0)
            i += 1

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        print(f"  ({len(errors)} error(s), first: {errors[0]})")
    flat = sorted(x for xs in latencies for x in xs)
    return {
        "n": len(flat),
        "rps": len(flat) / elapsed,
        "p50": flat[len(flat) // 2] * 1000,
        "p99": flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000,
    }


def verification_cost(rounds: int = 2000) -> dict[str, float]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from flightdeck.crypto import keys as ck
    from flightdeck.crypto.httpsig import InMemoryNonceCache, sign_request, verify_request

    out = {}
    body = json.dumps({"target": "76:77:6e:40:00:02", "action": "on"}).encode()
    for name, key in (("Ed25519", ck.generate_private_key()),
                      ("RSA-3072", rsa.generate_private_key(65537, 3072))):
        pub = key.public_key()
        n = rounds if name == "Ed25519" else rounds // 4
        signed = [sign_request("POST", "/v1/power", "", body, key) for _ in range(n)]
        cache = InMemoryNonceCache()

        def lookup(_keyid: str, pub: Any = pub) -> list[Any]:
            return [pub]

        t0 = time.process_time()
        for headers in signed:
            verify_request("POST", "/v1/power", "", headers, body, lookup, seen_nonce=cache)
        out[f"verify {name}"] = (time.process_time() - t0) / n * 1e6
        t0 = time.process_time()
        for _ in range(n):
            sign_request("POST", "/v1/power", "", body, key)
        out[f"sign {name}"] = (time.process_time() - t0) / n * 1e6
    return out


def token_cost(rounds: int = 1000) -> dict[str, float]:
    """CPU per request, microseconds: a token's binding and verification (2 blocks plus the
    binding) against an Ed25519 signature's, same body, same process."""
    import datetime as dt

    from flightdeck.crypto import capability as cap
    from flightdeck.crypto import keys as ck
    from flightdeck.crypto.httpsig import InMemoryNonceCache, sign_request, verify_request

    key = ck.generate_private_key()
    pub = key.public_key()
    body = json.dumps({"target": "76:77:6e:40:00:02", "action": "on"}).encode()
    token = cap.attenuate(
        cap.mint(key, cap.Restrictions()),
        cap.Restrictions(
            ops=("power.on", "power.off"),
            hosts=tuple(f"compute-0-0-{i}" for i in range(32)),
            until=dt.datetime.now(dt.UTC) + dt.timedelta(hours=8),
        ),
    )
    out: dict[str, float] = {}
    t0 = time.process_time()
    signed = [sign_request("POST", "/v1/power", "", body, key) for _ in range(rounds)]
    out["sign Ed25519"] = (time.process_time() - t0) / rounds * 1e6
    cache = InMemoryNonceCache()
    t0 = time.process_time()
    for headers in signed:
        verify_request("POST", "/v1/power", "", headers, body, lambda _k: [pub], seen_nonce=cache)
    out["verify Ed25519"] = (time.process_time() - t0) / rounds * 1e6
    t0 = time.process_time()
    bound = [cap.bind(token, "POST", "/v1/power", "", body) for _ in range(rounds)]
    out["bind token"] = (time.process_time() - t0) / rounds * 1e6
    cache = InMemoryNonceCache()
    now = int(time.time())
    t0 = time.process_time()
    verified = [
        cap.verify("POST", "/v1/power", "", h, body, lambda _k: [pub], now=now, max_skew=30,
                   revoked=lambda _ids: None, seen_nonce=cache)
        for h in bound
    ]  # fmt: skip
    out["verify token"] = (time.process_time() - t0) / rounds * 1e6
    t0 = time.process_time()
    for v in verified:
        v.authorize("power.on", ["compute-0-0-7", "76:77:6e:40:00:02"], "127.0.0.1", now)
    out["authorize token"] = (time.process_time() - t0) / rounds * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", default="1,10,50")
    ap.add_argument("--database", help="a database URL (default: SQLite in a temp directory)")
    ap.add_argument("--slurm-nodes", type=int, default=32)
    a = ap.parse_args()
    levels = [int(x) for x in a.clients.split(",")]

    from flightdeck.db.engine import open_database
    from flightdeck.pilot.client import AirbossClient
    from flightdeck.services.airboss import access
    from flightdeck.services.airboss import power as power_svc
    from flightdeck.services.clusters import cluster_macs

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env, key = owner_site(home, a.database)
        os.environ.update({k: v for k, v in env.items() if k.startswith("FLIGHTDECK")})
        db = open_database(env.get("FLIGHTDECK_DB"))
        nodes = cluster_macs(db, "frontend-0-0-0")
        computes = [(macs[0], name) for macs, name in nodes[1:]]
        proc, address = start_airboss(home, env, *UNLIMITED)
        # The baseline of the gate on the event loop (SQLite): the same server with the gate's
        # transaction handed to a database thread, as every request was before.
        threaded, threaded_address = start_airboss(home, env, *UNLIMITED,
                                                   "--set", "gate_on_loop=false",
                                                   name="airboss-threaded")
        try:
            client = AirbossClient(key, address)
            threaded_client = AirbossClient(key, threaded_address)
            keyid = client.keyid
            from flightdeck.crypto import capability as cap

            token = cap.attenuate(
                cap.mint(key, cap.Restrictions()),
                cap.Restrictions(ops=("macs", "power.on", "power.off"),
                                 hosts=tuple(m for m, _n in computes)),
            )  # fmt: skip
            tclient = AirbossClient(None, address, token=token)
            print(f"Airboss {address}, database {db.dialect}, {CONTAINERS} test:/// containers, "
                  f"{len(computes)} VMs, {a.seconds:g} s per figure")
            print(f"{'':22}{'clients':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'n':>8}"
                  f"{'server CPU ms/req':>19}")
            results: dict[tuple[str, int], dict[str, float]] = {}

            def show(what: str, clients: int, r: dict[str, float]) -> None:
                results[(what, clients)] = r
                cpu = f"{r['cpu_ms']:>19.2f}" if "cpu_ms" in r else ""
                print(f"{what:22}{clients:>8}{r['rps']:>10.0f}{r['p50']:>10.2f}"
                      f"{r['p99']:>10.2f}{r['n']:>8.0f}{cpu}", flush=True)

            def on_server(pid: int, clients: int, work: Callable[[int, int], object]
                          ) -> dict[str, float]:
                """`measure`, with the server process's CPU (user + system) per request."""
                before = process_cpu(pid)
                r = measure(clients, a.seconds, work)
                return {**r, "cpu_ms": 1000 * (process_cpu(pid) - before) / max(r["n"], 1)}

            for clients in levels:
                show("health", clients, measure(clients, a.seconds,
                                                lambda _n, _i: client.health()))
                show("signed macs", clients, on_server(
                    proc.pid, clients, lambda _n, _i: client.macs(computes[0][0])))
                show("signed macs, threaded", clients, on_server(
                    threaded.pid, clients, lambda _n, _i: threaded_client.macs(computes[0][0])))

                def remote(n: int, i: int) -> None:
                    client.power(computes[n][0], "on" if i % 2 == 0 else "off")

                show("signed power", clients, measure(clients, a.seconds, remote))
                targets = [access.authorise(db, keyid, mac) for mac, _name in computes]

                def direct(n: int, i: int, targets: list[Any] = targets) -> None:
                    (power_svc.on if i % 2 == 0 else power_svc.off)(db, targets[n])

                show("direct power", clients, measure(clients, a.seconds, direct))
                show("token macs", clients, measure(
                    clients, a.seconds, lambda _n, _i: tclient.macs(computes[0][0])))
                # Leave every VM off for the next level (an odd count leaves some on).
                for mac, _name in computes[:clients]:
                    with contextlib.suppress(Exception):
                        client.power(mac, "off")
                for t in targets[:clients]:
                    with contextlib.suppress(Exception):
                        power_svc.off(db, t)
            one = levels[0]
            if ("signed power", one) in results:
                signed = results[("signed power", one)]["p50"]
                extra = signed - results[("direct power", one)]["p50"]
                floor = results[("signed macs", one)]["p50"] - results[("health", one)]["p50"]
                print(f"\nat {one} client(s), p50: signed power - direct power = {extra:.2f} ms "
                      f"(HTTP + signature + replay + authorisation + audit)")
                print(f"at {one} client(s), p50: signed macs - health = {floor:.2f} ms "
                      "(signature + replay + authorisation + audit + MAC query)")
            slurm_batch(tclient, [m for m, _n in computes[: a.slurm_nodes]])
        finally:
            for p in (proc, threaded):
                p.terminate()
                p.wait(timeout=60)
            db.dispose()
    print("\nCPU per operation, this process (microseconds):")
    for what, micros in verification_cost().items():
        print(f"  {what:16} {micros:8.0f} us")
    print("\nCPU per request, signature vs capability token, this process (microseconds):")
    for what, micros in token_cost().items():
        print(f"  {what:16} {micros:8.0f} us")


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) process `pid` has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def slurm_batch(tclient: Any, macs: list[str]) -> None:
    """`pilot slurm resume|suspend` of len(macs) nodes: the batch's wall time, 3 rounds."""
    from flightdeck.pilot.commands import power_many

    print(f"\nslurm resume/suspend of {len(macs)} nodes with a token (wall time of the batch):")
    for round_ in range(3):
        for action in ("on", "off"):
            t0 = time.perf_counter()
            results = power_many(tclient, macs, action, workers=32)
            took = time.perf_counter() - t0
            failed = [r for r in results if not r.ok]
            print(f"  round {round_ + 1} {'resume ' if action == 'on' else 'suspend'} "
                  f"{took * 1000:8.0f} ms ({len(failed)} failed)", flush=True)


if __name__ == "__main__":
    main()
