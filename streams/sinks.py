"""Where the intake and case loops put their output, and how they commit their input.

A loop handles a batch of one *unit* (intake: a report partition; the case loop: a street
partition of ``grid.located.v1`` + ``grid.commands.v1``), collects its output as
:data:`Out` records, then calls :meth:`Sink.commit` with the input offsets the batch covers.

* :class:`TransactionalSink` (Apache Kafka): one transactional producer per unit,
  ``transactional.id = <prefix>-<unit>``. Output and input offsets are committed in one Kafka
  transaction (``send_offsets_to_transaction``): a ``read_committed`` consumer sees each
  output record exactly once, whatever crashes. Starting the producer of a unit (when the
  unit is assigned) fences every earlier producer with the same id, so a worker that lost
  the unit without knowing it yet (paused past its session: a zombie) fails its next commit
  with ``ProducerFenced`` and none of its late output becomes visible.
* :class:`AtLeastOnceSink`: output first (an idempotent producer), offsets after; a crash in
  between repeats output. The intake loop uses it on Apache Kafka too: its output goes only
  to the case loop, which drops what it handled before by the records' ``origin`` headers
  (:mod:`streams.caseloop`), so every report costs one transaction, not two. On the Tansu
  fallback (no transactions) both loops use it, and consumers drop repeats by id.

A commit that fails raises: the loop then drops its state and starts again from the
committed offsets (nothing half-done is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from streams.broker import client_security, on_tansu
from streams.kafka_io import STOP_SECONDS, stop_client

log = logging.getLogger(__name__)

# A record batch (one partition) stays under Apache Kafka's default message.max.bytes
# (1 MiB + 12): the broker refuses a larger batch whole (MessageSizeTooLarge).
BATCH_BYTES = 1_000_000

# Between two transactions of one producer the coordinator is still writing the commit
# markers; requests of the next one meanwhile get CONCURRENT_TRANSACTIONS (a produce, with
# Kafka's partition verification: NOT_ENOUGH_REPLICAS) and are retried after this backoff.
# aiokafka's default of 100 ms put 100-ms steps into the commit latency (engine p50 at 50
# reports/s 270 -> 123 ms with 20 ms, docs/BENCHMARKS.md); the Java client retries after 20.
TXN_RETRY_BACKOFF_MS = 20
ABORT_SECONDS = STOP_SECONDS  # a failed commit's abort waits this long at most


class Out(NamedTuple):
    """One output record; ``partition`` None: by the key (murmur2), as Kafka's default."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (murmur2)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class Sink(Protocol):
    async def assign(self, units: Iterable[str]) -> None: ...
    async def release(self, units: Iterable[str]) -> None: ...
    async def commit(self, unit: str, records: list[Out],
                     offsets: dict[TopicPartition, int]) -> None: ...
    async def close(self) -> None: ...


def _producer(bootstrap: str, **kw: Any) -> AIOKafkaProducer:
    # Tansu only: it refuses InitProducerId, so no idempotent producer there
    kw.setdefault("enable_idempotence", not on_tansu())
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                            max_batch_size=BATCH_BYTES, max_request_size=8 << 20,
                            request_timeout_ms=60_000, **kw, **client_security())


CHANGELOG = "-changelog"  # state topics end so (streams.caseloop.changelog_topics)


