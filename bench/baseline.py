"""The raw aiokafka baseline: two hops shaped like the engine's, nothing else.

Per input it produces what :class:`bench.mix.OutputProfile` says the engine produces: the
same number of messages per report (fractional counts are met on average, picked by a hash
of the input) of the same mean sizes, to topics ``bench.<kind>.v1`` with ``acks=all``. Like
the engine it takes two hops: *intake* reads ``bench.reports.v1`` (orjson) and writes one
``bench.located.v1`` message per valid report (unreadable input goes to ``bench.dlq.v1``);
*cases* reads the located topic and writes the rest (case events, work orders, alerts, two
changelog writes). The first "event" of a report looks like the engine's ``reported`` event
(it carries the report), so the driver accounts for both runs the same way.

Two modes, each hop its own consumer group ``<group>-intake`` / ``<group>-cases``:

* ``plain`` (at-least-once): produce, wait for the poll's acknowledgements, offsets
  auto-committed every second.
* ``transactional`` (exactly-once, as the engine on Apache Kafka): per polled batch and input
  partition one Kafka transaction with its output and ``send_offsets_to_transaction``, one
  transactional producer per input partition (``transactional.id = <group>-<hop>-<p>``);
  partitions commit concurrently, the next poll waits for them. Consumers read committed.
* ``pipelined`` (exactly-once, the design proposed for the engine's loop): the same
  transactions, but polling does not wait for them: each input partition has its own task
  that commits everything that arrived for it while its previous transaction ran, and the
  poll loop keeps the fetcher busy meanwhile.
* ``one_txn`` (one transactional hop): *intake* at-least-once with an idempotent producer
  (a report read again after a crash is located again; the case hop, which keys its state
  by report id, drops the second copy), *cases* pipelined and transactional. What a
  design with a single transaction per report would cost, measured before it is built.

    python -m bench.baseline BOOTSTRAP PROFILE_JSON GROUP [plain|transactional|pipelined|one_txn]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

import orjson

from streams.sinks import TXN_RETRY_BACKOFF_MS

IN_TOPIC = "bench.reports.v1"
KINDS = ("located", "event", "work_order", "alert", "changelog_case", "changelog_index", "dlq")
MODES = ("plain", "transactional", "pipelined", "one_txn")
# the transactional producers' retry backoff: the engine's (streams.sinks), or another value
# to compare (aiokafka's default is 100 ms)
RETRY_BACKOFF_MS = int(os.environ.get("BENCH_TXN_RETRY_BACKOFF_MS", TXN_RETRY_BACKOFF_MS))

Msg = tuple[str, bytes | None, bytes]  # (topic, key, value)


def topic_of(kind: str) -> str:
    return f"bench.{kind.replace('_', '-')}.v1"


LOCATED_TOPIC = topic_of("located")


def bench_topics(partitions: int) -> dict[str, int]:
    return {IN_TOPIC: partitions} | {topic_of(k): partitions for k in KINDS}


def plan(counts: dict[str, float], valid_inputs_share: float) -> dict[str, float]:
    """Messages per *valid* report by kind (DLQ and the located hop excluded: one DLQ entry
    per bad input, exactly one located message per valid report)."""
    share = max(valid_inputs_share, 1e-9)
    return {k: v / share for k, v in counts.items() if k not in ("dlq", "located")}


def how_many(mean: float, h: int) -> int:
    """``floor(mean)`` or one more, so that the average over inputs is ``mean``."""
    whole = int(mean)
    return whole + (1 if (h % 10_000) / 10_000 < mean - whole else 0)


class Plan:
    """What each hop produces for one input (pure; sizes and counts from the profile)."""

    def __init__(self, profile: dict) -> None:
        counts, sizes = profile["counts"], profile["sizes"]
        self.sizes = {k: sizes.get(k, 100) for k in KINDS}
        self.per_report = plan(counts, 1.0 - counts.get("dlq", 0.0))
        self.pads = {k: "x" * max(self.sizes[k] - 60, 0) for k in KINDS}

    def _pad_around(self, kind: str, raw: bytes) -> str:
        return self.pads[kind][:max(self.sizes[kind] - len(raw) - 60, 0)]

    def intake(self, raw: bytes) -> list[Msg]:
        """A raw report → its located message (keyed by report id), or a DLQ entry."""
        try:
            report = orjson.loads(raw)
        except orjson.JSONDecodeError:
            report = None
        if not isinstance(report, dict) or not isinstance(report.get("location"), dict):
            value = orjson.dumps({"reason": "invalid", "original": raw[:200].decode(
                "utf-8", "replace"), "pad": self.pads["dlq"]})
            return [(topic_of("dlq"), None, value)]
        key = str(report.get("report_id")).encode()
        body = {"report": report, "pad": self._pad_around("located", raw)}
        return [(LOCATED_TOPIC, key, orjson.dumps(body))]

    def cases(self, located: bytes) -> list[Msg]:
        """A located message → the case events, work orders, alerts and changelog writes."""
        msg = orjson.loads(located)
        report = msg["report"]
        rid = str(report.get("report_id"))
        key = rid.encode()
        h = zlib.crc32(key)
        raw_len = len(located) - len(msg.get("pad", "")) - 20  # the report's JSON, about
        out: list[Msg] = []
        for kind, mean in self.per_report.items():
            for i in range(how_many(mean, h)):
                if kind == "event" and i == 0:
                    body: dict[str, Any] = {
                        "type": "reported", "data": {"report": report},
                        "pad": self.pads[kind][:max(self.sizes[kind] - raw_len - 60, 0)]}
                else:
                    body = {"type": kind, "report_id": rid, "seq": i, "pad": self.pads[kind]}
                out.append((topic_of(kind), key, orjson.dumps(body)))
        return out

    def handle(self, raw: bytes) -> list[Msg]:
        """Both hops in one (used by tests: what a report becomes in the end)."""
        first = self.intake(raw)
        if first[0][0] != LOCATED_TOPIC:
            return first
        return first + self.cases(first[0][2])


async def plain_hop(bootstrap: str, group: str, topic: str,
                    work: Callable[[bytes], list[Msg]], idempotent: bool = False) -> None:
    """At-least-once: consume → produce → wait for acks; offsets auto-committed.
    ``idempotent``: the producer's retries write no duplicates (redelivery still may)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=True,
                                auto_commit_interval_ms=1000, max_poll_records=500)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                enable_idempotence=idempotent)
    await consumer.start()
    await producer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            futs = [await producer.send(t, v, key=k)
                    for records in batches.values() for rec in records
                    for t, k, v in work(rec.value)]
            if futs:
                await asyncio.gather(*futs)
    finally:
        await consumer.stop()
        await producer.stop()


