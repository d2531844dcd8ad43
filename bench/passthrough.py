"""The broker's own latency floor: consume a report and forward it at once, nothing else.

No parsing, no waiting for acknowledgements, one message out per message in (to
``bench.passthrough.v1``). ``grid bench`` offers it the same load as the engine, so the
table shows how much of the engine's dispatch latency is two hops through this broker.

    python -m bench.passthrough BOOTSTRAP GROUP
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

IN_TOPIC = "bench.passthrough-in.v1"
OUT_TOPIC = "bench.passthrough.v1"


async def run(bootstrap: str, group: str, fetch_wait_ms: int = 10) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(IN_TOPIC, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=True,
                                fetch_max_wait_ms=fetch_wait_ms)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for rec in records:
                    await producer.send(OUT_TOPIC, rec.value, key=rec.key)
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    bootstrap, group = sys.argv[1:3]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(bootstrap, group))


if __name__ == "__main__":
    main()
