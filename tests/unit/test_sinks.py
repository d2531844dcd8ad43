"""The transactional sink's order of requests within one commit (a fake producer: no I/O)."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from streams.sinks import Out, TransactionalSink


class FakeBatch:
    def __init__(self) -> None:
        self.n = 0

    def append(self, **_: object) -> object:
        self.n += 1
        return object()

    def record_count(self) -> int:
        return self.n


class FakeProducer:
    """Records the transaction's steps; a batch is acknowledged only when ``ack()`` runs."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.pending: list[asyncio.Future] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(8))

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def begin_transaction(self) -> None:
        self.steps.append("begin")

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        self.steps.append(f"send {topic}/{partition} ({batch.n})")
        asyncio.get_running_loop().call_later(0.01, self.ack)
        return fut

    def ack(self) -> None:
        for fut in self.pending:
            if not fut.done():
                fut.set_result(None)
                self.steps.append("ack")

    async def send_offsets_to_transaction(self, offsets: dict, group_id: str) -> None:
        parts = sorted((tp.partition, o) for tp, o in offsets.items())
        self.steps.append(f"offsets {group_id} {parts}")

    async def commit_transaction(self) -> None:
        self.steps.append("commit")

    async def abort_transaction(self) -> None:
        self.steps.append("abort")


async def test_records_are_acknowledged_before_the_offsets_join_the_transaction() -> None:
    """On Apache Kafka a produce whose check meets the offsets' AddOffsetsToTxn is retried
    after a backoff: the sink adds the offsets only once the records are acknowledged."""
    sink = TransactionalSink("kafka://127.0.0.1:9", "app", "app")
    prod = FakeProducer()
    sink.producers["3"] = prod  # type: ignore[assignment]
    await sink.commit("3", [Out("grid.case-events.v1", b"k", b"v", 3),
                            Out("grid.case-events.v1", b"k2", b"v2", 3),
                            Out("grid.dispatch.v1", b"u", b"w", 5)],
                      {TopicPartition("grid.located.v1", 3): 42})
    assert prod.steps == ["begin", "send grid.case-events.v1/3 (2)", "send grid.dispatch.v1/5 (1)",
                          "ack", "ack", "offsets app [(3, 42)]", "commit"]


async def test_a_commit_without_offsets_does_not_wait_for_its_acknowledgements() -> None:
    """A timer's commit (no input offsets) leaves the wait for the records to the commit."""
    sink = TransactionalSink("kafka://127.0.0.1:9", "app", "app")
    prod = FakeProducer()
    sink.producers["0"] = prod  # type: ignore[assignment]
    await sink.commit("0", [Out("grid.alerts.v1", b"d", b"a", 0)], {})
    assert prod.steps == ["begin", "send grid.alerts.v1/0 (1)", "commit"]
