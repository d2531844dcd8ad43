"""``grid simulate``: produce a realistic report stream, and (``--respond``) play the
departments, supervisors and command center answering work orders with realistic delays."""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import click
import orjson

from grid.clock import Clock
from grid.models import partition_key_of
from streams import topics as T
from streams.broker import client_security

# residents per district (万人, 第七次全国人口普查 2020, Shanghai statistics bureau):
# the demo feed's default spread over the districts a layer set holds
POPULATION_2020: dict[str, float] = {
    "310101": 66.2, "310104": 111.3, "310105": 69.3, "310106": 97.6, "310107": 123.9,
    "310109": 75.7, "310110": 124.3, "310112": 265.3, "310113": 223.5, "310114": 183.4,
    "310115": 568.2, "310116": 82.3, "310117": 191.0, "310118": 127.1, "310120": 114.1,
    "310151": 63.7,
}
SPREADS = ("equal", "area", "population")


def spread_weights(locator, spread: str = "equal") -> dict[str, float]:
    """Weight per district with cells in ``locator``'s layers: ``equal``, ``area`` (the
    district's area), ``population`` (:data:`POPULATION_2020`), or explicit
    ``CODE=W,CODE=W`` (districts not named get none). ValueError names a bad spec."""
    comms = locator.layers["communities"]
    districts = sorted(set(comms["code"].astype(str).str[:6]))
    spec = (spread or "equal").strip()
    if spec == "equal":
        return {d: 1.0 for d in districts}
    if spec == "population":
        return {d: POPULATION_2020.get(d, 100.0) for d in districts}
    if spec == "area":
        from geodata.schema import METRIC_EPSG

        dist = locator.layers["districts"].to_crs(METRIC_EPSG)
        area = dict(zip(dist["code"].astype(str), dist.geometry.area, strict=True))
        return {d: float(area.get(d, 0.0)) / 1e6 for d in districts}
    out: dict[str, float] = {}
    for part in spec.split(","):
        code, sep, w = part.strip().partition("=")
        try:
            weight = float(w)
        except ValueError:
            weight = -1.0
        if not sep or weight < 0:
            raise ValueError(f"spread {spread!r}: one of {', '.join(SPREADS)} or "
                             "CODE=WEIGHT,… (e.g. 310110=3,310118=1)")
        if code not in districts:
            raise ValueError(f"spread {spread!r}: district {code} has no cells in the loaded "
                             f"geodata (loaded: {', '.join(districts)})")
        out[code] = weight
    if not sum(out.values()):
        raise ValueError(f"spread {spread!r}: the weights add up to 0")
    return out


def shares(n: int, weights: dict[str, float]) -> dict[str, int]:
    """``n`` split over the keys in proportion to ``weights`` (largest remainder; ties to
    the smaller code): the counts add up to ``n``."""
    total = sum(weights.values())
    if total <= 0:
        return {k: 0 for k in weights}
    exact = {k: n * w / total for k, w in weights.items()}
    out = {k: int(v) for k, v in exact.items()}
    rest = n - sum(out.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))[:rest]:
        out[k] += 1
    return out


def sample_points(locator, n: int, seed: int = 11,
                  weights: dict[str, float] | None = None) -> list[tuple[float, float]]:
    """``n`` WGS-84 points that fall in a cell of the loaded coverage (rejection sampling),
    spread over the districts with cells in proportion to ``weights`` (default: an equal
    share each, so a small urban district gets as many reports as a large suburban one;
    see :func:`spread_weights`)."""
    rng = random.Random(seed)
    comms = locator.layers["communities"]
    codes = comms["code"].astype(str).str[:6]
    districts = sorted(set(codes))
    want_of = shares(n, weights if weights is not None else {d: 1.0 for d in districts})
    points: list[tuple[float, float]] = []
    for d in districts:
        want = want_of.get(d, 0)
        if not want:
            continue
        minx, miny, maxx, maxy = (float(v) for v in comms[codes == d].total_bounds)
        got: list[tuple[float, float]] = []
        for _ in range(50):
            lons = [rng.uniform(minx, maxx) for _ in range(4 * want)]
            lats = [rng.uniform(miny, maxy) for _ in range(4 * want)]
            placed = locator.locate_many(lons, lats, "wgs84")
            got += [(lon, lat) for lon, lat, p in zip(lons, lats, placed, strict=True)
                    if p is not None and p.cell is not None and p.district == d]
            if len(got) >= want:
                break
        points += got[:want]
    return points


@dataclass(frozen=True)
class Behaviour:
    """How simulated departments answer work orders (shares of work orders, 0..1).

    Real departments are not all punctual: some ignore an order until it is supervised,
    some return it as not theirs, some ask for more time, some finish late, and some
    disposals fail the supervisor's check. Times are fractions of the order's disposal
    budget (issue → dispose deadline) in engine time, so an accelerated clock
    (``grid up --clock x60``) shows lateness, warnings and supervision orders in minutes.
    """

    ignore: float = 0.05  # never answered: goes overdue, supervision orders escalate it
    give_back: float = 0.06  # returned as "not ours" (first work order only), re-dispatched
    extension: float = 0.08  # asks for 24 h more; the command center grants 3 in 4
    late: float = 0.15  # disposes after the deadline (1.1–1.6× the budget)
    fail_check: float = 0.08  # the supervisor's verification fails: rework, then done
    max_wait: float = 900.0  # real seconds: no step waits longer (real-time clocks)


def plan(rng: random.Random, behaviour: Behaviour, first_order: bool) -> str:
    """One work order's fate: ignore, give_back, extension, late or on_time."""
    x = rng.random()
    b = behaviour
    for fate, share in (("ignore", b.ignore), ("give_back", b.give_back if first_order else 0),
                        ("extension", b.extension), ("late", b.late)):
        if x < share:
            return fate
        x -= share
    return "on_time"


