"""``grid simulate``: produce a realistic report stream, and (``--respond``) play the
departments, supervisors and command center answering work orders with realistic delays."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime

import click
import orjson

from grid.models import partition_key_of
from streams import topics as T
from streams.broker import client_security


def sample_points(locator, n: int, seed: int = 11) -> list[tuple[float, float]]:
    """``n`` WGS-84 points that fall in a cell of the loaded coverage (rejection sampling)."""
    rng = random.Random(seed)
    minx, miny, maxx, maxy = (float(v) for v in locator.layers["communities"].total_bounds)
    points: list[tuple[float, float]] = []
    for _ in range(50):
        lons = [rng.uniform(minx, maxx) for _ in range(4 * n)]
        lats = [rng.uniform(miny, maxy) for _ in range(4 * n)]
        for lon, lat, p in zip(lons, lats, locator.locate_many(lons, lats, "wgs84"), strict=True):
            if p is not None and p.cell is not None:
                points.append((lon, lat))
        if len(points) >= n:
            break
    return points[:n]


async def respond(bootstrap: str, rate_scale: float, stop: asyncio.Event, seed: int = 5) -> None:
    """Departments accept and dispose work orders; supervisors verify; the center closes.

    A few work orders are returned ("not ours"), a few get extensions, a few are ignored
    and go overdue, so that escalation shows on the dashboard.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    rng = random.Random(seed)
    consumer = AIOKafkaConsumer(T.DISPATCH, bootstrap_servers=bootstrap, group_id="grid-sim",
                                auto_offset_reset="latest", **client_security())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **client_security())
    await consumer.start()
    await producer.start()
    tasks: set[asyncio.Task] = set()

    async def send(case_id: str, action: str, actor: str, role: str, **kw) -> None:
        cmd = {"schema": "grid.command/1", "command_id": str(uuid.uuid4()), "case_id": case_id,
               "action": action, "actor": actor, "role": role, **kw}
        await producer.send(T.COMMANDS, orjson.dumps(cmd),
                            key=partition_key_of(case_id).encode())

    async def play(wo: dict) -> None:
        cid, dept = wo["case_id"], wo["department"]
        x = rng.random()
        if x < 0.05:
            return  # ignored: goes overdue and escalates
        await asyncio.sleep(rng.uniform(1, 5) * rate_scale)
        if x < 0.08 and not wo["work_order_id"].endswith(":2"):
            await send(cid, "return", dept, "department", reason="不属于本单位职责 (not ours)")
            await asyncio.sleep(rng.uniform(1, 3) * rate_scale)
            await send(cid, "dispatch", "cc-sim", "command_center", department="street_office",
                       reason="re-dispatch after return")
            return
        await send(cid, "accept", dept, "department")
        if x < 0.11:
            await send(cid, "request_extension", dept, "department", extension_minutes=1440,
                       reason="needs parts")
            await send(cid, "grant_extension", "cc-sim", "command_center")
        await asyncio.sleep(rng.uniform(2, 10) * rate_scale)
        await send(cid, "dispose", dept, "department", reason="已处置 fixed",
                   evidence_photos=[f"https://img.example/d/{uuid.uuid4()}.jpg"])
        await asyncio.sleep(rng.uniform(1, 4) * rate_scale)
        passed = rng.random() > 0.02
        await send(cid, "verify", "sup-sim", "supervisor", passed=passed)
        if passed:
            await send(cid, "close", "cc-sim", "command_center")

    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    t = asyncio.create_task(play(orjson.loads(rec.value)))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
    finally:
        for t in tasks:
            t.cancel()
        await consumer.stop()
        await producer.stop()


async def run(bootstrap: str, rate: float, duration: float, responder: bool,
              seed: int) -> int:
    from aiokafka import AIOKafkaProducer

    from geodata.locator import Locator
    from grid.simulator import Simulator
    from grid.taxonomy import default_taxonomy

    sim = Simulator(default_taxonomy(), sample_points(Locator.load(None), 400), seed=seed)
    stop = asyncio.Event()
    resp = asyncio.create_task(respond(bootstrap, 1.0, stop)) if responder else None
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **client_security())
    await producer.start()
    sent = 0
    t0 = time.monotonic()
    try:
        stream = sim.stream(datetime.now(UTC))
        while duration <= 0 or time.monotonic() - t0 < duration:
            raw = next(stream)
            key = None
            if raw.startswith(b"{"):
                try:
                    key = str(orjson.loads(raw).get("report_id", "")).encode() or None
                except orjson.JSONDecodeError:
                    key = None
            await producer.send(T.REPORTS, raw, key=key)
            sent += 1
            delay = t0 + sent / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    finally:
        await producer.stop()
        stop.set()
        if resp is not None:
            await resp
    return sent


@click.command()
@click.option("--broker", help="kafka://HOST:PORT (default: GRID_BROKER or the one grid up runs)")
@click.option("--rate", default=5.0, show_default=True, help="reports per second")
@click.option("--duration", default=60.0, show_default=True, help="seconds; 0 = until Ctrl-C")
@click.option("--respond/--no-respond", default=False,
              help="also play departments, supervisors and the command center")
@click.option("--seed", default=7, show_default=True)
def simulate(broker: str | None, rate: float, duration: float, respond: bool, seed: int) -> None:
    """Generate a realistic report stream (type mix of real bulletins, duplicates, bad input)."""
    from streams.broker import bootstrap_of
    from streams.cli import resolve_broker

    bootstrap = bootstrap_of(resolve_broker(broker))
    try:
        n = asyncio.run(run(bootstrap, rate, duration, respond, seed))
    except KeyboardInterrupt:
        return
    click.echo(f"simulate: sent {n} messages to {T.REPORTS}")