class TxnHop:
    """Exactly-once: one transaction per polled batch and input partition (module doc)."""

    def __init__(self, bootstrap: str, group: str, topic: str,
                 work: Callable[[bytes], list[Msg]], fetch_wait_ms: int = 500) -> None:
        self.bootstrap, self.group, self.topic, self.work = bootstrap, group, topic, work
        self.fetch_wait_ms = fetch_wait_ms
        self.producers: dict[int, Any] = {}
        self.timings: list[tuple[int, float, float, float]] = []  # per transaction
        self._told = time.perf_counter()

    def tell(self) -> None:
        """Print (stderr) what the transactions of the last interval took, and forget them:
        records per transaction, ms to send the output until acknowledged (AddPartitionsToTxn +
        produce), to add the offsets (AddOffsetsToTxn + TxnOffsetCommit), to commit (EndTxn);
        p50 / p99."""
        ts, self.timings, self._told = self.timings, [], time.perf_counter()
        if not ts:
            return
        cols = list(zip(*ts, strict=True))

        def q(xs, f: float, scale: float) -> float:
            xs = sorted(xs)
            return round(xs[min(len(xs) - 1, int(f * len(xs)))] * scale, 1)

        print(f"{self.group}: {len(ts)} transactions; " + ", ".join(
            f"{name} p50 {q(c, 0.5, k)} p99 {q(c, 0.99, k)}" for name, c, k in zip(
                ("records", "send+ack ms", "offsets ms", "commit ms"), cols, (1, 1e3, 1e3, 1e3),
                strict=True)), file=sys.stderr, flush=True)

    def transactional_id(self, partition: int) -> str:
        return f"{self.group}-{partition}"

    async def producer(self, partition: int):
        """The partition's producer, started (and so fencing earlier ones) on first use."""
        from aiokafka import AIOKafkaProducer

        if (prod := self.producers.get(partition)) is None:
            prod = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                    enable_idempotence=True, linger_ms=0,
                                    transactional_id=self.transactional_id(partition),
                                    retry_backoff_ms=RETRY_BACKOFF_MS)
            await prod.start()
            self.producers[partition] = prod
        return prod

    async def commit(self, tp, records) -> None:
        prod = await self.producer(tp.partition)
        t0 = time.perf_counter()
        await prod.begin_transaction()
        try:
            futs = [await prod.send(t, v, key=k)
                    for rec in records for t, k, v in self.work(rec.value)]
            await asyncio.gather(*futs)  # acknowledged before the offsets, as the engine's sink
            t1 = time.perf_counter()
            await prod.send_offsets_to_transaction({tp: records[-1].offset + 1}, self.group)
            t2 = time.perf_counter()
            await prod.commit_transaction()
            self.timings.append((len(records), t1 - t0, t2 - t1, time.perf_counter() - t2))
            if time.perf_counter() - self._told > 10:
                self.tell()
        except BaseException:
            with contextlib.suppress(Exception):
                await prod.abort_transaction()
            raise

    async def run(self, pipelined: bool = False) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap,
                                    group_id=self.group, auto_offset_reset="earliest",
                                    enable_auto_commit=False, isolation_level="read_committed",
                                    fetch_max_wait_ms=self.fetch_wait_ms, max_poll_records=500)
        await consumer.start()
        queues: dict[Any, list] = {}
        wake: dict[Any, asyncio.Event] = {}
        tasks: list[asyncio.Task] = []

        async def unit(tp) -> None:  # pipelined: one partition's transactions, one at a time
            while True:
                await wake[tp].wait()
                wake[tp].clear()
                records, queues[tp] = queues[tp], []
                if records:
                    await self.commit(tp, records)

        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                if not pipelined:
                    await asyncio.gather(*(self.commit(tp, rs)
                                           for tp, rs in batches.items() if rs))
                    continue
                for tp, rs in batches.items():
                    if tp not in wake:
                        queues[tp], wake[tp] = [], asyncio.Event()
                        tasks.append(asyncio.create_task(unit(tp)))
                    queues[tp] += rs
                    wake[tp].set()
                for t in tasks:
                    if t.done():
                        t.result()  # a failed transaction ends the hop
        finally:
            for t in tasks:
                t.cancel()
            await consumer.stop()
            for prod in self.producers.values():
                with contextlib.suppress(Exception):
                    await prod.stop()


