"""The browser console's static files from a real Airboss, against its /health floor.

One `airboss serve` process (a fresh SQLite site under a temporary FLIGHTDECK_HOME), clients as
threads of this process with one keep-alive connection each, on the same cores, `--seconds`
per figure, in this order, in one run:

* `health`            GET /health: the HTTP floor of the same process (baseline);
* `page`              GET /console/?token=...&kind=vnc: the page, a fresh style nonce each;
* `console.js`        our glue (6 KB);
* `rfb.js`            noVNC's largest ES module (~120 KB);
* `xterm.mjs`         xterm.js's ES module build (~340 KB).

A browser loads the page once per console session (cold: the page, 2 style sheets, our glue
and xterm.mjs + its fit add-on for serial, or 52 noVNC modules for VNC), so these figures say
what a console link costs the Airboss, next to what a signed operation costs (bench/airboss.py).

    .venv/bin/python bench/web_console.py [--seconds 5] [--clients 1,10]
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _harness import start_airboss

VENV_BIN = Path(sys.executable).parent
PATHS = {
    "health (baseline)": "/health",
    "page": "/console/?token=bench&kind=vnc",
    "console.js": "/console/console.js",
    "rfb.js": "/console/novnc/core/rfb.js",
    "xterm.mjs": "/console/xterm/lib/xterm.mjs",
}


def init_site(env: dict[str, str]) -> None:
    subprocess.run([str(VENV_BIN / "rocks"), "init", "frontend", "name=bench.example.org",
                    "public-ip=192.0.2.10", "public-netmask=255.255.255.0",
                    "private-ip=10.1.1.1", "private-netmask=255.255.0.0"],
                   env=env, check=True, stdout=subprocess.DEVNULL)


def measure(address: str, path: str, clients: int, seconds: float) -> dict[str, float]:
    """`clients` threads GETting `path` for `seconds`: answers/s, MB/s, p50 and p99 in ms."""
    host, port = address.rsplit(":", 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    sizes = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def loop(n: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        start.wait()
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise SystemExit(f"{path}: HTTP {resp.status} {body[:200]!r}")
            latencies[n].append(time.perf_counter() - t0)
            sizes[n] += len(body)
        conn.close()

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    flat = sorted(x for xs in latencies for x in xs)
    return {
        "rps": len(flat) / elapsed,
        "mbps": sum(sizes) / elapsed / 1e6,
        "p50": flat[len(flat) // 2] * 1000,
        "p99": flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", default="1,10")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="fd-bench-web-") as tmp:
        home = Path(tmp)
        env = {**os.environ, "FLIGHTDECK_HOME": str(home),
               "FLIGHTDECK_DB": f"sqlite:///{home}/bench.db"}
        init_site(env)
        proc, address = start_airboss(home, env)
        try:
            print(f"Airboss {address}; {args.seconds:g} s per figure; answers/s, MB/s, "
                  "p50 and p99 ms")
            print(f"{'what':<20}" + "".join(f"{f'{c} client(s)':>36}" for c in counts))
            for name, path in PATHS.items():
                cells = []
                for clients in counts:
                    r = measure(address, path, clients, args.seconds)
                    cells.append(f"{r['rps']:7.0f}/s {r['mbps']:7.1f} MB/s "
                                 f"{r['p50']:6.2f} {r['p99']:6.2f}")
                print(f"{name:<20}" + "".join(f"{c:>36}" for c in cells))
        finally:
            proc.terminate()
            proc.wait(40)


if __name__ == "__main__":
    main()
