"""Peak RSS of a relay under a flood of concurrent bad password logins (issue 9 defect 15).

Not a test (pytest does not collect it): a measurement for release notes. It starts
``ovms-relay serve`` as a subprocess on a fresh database, sends ``--clients``
concurrent wrong-password logins per round (half REST, half v2 scheme 1) for
``--rounds`` rounds, and prints the server's peak RSS (VmHWM) before and after::

    python tests/hostile/rss_login_flood.py --clients 32 --rounds 3

The login guard would refuse most of these after 20 failures; the loopback address
is exempted (``api_rate_exempt``) so every attempt really costs an argon2 hash.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

from protocol import ClientType
from relay import db
from tools.bench_server import free_port
from tools.v2client import LoginRefused, V2Client


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


async def bad_rest(port: int, i: int) -> None:
    async with httpx.AsyncClient(timeout=60) as c:
        await c.get(f"http://127.0.0.1:{port}/api/vehicles",
                    params={"username": "demo", "password": f"wrong{i}"})


async def bad_v2(port: int, i: int) -> None:
    try:
        client = await V2Client.connect("127.0.0.1", port, "DEMO", client_type=ClientType.APP,
                                        username="demo", password=f"wrong{i}", timeout=60)
    except (LoginRefused, OSError, trio.BrokenResourceError):
        return
    await client.aclose()


async def flood(http_port: int, v2_port: int, clients: int, rounds: int) -> None:
    for _ in range(rounds):
        async with trio.open_nursery() as nursery:
            for i in range(clients):
                nursery.start_soon(bad_rest if i % 2 else bad_v2,
                                   http_port if i % 2 else v2_port, i)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "relay.db")
        conn = db.connect(path)
        db.add_owner(conn, "demo", "demopass")
        db.add_vehicle(conn, "DEMO", "demo", "DEMO")
        conn.close()
        config = os.path.join(tmp, "relay.toml")
        Path(config).write_text('api_rate_exempt = "127.0.0.1"\napi_rate_burst = 0\n')
        http_port, v2_port = free_port(), free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "relay", "serve", "--config", config, "--db", path,
             "--host", "127.0.0.1", "--http-port", str(http_port), "--v2-port", str(v2_port),
             "--allow-plain-login", "--log-level", "WARNING"])
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", http_port), 0.1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            before = vm_hwm_kib(server.pid)
            started = time.monotonic()
            trio.run(flood, http_port, v2_port, args.clients, args.rounds)
            elapsed = time.monotonic() - started
            after = vm_hwm_kib(server.pid)
        finally:
            server.terminate()
            server.wait(10)
    print(f"{args.clients} concurrent bad logins x {args.rounds} rounds in {elapsed:.1f} s: "
          f"peak RSS {before / 1024:.0f} MiB idle -> {after / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