async def respond(bootstrap: str, clock: Clock, stop: asyncio.Event, seed: int = 5,
                  behaviour: Behaviour | None = None) -> None:
    """Departments accept and dispose work orders; supervisors verify; the center closes,
    on ``clock``'s time (see :class:`Behaviour` for the mix)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    b = behaviour or Behaviour()
    rng = random.Random(seed)
    consumer = AIOKafkaConsumer(T.DISPATCH, bootstrap_servers=bootstrap, group_id="grid-sim",
                                auto_offset_reset="latest", isolation_level="read_committed",
                                **client_security())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **client_security())
    await consumer.start()
    await producer.start()
    tasks: set[asyncio.Task] = set()

    async def send(case_id: str, action: str, actor: str, role: str, **kw) -> None:
        cmd = {"schema": "grid.command/1", "command_id": str(uuid.uuid4()), "case_id": case_id,
               "action": action, "actor": actor, "role": role, **kw}
        await producer.send(T.COMMANDS, orjson.dumps(cmd),
                            key=partition_key_of(case_id).encode())

    async def wait(engine_seconds: float) -> None:
        await asyncio.sleep(min(b.max_wait, max(0.5, engine_seconds / clock.speed)))

    async def play(wo: dict) -> None:
        cid, dept = wo["case_id"], wo["department"]
        due = wo.get("due", {}).get("dispose")
        budget = ((datetime.fromisoformat(due) - clock.now()).total_seconds() if due
                  else 4 * 3600.0)
        budget = max(budget, 600.0)
        if wo.get("role") == "assisting":  # 协办: report the part; the lead disposes the case
            await wait(budget * rng.uniform(0.1, 0.6))
            await send(cid, "report_part", wo.get("unit") or dept, "department",
                       reason="协办部分已完成 our part is done")
            return
        fate = plan(rng, b, first_order=wo["work_order_id"].endswith(":1"))
        if fate == "ignore":
            return
        await wait(budget * rng.uniform(0.03, 0.15))
        if fate == "give_back":
            await send(cid, "return", wo.get("unit") or dept, "department",
                       reason="不属于本单位职责 not ours")
            await wait(rng.uniform(300, 1200))
            await send(cid, "dispatch", "cc-sim", "command_center", department="street_office",
                       reason="退回后改派街道 re-dispatched to the street office after return")
            return
        desk = wo.get("unit") or dept  # the district's (or street's) own unit answers
        await send(cid, "accept", desk, "department")
        if fate == "extension":
            await wait(budget * rng.uniform(0.1, 0.3))
            await send(cid, "request_extension", desk, "department", extension_minutes=1440,
                       reason="需采购配件 waiting for parts")
            await wait(rng.uniform(300, 1800))
            granted = rng.random() < 0.75
            await send(cid, "grant_extension" if granted else "deny_extension", "cc-sim",
                       "command_center",
                       reason="" if granted else "时限内可完成 can be done in time")
            if granted:
                budget += 1440 * 60
        share = rng.uniform(1.1, 1.6) if fate == "late" else rng.uniform(0.25, 0.8)
        await wait(budget * share)
        await send(cid, "dispose", desk, "department", reason="已处置 fixed",
                   evidence_photos=[f"https://img.example/d/{uuid.uuid4()}.jpg"])
        await wait(rng.uniform(600, 3600))
        if rng.random() < b.fail_check:
            await send(cid, "verify", "sup-sim", "supervisor", passed=False,
                       reason="现场未整改到位 not fixed on site")
            await wait(budget * rng.uniform(0.1, 0.3))
            await send(cid, "dispose", desk, "department", reason="返工完成 reworked",
                       evidence_photos=[f"https://img.example/d/{uuid.uuid4()}.jpg"])
            await wait(rng.uniform(600, 3600))
        await send(cid, "verify", "sup-sim", "supervisor", passed=True)
        await wait(rng.uniform(60, 600))
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
              seed: int, spread: str = "population") -> int:
    from aiokafka import AIOKafkaProducer

    from geodata.locator import Locator
    from grid.simulator import Simulator
    from grid.taxonomy import default_taxonomy

    loc = Locator.load(os.environ.get("GRID_GEODATA") or None)  # the worker's layers
    weights = spread_weights(loc, spread)
    n = max(400, 100 * len(weights))
    sim = Simulator(default_taxonomy(), sample_points(loc, n, weights=weights), seed=seed)
    stop = asyncio.Event()
    clock = Clock.from_spec(os.environ.get("GRID_CLOCK"))  # the engine's (grid up shares it)
    resp = asyncio.create_task(respond(bootstrap, clock, stop)) if responder else None
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **client_security())
    await producer.start()
    sent = 0
    t0 = time.monotonic()
    try:
        stream = sim.stream(clock.now)
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
@click.option("--spread", envvar="GRID_SIM_SPREAD", default="population", show_default=True,
              help="reports per district of the loaded geodata ($GRID_GEODATA): population "
                   "(2020 census), area, equal, or CODE=WEIGHT,… e.g. 310110=3,310118=1")
def simulate(broker: str | None, rate: float, duration: float, respond: bool, seed: int,
             spread: str) -> None:
    """Generate a realistic report stream (type mix of real bulletins, duplicates, bad input)
    over the districts of the loaded geodata."""
    from streams.broker import bootstrap_of
    from streams.cli import resolve_broker

    bootstrap = bootstrap_of(resolve_broker(broker))
    try:
        n = asyncio.run(run(bootstrap, rate, duration, respond, seed, spread))
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    except KeyboardInterrupt:
        return
    click.echo(f"simulate: sent {n} messages to {T.REPORTS}")
