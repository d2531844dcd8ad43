"""One plain consumer loop per input: ``poll a batch → handle → produce → commit``.

:class:`UnitLoop` owns an aiokafka consumer in its own group and a :mod:`streams.sinks`
sink. Input partitions are grouped into *units* (a subclass says how: intake, one unit per
report partition; the case loop, one per street partition of located + commands). For every
polled batch each unit's records are handled (:meth:`UnitLoop.handle`, synchronous, no I/O)
and its output and input offsets committed together (:meth:`Sink.commit`: one Kafka
transaction on Apache Kafka). Units commit concurrently; the next poll waits for them.

On assignment the sink first fences earlier owners of the new units, then the subclass
restores their state (:meth:`UnitLoop.assigned`), then the loop seeks each partition to its
committed offset as read *after* the fence. A failure anywhere (a commit refused, a fenced
producer, a broker gone for longer than the client retries) ends :meth:`consume`; the
caller (:func:`streams.kafka_io.run_forever`) starts it again with a new consumer and fresh
state, from the committed offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from streams.broker import bootstrap_of, client_security, on_tansu
from streams.health import ConsumerHealth
from streams.kafka_io import run_forever
from streams.settings import Settings
from streams.sinks import AtLeastOnceSink, Out, Sink, TransactionalSink

log = logging.getLogger(__name__)

Records = list[ConsumerRecord]
Done = Callable[[], None]  # what to tell listeners once a unit's batch is committed


class UnitLoop(ConsumerRebalanceListener):
    """The loop; subclasses define ``name``, ``topics``, :meth:`unit_of`, :meth:`handle`."""

    name = "loop"
    topics: tuple[str, ...] = ()
    assignors: tuple[Any, ...] | None = None  # None: aiokafka's default

    def __init__(self, settings: Settings, group_suffix: str) -> None:
        self.settings = s = settings
        self.group_id = f"{s.app_id}-{group_suffix}"
        self.bootstrap = bootstrap_of(s.broker)
        self.exactly_once = not on_tansu()
        self.consumer: AIOKafkaConsumer | None = None
        self.sink: Sink | None = None
        self.units: set[str] = set()
        self.committed: dict[TopicPartition, int] = {}
        self.highwater: dict[TopicPartition, int] = {}
        self.read_to: dict[TopicPartition, int] = {}  # consumer position after a handled batch
        self._lock = asyncio.Lock()  # held while a batch is handled and committed
        self._takeover: list[TopicPartition] | None = None  # assigned, not yet taken over
        self.health = ConsumerHealth(self.name, stuck_after=s.stuck_seconds,
                                     lag=lambda: sum(self.lag().values()))

    # -- what a subclass provides -----------------------------------------------------------

    def unit_of(self, tp: TopicPartition) -> str:
        raise NotImplementedError

    def handle(self, unit: str, records: Records) -> tuple[list[Out], Done | None]:
        """Output of one unit's records (and what to do once it is committed)."""
        raise NotImplementedError

    async def assigned(self, new_units: list[str]) -> None:
        """New units are ours and fenced: restore their state (default: stateless)."""

    def released(self, units: list[str]) -> None:
        """Units are no longer ours: drop their state."""

    async def idle(self) -> None:
        """Called every time round the loop (timers)."""

    # -- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until cancelled; a failed consumer is replaced after 2 s."""
        await run_forever(self.consume, f"{self.name} loop", health=self.health)

    def _new_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        # heartbeats share the event loop with the handling: 10 s of session, not Faust's 6;
        # a member's rejoin waits for the batch in hand to commit: 10 s, not Faust's 3
        fast = dict(session_timeout_ms=10_000, heartbeat_interval_ms=1000,
                    rebalance_timeout_ms=10_000) if s.fast_group else {}
        kw: dict[str, Any] = dict(fast)
        if self.assignors:
            kw["partition_assignment_strategy"] = self.assignors
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed", fetch_max_wait_ms=s.fetch_wait_ms,
            max_partition_fetch_bytes=2 << 20, max_poll_records=s.batch_size,
            **kw, **client_security())

    async def consume(self) -> None:
        cons = self.consumer = self._new_consumer()
        self._takeover = None
        self.sink = (TransactionalSink(self.bootstrap, self.group_id, self.group_id)
                     if self.exactly_once else AtLeastOnceSink(self.bootstrap, cons.commit))
        if self.exactly_once:
            log.info("%s: exactly-once (Kafka transactions, id prefix %s)", self.name,
                     self.group_id)
        else:
            log.warning("%s: at-least-once (Tansu has no transactions; consumers drop "
                        "repeats by id)", self.name)
        cons.subscribe(list(self.topics), listener=self)
        try:
            await cons.start()
            self.health.started()
            while True:
                self.health.beat()
                if self._takeover is not None:
                    assigned, self._takeover = self._takeover, None
                    await self._take_over(cons, assigned)
                batch = await cons.getmany(timeout_ms=100, max_records=self.settings.batch_size)
                if batch:
                    async with self._lock:
                        await self._handle_batch(cons, batch)
                await self.idle()
        finally:
            self.consumer = None
            released = sorted(self.units)
            self.units.clear()
            self.released(released)
            with contextlib.suppress(Exception):
                await self.sink.close()
            await cons.stop()

    async def _handle_batch(self, cons: AIOKafkaConsumer,
                            batch: dict[TopicPartition, Records]) -> None:
        by_unit: dict[str, list[tuple[TopicPartition, Records]]] = {}
        for tp, records in batch.items():
            unit = self.unit_of(tp)
            if unit not in self.units:  # fetched while its takeover still runs: read again
                cons.seek(tp, records[0].offset)
                continue
            self.health.fetched(tp, records[0].offset, records[0].timestamp)
            by_unit.setdefault(unit, []).append((tp, records))
            if (hw := cons.highwater(tp)) is not None:
                self.highwater[tp] = hw
        await asyncio.gather(*(self._unit_batch(u, parts) for u, parts in by_unit.items()))
        for parts in by_unit.values():  # past the records, and past the transaction markers
            for tp, _records in parts:  # the same fetch brought (they are not records)
                with contextlib.suppress(Exception):
                    self.read_to[tp] = await asyncio.wait_for(cons.position(tp), 1.0)

    async def _unit_batch(self, unit: str, parts: list[tuple[TopicPartition, Records]]) -> None:
        # located and commands in time order; each partition keeps its own order
        records = list(heapq.merge(*(rs for _tp, rs in parts), key=lambda r: r.timestamp))
        out, done = self.handle(unit, records)
        offsets = {tp: rs[-1].offset + 1 for tp, rs in parts}
        await self.commit(unit, out, offsets)
        if done is not None:
            done()

    async def commit(self, unit: str, out: list[Out],
                     offsets: dict[TopicPartition, int]) -> None:
        assert self.sink is not None
        await self.sink.commit(unit, out, offsets)
        self.committed.update(offsets)
        self.health.committed(offsets)

    # -- rebalance ----------------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:  # the batch in hand commits first
            pass
        self.health.revoked(revoked)
        for tp in revoked:
            self.highwater.pop(tp, None)
            self.read_to.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Pause the new assignment; the loop takes it over (:meth:`_take_over`) outside the
        rebalance, so the group never waits for fencing or a state restore."""
        if self.consumer is not None:
            self.consumer.pause(*assigned)
            self._takeover = list(assigned)

    async def _take_over(self, cons: AIOKafkaConsumer, assigned: list[TopicPartition]) -> None:
        """Fence the new units' earlier owners, restore their state, seek each partition to
        its committed offset as read after the fence, resume what is still assigned."""
        sink = self.sink
        assert sink is not None
        units = {self.unit_of(tp) for tp in assigned}
        gone, new = sorted(self.units - units), sorted(units - self.units)
        log.info("%s: units %s (new %s, given up %s)", self.name, sorted(units), new, gone)
        await sink.release(gone)
        self.released(gone)
        self.units -= set(gone)
        t0 = time.monotonic()
        await sink.assign(new)  # fences the units' earlier owners first
        await self.assigned(new)
        self.units |= set(new)
        for tp in assigned:  # read after the fence: a zombie's last commit is in
            with contextlib.suppress(KafkaError):
                off = await cons.committed(tp)
                if off is not None:
                    cons.seek(tp, off)
                self.committed[tp] = off or 0
        self.health.committed({tp: self.committed.get(tp, 0) for tp in assigned})
        if new:
            log.info("%s: %d unit(s) ready in %.2f s", self.name, len(new),
                     time.monotonic() - t0)
        if self._takeover is None:  # no newer assignment came meanwhile
            current = set(cons.assignment())
            cons.resume(*(tp for tp in assigned if tp in current))

    def lag(self) -> dict[TopicPartition, int]:
        """Offsets not yet handled and committed, per assigned partition: the end offset as
        of the last fetch minus the committed offset — or minus the position after the last
        handled batch when that is further: a transaction's commit marker takes an offset of
        the input partition but is no record, so it is never committed."""
        cons = self.consumer
        if cons is None:
            return {}
        return {tp: max(self.highwater.get(tp, 0) - max(self.committed.get(tp, 0),
                                                        self.read_to.get(tp, 0)), 0)
                for tp in cons.assignment()}
