"""The load of each ``ovms-bench`` phase, as run inside one worker process (trio).

Every phase takes a plain ``params`` dict (it crosses a process boundary) and a
``Coordinator``; it reports "ready" once connected, waits for "go", measures,
and returns a JSON-friendly dict. Latencies are ``time.perf_counter`` stamps
embedded in the message by the car and read by the app in the same process, so
both ends use the same clock.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from typing import Any

import attrs
import trio

from protocol import ClientType, Message
from tools import simulation as sim
from tools.bench_http import HTTPConnection, HTTPError
from tools.bench_proc import Coordinator
from tools.v2client import LoginRefused, V2Client

CONNECT_CONCURRENCY = 32
SETUP_TIMEOUT = 120.0
# After the send window closes, how long to wait for messages still in flight
# before counting them lost.
DRAIN_TIMEOUT = 5.0
CONNECTION_ERRORS = (OSError, LoginRefused, trio.TooSlowError, trio.BrokenResourceError,
                     trio.ClosedResourceError)


async def _connect(p: dict[str, Any], vehicleid: str, ctype: ClientType) -> V2Client:
    # Cluster runs (tools/bench_cluster.py) may put the apps on another node's port.
    port = (p.get("app_port") or p["port"]) if ctype is ClientType.APP else p["port"]
    return await V2Client.connect(p["host"], port, vehicleid, client_type=ctype,
                                  carpass=p["carpass"], timeout=30.0)


# --------------------------------------------------------------------------- login


async def login_phase(p: dict[str, Any], coord: Coordinator) -> dict[str, Any]:
    """``count`` car logins over ``vehicles``, ``concurrency`` in flight; each login is timed
    from the TCP connect to the first message after the welcome (``Z``: registration done)."""
    vehicles: list[str] = p["vehicles"]
    count: int = p["count"]
    latencies: list[float] = []
    errors = 0
    numbers = itertools.count()
    coord.stage("ready")
    await coord.wait("go")
    started = time.perf_counter()
    concurrency = max(1, p["concurrency"])

    async def slot(k: int) -> None:
        nonlocal errors
        # Each slot logs in its own vehicles: two slots logging in one vehicle at once
        # would be a duplicate car login, which closes the earlier connection.
        mine = vehicles[k::concurrency] or vehicles
        for j in itertools.count():
            if next(numbers) >= count:
                return
            t0 = time.perf_counter()
            try:
                client = await _connect(p, mine[j % len(mine)], ClientType.CAR)
                try:
                    await client.receive(30.0)
                finally:
                    await trio.aclose_forcefully(client.stream)
            except CONNECTION_ERRORS:
                errors += 1
            else:
                latencies.append(time.perf_counter() - t0)
            coord.progress(len(latencies) + errors)

    async with trio.open_nursery() as nursery:
        for k in range(concurrency):
            nursery.start_soon(slot, k)
    elapsed = time.perf_counter() - started
    coord.progress(len(latencies) + errors, force=True)
    return {"latencies": latencies, "errors": errors, "elapsed": elapsed}


# --------------------------------------------------------------------------- relay


@attrs.define(eq=False)
class Pair:
    vehicleid: str
    car: V2Client | None = None
    app: V2Client | None = None
    seq: int = 0
    sent: int = 0
    received: int = 0
    h_sent: int = 0
    acked: list[int] = attrs.field(factory=list)
    failed: str | None = None


@attrs.define
class RelayRun:
    """Shared state of one relay measurement in this worker."""

    p: dict[str, Any]
    tag: str
    template: str
    t_measure: float = math.inf
    t_end: float = math.inf
    stopping: bool = False
    samples: list[float] = attrs.field(factory=list)
    window_count: int = 0
    received: int = 0

    def payload(self, pair: Pair, stamp: float) -> bytes:
        """The car's next ``S`` (plus an ``h`` every ``h_every`` messages), encrypted."""
        assert pair.car is not None
        pair.seq += 1
        msgs = [Message("S", f"{self.template},{self.tag}:{pair.seq}:{stamp:.7f}")]
        h_every = self.p["h_every"]
        if h_every and pair.seq % h_every == 0:
            msgs.append(Message("h", f"{pair.seq},0,{self.p['htype']},{pair.seq},86400,"
                                     f"bench {pair.vehicleid} {pair.seq}"))
            pair.h_sent += 1
        pair.sent += 1
        return pair.car.session.send_many(msgs)

    async def send(self, pair: Pair, stamp: float) -> None:
        assert pair.car is not None
        await pair.car.stream.send_all(self.payload(pair, stamp))

    def on_app_message(self, msg: Message) -> bool:
        """Record one of our ``S`` messages; True if it was one."""
        if msg.code != "S":
            return False
        _, _, mark = msg.data.rpartition(",")
        tag, _, rest = mark.partition(":")
        if tag != self.tag:
            return False  # replayed from an earlier run
        stamp = float(rest.partition(":")[2])
        now = time.perf_counter()
        self.received += 1
        if self.t_measure <= stamp < self.t_end:
            self.samples.append(now - stamp)
            self.window_count += 1
        return True