class _Batcher:
    """Hands records to a producer as one record batch per topic partition."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    async def send(self, prod: AIOKafkaProducer, records: list[Out]) -> list[asyncio.Future]:
        groups: dict[tuple[str, int], list[Out]] = {}
        for r in records:
            p = r.partition
            if p is None:
                n = self._counts.get(r.topic) or await self._count(prod, r.topic)
                p = (murmur2(r.key) & 0x7FFFFFFF) % n if r.key else hash(r.value) % n
            groups.setdefault((r.topic, p), []).append(r)
        futures = []
        for (topic, p), recs in groups.items():
            batch = prod.create_batch()
            for r in recs:
                if batch.append(key=r.key, value=r.value, timestamp=None,
                                headers=list(r.headers)) is None:
                    futures.append(await prod.send_batch(batch, topic, partition=p))
                    batch = prod.create_batch()
                    if batch.append(key=r.key, value=r.value, timestamp=None,
                                    headers=list(r.headers)) is None:
                        raise ValueError(f"a record of {len(r.value or b'')} bytes to {topic} "
                                         "exceeds the batch size")
            if batch.record_count():
                futures.append(await prod.send_batch(batch, topic, partition=p))
        return futures

    async def _count(self, prod: AIOKafkaProducer, topic: str) -> int:
        n = len(await prod.partitions_for(topic))
        self._counts[topic] = n
        return n


class TransactionalSink:
    """Exactly-once output: a transaction per unit and batch (see the module doc)."""

    exactly_once = True

    def __init__(self, bootstrap: str, prefix: str, group_id: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.group_id = group_id
        self.producers: dict[str, AIOKafkaProducer] = {}
        self._batcher = _Batcher()

    async def assign(self, units: Iterable[str]) -> None:
        """Start a producer per new unit; this fences earlier owners of the unit (and aborts
        their open transaction) before the caller reads the unit's state or offsets."""
        new = [u for u in units if u not in self.producers]

        async def start(unit: str) -> None:
            prod = _producer(self.bootstrap, transactional_id=f"{self.prefix}-{unit}",
                             enable_idempotence=True, retry_backoff_ms=TXN_RETRY_BACKOFF_MS)
            await prod.start()
            self.producers[unit] = prod

        await asyncio.gather(*(start(u) for u in new))

    async def release(self, units: Iterable[str]) -> None:
        prods = [self.producers.pop(u) for u in list(units) if u in self.producers]
        await asyncio.gather(*(stop_client(p) for p in prods))

    async def commit(self, unit: str, records: list[Out],
                     offsets: dict[TopicPartition, int]) -> None:
        prod = self.producers[unit]
        await prod.begin_transaction()
        futures: list[asyncio.Future] = []
        try:
            futures = await self._batcher.send(prod, records)
            if offsets:
                # Records acknowledged before the offsets are added: Apache Kafka (3.6+,
                # KIP-890) checks a transactional produce, and a TxnOffsetCommit, with the
                # coordinator, and while it writes another change of the same transaction
                # (the AddOffsetsToTxn aiokafka would send beside the produce) the check fails
                # (NOT_ENOUGH_REPLICAS, COORDINATOR_NOT_AVAILABLE) and is retried after the
                # backoff: 8-10 % of the case loop's transactions at 50 reports/s. One round
                # trip more, no 20-ms retries (docs/BENCHMARKS.md).
                await asyncio.gather(*futures)
                await prod.send_offsets_to_transaction(offsets, self.group_id)
            await prod.commit_transaction()
        except BaseException:
            for fut in futures:  # their failure is this one: not logged again as unretrieved
                fut.add_done_callback(_retrieved)
            with contextlib.suppress(Exception):  # bounded: the commit may have been cut short
                async with asyncio.timeout(ABORT_SECONDS):
                    await prod.abort_transaction()
            raise

    async def close(self) -> None:
        await self.release(list(self.producers))


class AtLeastOnceSink:
    """The intake loop's sink, and every loop's on the Tansu fallback (no transactions
    there): one producer; output is acknowledged before the input offsets are committed with
    ``commit_offsets``, and the state (records
    to ``-changelog`` topics) is sent only once the rest of the output is acknowledged. So a
    case state that survives a crash had its output delivered: an input handled again after
    a crash finds either no state of it (and is handled anew) or its output out already
    (the engine re-emits the output of a case's latest input all the same; consumers
    dedupe by id)."""

    exactly_once = False

    def __init__(self, bootstrap: str, commit_offsets: Any) -> None:
        self.bootstrap = bootstrap
        self.commit_offsets = commit_offsets  # async (offsets) -> None: the consumer's commit
        self.producer: AIOKafkaProducer | None = None
        self._batcher = _Batcher()

    async def assign(self, units: Iterable[str]) -> None:
        if self.producer is None:
            prod = _producer(self.bootstrap)
            await prod.start()
            self.producer = prod

    async def release(self, units: Iterable[str]) -> None:
        return None

    async def commit(self, unit: str, records: list[Out],
                     offsets: dict[TopicPartition, int]) -> None:
        if records:
            await self.assign(())
            assert self.producer is not None
            state = [r for r in records if r.topic.endswith(CHANGELOG)]
            rest = [r for r in records if not r.topic.endswith(CHANGELOG)] if state else records
            for part in (rest, state):
                for fut in await self._batcher.send(self.producer, part) if part else ():
                    await fut
        if offsets:
            await self.commit_offsets(offsets)

    async def close(self) -> None:
        if self.producer is not None:
            prod, self.producer = self.producer, None
            await stop_client(prod)


class Publisher:
    """The API's producer (reports and commands it accepts): idempotent, ``acks=all``;
    :meth:`send` returns once the record is acknowledged."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        if self.producer is None:
            async with self._lock:
                if self.producer is None:
                    prod = _producer(self.bootstrap)
                    await prod.start()
                    self.producer = prod
        await self.producer.send_and_wait(topic, value, key=key)

    async def close(self) -> None:
        if self.producer is not None:
            prod, self.producer = self.producer, None
            await stop_client(prod)


def _retrieved(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()
