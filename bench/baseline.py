"""The raw aiokafka baseline: consume → parse (orjson) → produce, nothing else.

Per input it produces what :class:`bench.mix.OutputProfile` says the engine produces: the
same number of messages per report (fractional counts are met on average, picked by a hash
of the input) of the same mean sizes, to topics ``bench.<kind>.v1`` with ``acks=all``. The
first "event" of a valid report looks like the engine's ``reported`` event (it carries the
report), and unreadable input goes to ``bench.dlq.v1``, so the driver accounts for both
runs the same way.

    python -m bench.baseline BOOTSTRAP PROFILE_JSON GROUP
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import zlib

import orjson

IN_TOPIC = "bench.reports.v1"
KINDS = ("located", "event", "work_order", "alert", "changelog_case", "changelog_index", "dlq")


def topic_of(kind: str) -> str:
    return f"bench.{kind.replace('_', '-')}.v1"


def bench_topics(partitions: int) -> dict[str, int]:
    return {IN_TOPIC: partitions} | {topic_of(k): partitions for k in KINDS}


def plan(counts: dict[str, float], valid_inputs_share: float) -> dict[str, float]:
    """Messages per *valid* report by kind (DLQ excluded: it is per bad input)."""
    share = max(valid_inputs_share, 1e-9)
    return {k: v / share for k, v in counts.items() if k != "dlq"}


def how_many(mean: float, h: int) -> int:
    """``floor(mean)`` or one more, so that the average over inputs is ``mean``."""
    whole = int(mean)
    return whole + (1 if (h % 10_000) / 10_000 < mean - whole else 0)


async def run(bootstrap: str, profile: dict, group: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    counts, sizes = profile["counts"], profile["sizes"]
    valid_share = 1.0 - counts.get("dlq", 0.0)
    per_report = plan(counts, valid_share)
    pads = {k: "x" * max(sizes.get(k, 100) - 60, 0) for k in KINDS}
    consumer = AIOKafkaConsumer(IN_TOPIC, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=True,
                                auto_commit_interval_ms=1000, max_poll_records=500)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            futs = []
            for records in batches.values():
                for rec in records:
                    futs += await handle(producer, rec.value, per_report, pads, sizes)
            if futs:
                await asyncio.gather(*futs)
    finally:
        await consumer.stop()
        await producer.stop()


async def handle(producer, raw: bytes, per_report: dict[str, float], pads: dict[str, str],
                 sizes: dict[str, int]) -> list:
    try:
        report = orjson.loads(raw)
    except orjson.JSONDecodeError:
        report = None
    if not isinstance(report, dict) or not isinstance(report.get("location"), dict):
        value = orjson.dumps({"reason": "invalid", "original": raw[:200].decode(
            "utf-8", "replace"), "pad": pads["dlq"]})
        return [await producer.send(topic_of("dlq"), value)]
    rid = str(report.get("report_id"))
    key = rid.encode()
    h = zlib.crc32(key)
    futs = []
    for kind, mean in per_report.items():
        n = how_many(mean, h)
        for i in range(n):
            if kind == "event" and i == 0:
                body = {"type": "reported", "data": {"report": report}}
                body["pad"] = pads[kind][:max(sizes[kind] - len(raw) - 60, 0)]
            elif kind == "located":
                body = {"report": report, "pad": pads[kind][:max(sizes[kind] - len(raw) - 60, 0)]}
            else:
                body = {"type": kind, "report_id": rid, "seq": i, "pad": pads[kind]}
            futs.append(await producer.send(topic_of(kind), orjson.dumps(body), key=key))
    return futs


def main() -> None:
    bootstrap, profile_path, group = sys.argv[1:4]
    with open(profile_path, "rb") as f:
        profile = orjson.loads(f.read())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(bootstrap, profile, group))


if __name__ == "__main__":
    main()
