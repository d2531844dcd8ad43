"""Bound how long a fetch may wait at the broker.

Faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500``. Apache Kafka answers a fetch
as soon as one byte is there, so this costs nothing; the embedded Tansu broker holds the
fetch for the whole wait when a partition is empty, which put ~1 s on every hop of the
pipeline. ``GRID_FETCH_WAIT_MS`` (default 25 ms; the intake consumer uses it too) caps it.
Much shorter is worse, not better: Tansu's cost per fetch grows with the number of record
batches stored in the partitions fetched, and 2 ms waits overloaded it (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver

_original = driver.AIOKafkaConsumerThread._create_worker_consumer


def set_fetch_wait(ms: int) -> None:
    """Make every Faust worker consumer created after this call wait at most ``ms``."""

    def create(self: Any, transport: Any) -> Any:
        consumer = _original(self, transport)
        consumer._fetch_max_wait_ms = ms  # read by aiokafka when the consumer starts
        return consumer

    driver.AIOKafkaConsumerThread._create_worker_consumer = create
