"""How one hop through the embedded broker slows as record batches pile up in a topic.

Alternates (1) 1,000 messages offered at 1,000/s, one record batch each, produce → consume
latency measured, and (2) 2,000 more single-message batches, on one 8-partition topic of a
fresh embedded Tansu broker. Tansu's memory store keeps every batch as an object, and each
fetch costs more the more objects the partitions hold (docs/BENCHMARKS.md).

    python -m bench.broker_growth [ROUNDS]
"""

from __future__ import annotations

import asyncio
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

TOPIC = "bench.growth.v1"
PARTITIONS = 8


async def hop_latency(bootstrap: str, n: int = 1000, rate: float = 1000.0,
                      fetch_wait_ms: int = 5) -> tuple[float, float]:
    """p50 and p99 (ms) of produce → consume for ``n`` messages offered at ``rate``."""
    cons = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                            fetch_max_wait_ms=fetch_wait_ms)
    await cons.start()
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    cons.assign(tps)
    await cons.seek_to_end(*tps)
    for tp in tps:
        await cons.position(tp)
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await prod.start()
    lat: list[float] = []

    async def offer() -> None:
        t0 = time.perf_counter()
        for i in range(n):
            if (d := t0 + i / rate - time.perf_counter()) > 0.002:
                await asyncio.sleep(d)
            await prod.send(TOPIC, repr(time.perf_counter()).encode(), partition=i % PARTITIONS)

    task = asyncio.create_task(offer())
    try:
        while len(lat) < n:
            got = await cons.getmany(timeout_ms=100)
            now = time.perf_counter()
            lat += [(now - float(r.value)) * 1000 for rs in got.values() for r in rs
                    if not r.value.startswith(b"x")]
        await task
    finally:
        await prod.stop()
        await cons.stop()
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


async def fill(bootstrap: str, n: int) -> None:
    """``n`` single-message batches (each send awaited)."""
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await prod.start()
    try:
        for i in range(n):
            await (await prod.send(TOPIC, b"x" * 300, partition=i % PARTITIONS))
    finally:
        await prod.stop()


def main(rounds: int = 6) -> None:
    from streams.broker import EmbeddedBroker, bootstrap_of, ensure_topics

    broker = EmbeddedBroker(ready_timeout=30).start()
    try:
        bootstrap = bootstrap_of(broker.url)
        ensure_topics(bootstrap, {TOPIC: PARTITIONS})
        stored = 0
        print("batches stored before the run | one hop p50 ms | p99 ms")
        for _ in range(rounds):
            p50, p99 = asyncio.run(hop_latency(bootstrap))
            print(f"{stored:>29,} | {p50:>13.1f} | {p99:>6.1f}", flush=True)
            stored += 1000
            asyncio.run(fill(bootstrap, 2000))
            stored += 2000
    finally:
        broker.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
