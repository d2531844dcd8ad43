"""The load driver shared by both runs: produce reports, read the output back, account.

A report is *accounted for* when its ``reported`` (or ``merged``) case event has been read,
an unreadable input when its DLQ entry has been read. Throughput is measured from the first
report produced to the last such message read; the driver does the same work in the
baseline and the engine run, only the process in between differs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.mix import case_suffix
from grid.intake import report_id_of


@dataclass
class Expectation:
    """What the output must contain once every input is processed."""

    report_ids: set[str]
    dlq: int  # inputs without a usable report id (their DLQ entries are counted)

    @classmethod
    def of(cls, raws: list[bytes], bad: set[bytes]) -> Expectation:
        rids = {r for raw in raws if raw not in bad and (r := report_id_of(raw))}
        return cls(rids, sum(1 for raw in raws if raw in bad))


@dataclass
class Outcome:
    seconds: float
    accounted: int
    dlq: int
    complete: bool
    missing: list[str] = field(default_factory=list)


async def tail_from_end(bootstrap: str, topics: list[str]) -> AIOKafkaConsumer:
    """A group-less consumer on all partitions of ``topics``, positioned at their ends."""
    cons = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                            enable_auto_commit=False, fetch_max_wait_ms=5,
                            isolation_level="read_committed",
                            max_partition_fetch_bytes=4 << 20)
    await cons.start()
    tps = []
    for t in topics:
        parts = cons.partitions_for_topic(t)
        for _ in range(50):
            if parts:
                break
            await cons._client.force_metadata_update()
            parts = cons.partitions_for_topic(t)
        tps += [TopicPartition(t, p) for p in sorted(parts or ())]
    cons.assign(tps)
    await cons.seek_to_end(*tps)
    for tp in tps:
        await cons.position(tp)
    return cons


def accounted_id(value: bytes) -> str | None:
    """The report id a case event accounts for (``reported`` or ``merged``), else None."""
    if b'"reported"' not in value and b'"merged"' not in value:
        return None
    v = orjson.loads(value)
    if v.get("type") == "reported":
        return v["data"]["report"]["report_id"]
    if v.get("type") == "merged":
        return v["data"]["report_id"]
    return None


def dlq_report_id(value: bytes) -> str | None:
    if b'"report_id"' not in value:
        return None
    rid = orjson.loads(value).get("report_id")
    return rid if isinstance(rid, str) else None


def key_of(raw: bytes) -> bytes | None:
    rid = report_id_of(raw)
    return rid.encode() if rid else None


async def throughput(bootstrap: str, in_topic: str, events_topic: str, dlq_topic: str,
                     raws: list[bytes], expect: Expectation, timeout: float = 300.0,
                     alive=lambda: True) -> Outcome:
    """Produce ``raws`` as fast as possible; read until every input is accounted for (or
    ``timeout``, or ``alive()`` is false: the process under test has exited)."""
    cons = await tail_from_end(bootstrap, [events_topic, dlq_topic])
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                            max_batch_size=256 << 10)
    await prod.start()
    seen: set[str] = set()
    dlq = 0
    t0 = time.perf_counter()
    last = t0

    async def produce() -> None:
        futs = [await prod.send(in_topic, raw, key=key_of(raw)) for raw in raws]
        await asyncio.gather(*futs)

    sender = asyncio.create_task(produce())
    try:
        while time.perf_counter() - t0 < timeout and alive():
            batches = await cons.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for rec in records:
                    if tp.topic == dlq_topic:
                        rid = dlq_report_id(rec.value)
                        if rid in expect.report_ids:
                            seen.add(rid)  # a valid-looking report the engine rejected
                        else:
                            dlq += 1
                        last = time.perf_counter()
                    elif (rid := accounted_id(rec.value)) is not None:
                        seen.add(rid)
                        last = time.perf_counter()
            if dlq >= expect.dlq and expect.report_ids <= seen:
                break
        await sender
    finally:
        sender.cancel()
        await prod.stop()
        await cons.stop()
    missing = sorted(expect.report_ids - seen)
    return Outcome(last - t0, len(seen & expect.report_ids), dlq,
                   not missing and dlq >= expect.dlq, missing[:20])


@dataclass
class Latency:
    offered_rate: float
    achieved_rate: float
    sent: int
    work_orders: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def first_work_order_case(value: bytes) -> str | None:
    """The report-derived case suffix of an engine work order, if it is a case's first."""
    wo = orjson.loads(value)
    if not wo["work_order_id"].endswith(":1"):
        return None  # re-dispatches are not the report's first dispatch
    return wo["case_id"].split("-", 1)[1]


def first_baseline_work_order(value: bytes) -> str | None:
    """The same for the baseline's stand-in work orders (``bench.baseline``)."""
    wo = orjson.loads(value)
    return case_suffix(wo["report_id"]) if wo.get("seq") == 0 else None


def forwarded_report(value: bytes) -> str | None:
    """The same for a report forwarded unchanged (``bench.passthrough``)."""
    rid = report_id_of(value)
    return case_suffix(rid) if rid else None


async def dispatch_latency(bootstrap: str, in_topic: str, dispatch_topic: str,
                           raws: list[bytes], rate: float, settle: float = 5.0,
                           match=first_work_order_case) -> Latency:
    """Offer ``raws`` at ``rate`` per second; report produced → work order read, per case
    (``match`` maps an output message to the case suffix of the report it answers)."""
    cons = await tail_from_end(bootstrap, [dispatch_topic])
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await prod.start()
    sent_at: dict[str, float] = {}
    lat: list[float] = []
    done = asyncio.Event()

    async def offer() -> float:
        t0 = time.perf_counter()
        for i, raw in enumerate(raws):
            due = t0 + i / rate
            if (delay := due - time.perf_counter()) > 0.002:
                await asyncio.sleep(delay)
            rid = report_id_of(raw)
            if rid:
                sent_at.setdefault(case_suffix(rid), time.perf_counter())
            await prod.send(in_topic, raw, key=rid.encode() if rid else None)
        await prod.flush()
        return time.perf_counter() - t0

    async def read() -> None:
        quiet_since = None
        while True:
            batches = await cons.getmany(timeout_ms=100, max_records=5000)
            now = time.perf_counter()
            got = False
            for records in batches.values():
                for rec in records:
                    suffix = match(rec.value)
                    t = sent_at.pop(suffix, None) if suffix else None
                    if t is not None:
                        lat.append((now - t) * 1000)
                        got = True
            if done.is_set():
                quiet_since = quiet_since if not got and quiet_since else now
                if now - quiet_since > settle:
                    return

    reader = asyncio.create_task(read())
    try:
        elapsed = await offer()
        done.set()
        await reader
    finally:
        reader.cancel()
        await prod.stop()
        await cons.stop()
    lat.sort()
    return Latency(rate, round(len(raws) / elapsed, 1), len(raws), len(lat),
                   round(percentile(lat, 50), 1), round(percentile(lat, 95), 1),
                   round(percentile(lat, 99), 1), round(lat[-1], 1) if lat else float("nan"))