async def _setup_pairs(p: dict[str, Any], coord: Coordinator) -> list[Pair]:
    pairs = [Pair(v) for v in p["vehicles"]]
    limiter = trio.CapacityLimiter(CONNECT_CONCURRENCY)

    async def connect(pair: Pair, ctype: ClientType) -> None:
        async with limiter:
            try:
                client = await _connect(p, pair.vehicleid, ctype)
            except CONNECTION_ERRORS as exc:
                pair.failed = f"{ctype.label} login: {type(exc).__name__}"
                return
        if ctype is ClientType.CAR:
            pair.car = client
        else:
            pair.app = client

    with trio.fail_after(SETUP_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for pair in pairs:
                nursery.start_soon(connect, pair, ClientType.CAR)
    coord.stage("cars", {"connected": sum(1 for x in pairs if x.car)})
    await coord.wait("apps")
    with trio.fail_after(SETUP_TIMEOUT):
        async with trio.open_nursery() as nursery:
            for pair in pairs:
                if pair.car is not None:
                    nursery.start_soon(connect, pair, ClientType.APP)
    if p.get("wait_z"):
        # Across nodes, the car's node relays to the app's only once it has the app's
        # count: a closed loop whose first message went nowhere would never start.
        with trio.fail_after(SETUP_TIMEOUT):
            async with trio.open_nursery() as nursery:
                for pair in pairs:
                    if pair.car is not None and pair.app is not None:
                        nursery.start_soon(_wait_z1, pair)
    return [x for x in pairs if x.car is not None and x.app is not None and not x.failed]


async def _wait_z1(pair: Pair) -> None:
    assert pair.car is not None
    try:
        while (await pair.car.receive(SETUP_TIMEOUT)).text() != "Z1":
            pass
    except CONNECTION_ERRORS as exc:
        pair.failed = f"car waiting for Z1: {type(exc).__name__}"


async def _app_reader(run: RelayRun, pair: Pair, closed: bool) -> None:
    """Counts our messages; in the closed loop it also sends the car's next one, so each
    car stream has exactly one sending task."""
    assert pair.app is not None
    try:
        if closed:
            await run.send(pair, time.perf_counter())
        while True:
            msg = await pair.app.receive(math.inf)
            if run.on_app_message(msg):
                pair.received += 1
                if closed and not run.stopping:
                    await run.send(pair, time.perf_counter())
    except CONNECTION_ERRORS as exc:
        pair.failed = pair.failed or f"app: {type(exc).__name__}"


async def _car_reader(pair: Pair) -> None:
    assert pair.car is not None
    try:
        while True:
            msg = await pair.car.receive(math.inf)
            if msg.code == "h":
                pair.acked.append(int(msg.data))
    except CONNECTION_ERRORS as exc:
        pair.failed = pair.failed or f"car: {type(exc).__name__}"


async def _open_sender(run: RelayRun, pair: Pair, t_go: float, interval: float) -> None:
    """Fixed schedule; a late send is stamped with its scheduled time, so a stalled
    server shows up as latency (no coordinated omission)."""
    offset = random.uniform(0, interval)  # spread the pairs over the interval
    k = 0
    try:
        while not run.stopping:
            scheduled = t_go + offset + k * interval
            if scheduled >= run.t_end:
                return
            await trio.sleep(max(0.0, scheduled - time.perf_counter()))
            await run.send(pair, scheduled)
            k += 1
    except CONNECTION_ERRORS as exc:
        pair.failed = pair.failed or f"car send: {type(exc).__name__}"


async def relay_phase(p: dict[str, Any], coord: Coordinator) -> dict[str, Any]:
    """Car -> app relay over ``vehicles`` pairs, closed loop or open loop at ``rate``."""
    pairs = await _setup_pairs(p, coord)
    closed = p["mode"] == "closed"
    run = RelayRun(p, tag=p["tag"], template=sim.status(sim.new_vehicle(0)).data)
    coord.stage("ready", {"pairs": len(pairs)})
    await coord.wait("go")
    t_go = time.perf_counter()
    cpu_go = time.process_time()
    run.t_measure = t_go + p["warmup"]
    run.t_end = t_go + p["duration"]
    async with trio.open_nursery() as nursery:
        for pair in pairs:
            nursery.start_soon(_app_reader, run, pair, closed)
            nursery.start_soon(_car_reader, pair)
        if not closed:
            per_pair = p["rate"] / max(1, len(pairs))
            for pair in pairs:
                nursery.start_soon(_open_sender, run, pair, t_go, 1.0 / per_pair)
        while time.perf_counter() < run.t_end:
            coord.progress(run.received)
            await trio.sleep(0.1)
        run.stopping = True
        # This worker's own CPU over the window: near 100 % means the load generator,
        # not the server, set the pace.
        load_cpu = (time.process_time() - cpu_go) / (time.perf_counter() - t_go) * 100
        # Messages in flight and acks of records sent last still count: wait for them.
        with trio.move_on_after(DRAIN_TIMEOUT):
            while any(x.received < x.sent or len(x.acked) < x.h_sent
                      for x in pairs if not x.failed):
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    for pair in pairs:
        for client in (pair.car, pair.app):
            if client is not None:
                await trio.aclose_forcefully(client.stream)
    coord.progress(run.received, force=True)
    return {
        "pairs": len(pairs),
        "failed_pairs": sum(1 for x in pairs if x.failed),
        "sent": sum(x.sent for x in pairs),
        "received": sum(x.received for x in pairs),
        "window_count": run.window_count,
        "window_s": p["duration"] - p["warmup"],
        "samples": run.samples,
        "h_sent": sum(x.h_sent for x in pairs),
        "acked": {x.vehicleid: x.acked for x in pairs if x.acked},
        "load_cpu_percent": round(load_cpu, 1),
    }


# --------------------------------------------------------------------------- idle cars


async def idle_phase(p: dict[str, Any], coord: Coordinator) -> dict[str, Any]:
    """Hold idle car connections (each sent its full set once) until "stop"."""
    clients: list[V2Client] = []
    failed = 0
    limiter = trio.CapacityLimiter(CONNECT_CONCURRENCY)

    async def connect(index: int, vehicleid: str) -> None:
        nonlocal failed
        async with limiter:
            try:
                client = await _connect(p, vehicleid, ClientType.CAR)
                # A module's first act after login: its full set of messages.
                msgs = sim.messages(sim.new_vehicle(index)) if p["full_set"] else []
                await client.stream.send_all(client.session.send_many(msgs))
            except CONNECTION_ERRORS:
                failed += 1
            else:
                clients.append(client)
            coord.progress(len(clients) + failed)

    with trio.fail_after(p.get("setup_timeout", 600.0)):
        async with trio.open_nursery() as nursery:
            for i, vid in enumerate(p["vehicles"]):
                nursery.start_soon(connect, i, vid)
    coord.progress(len(clients) + failed, force=True)
    coord.stage("ready", {"connected": len(clients), "failed": failed})
    await coord.wait("stop")
    for client in clients:
        await trio.aclose_forcefully(client.stream)
    return {"connected": len(clients), "failed": failed}


# --------------------------------------------------------------------------- REST


async def rest_phase(p: dict[str, Any], coord: Coordinator) -> dict[str, Any]:
    """``clients`` loops of GET requests for ``duration`` seconds, each on a kept-alive
    connection or a new connection per request."""
    host, port = p["host"], p["http_port"]
    headers = p["headers"]
    targets: list[str] = p["targets"]
    latencies: list[float] = []
    errors = 0
    statuses: dict[str, int] = {}
    coord.stage("ready")
    await coord.wait("go")
    t_go = time.perf_counter()
    t_end = t_go + p["duration"]

    async def client_loop(n: int) -> None:
        nonlocal errors
        conn: HTTPConnection | None = None
        i = n
        while time.perf_counter() < t_end:
            target = targets[i % len(targets)]
            i += 1
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = await HTTPConnection.open(host, port)
                resp = await conn.get(target, headers, close=not p["keepalive"])
            except (HTTPError, OSError):
                errors += 1
                if conn is not None:
                    await conn.aclose()
                conn = None
                continue
            latencies.append(time.perf_counter() - t0)
            key = str(resp.status)
            statuses[key] = statuses.get(key, 0) + 1
            if not (p["keepalive"] and resp.keep_alive):
                await conn.aclose()
                conn = None
            coord.progress(len(latencies))
        if conn is not None:
            await conn.aclose()

    async with trio.open_nursery() as nursery:
        for n in range(p["clients"]):
            nursery.start_soon(client_loop, n)
    return {"latencies": latencies, "errors": errors, "statuses": statuses,
            "elapsed": time.perf_counter() - t_go}