async def run(bootstrap: str, profile: dict, group: str, mode: str = "plain") -> None:
    """Both hops until cancelled, in ``mode`` (:data:`MODES`)."""
    p = Plan(profile)
    hops = ((f"{group}-intake", IN_TOPIC, p.intake), (f"{group}-cases", LOCATED_TOPIC, p.cases))
    if mode in ("transactional", "pipelined"):
        await asyncio.gather(*(TxnHop(bootstrap, g, t, w).run(mode == "pipelined")
                               for g, t, w in hops))
    elif mode == "plain":
        await asyncio.gather(*(plain_hop(bootstrap, g, t, w) for g, t, w in hops))
    elif mode == "one_txn":
        (g1, t1, w1), (g2, t2, w2) = hops
        await asyncio.gather(plain_hop(bootstrap, g1, t1, w1, idempotent=True),
                             TxnHop(bootstrap, g2, t2, w2).run(pipelined=True))
    else:
        raise ValueError(f"mode {mode!r}: one of {MODES}")


def main() -> None:
    bootstrap, profile_path, group, *rest = sys.argv[1:]
    with open(profile_path, "rb") as f:
        profile = orjson.loads(f.read())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(bootstrap, profile, group, rest[0] if rest else "plain"))


if __name__ == "__main__":
    main()
