"""One plain consumer loop per input: ``poll a batch → handle → produce → commit``.

:class:`UnitLoop` owns an aiokafka consumer in its own group and a :mod:`streams.sinks`
sink. Input partitions are grouped into *units* (a subclass says how: intake, one unit per
report partition; the case loop, one per street partition of located + commands). Polled records
are queued per unit; each unit has at most one task that takes everything queued for it,
handles it (:meth:`UnitLoop.handle`, synchronous, no I/O) and commits its output and input
offsets together (:meth:`Sink.commit`: one Kafka transaction on Apache Kafka, unless the
loop is not ``transactional``), and again
while records keep coming. Polling does not wait for the commits (a unit's next transaction
takes whatever arrived meanwhile); it waits only when ``batch_size`` records are queued.
A unit's lock (:meth:`UnitLoop.unit_lock`) is held from handling to commit, so timers that
commit in a unit (the case loop's escalations) never interleave with its batches.

On assignment the sink first fences earlier owners of the new units, then the subclass
restores their state (:meth:`UnitLoop.assigned`), then the loop seeks each partition to its
committed offset as read *after* the fence. A failure anywhere (a commit refused, a fenced
producer, a broker gone for longer than the client retries) ends :meth:`consume` (a unit
task's failure at the loop's next turn); the
caller (:func:`streams.kafka_io.run_forever`) starts it again with a new consumer and fresh
state, from the committed offsets. So does a partition that stays assigned with input
waiting and no progress for ``stall_seconds`` (:class:`PartitionWatch`, checked by a task
beside the polling, so a poll stuck in any await is caught too): whatever holds it, the
loop logs what it saw and starts again rather than leave the partition behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from streams.broker import bootstrap_of, client_security, on_tansu
from streams.health import ConsumerHealth
from streams.kafka_io import STOP_SECONDS, position, run_forever, stop_client
from streams.settings import Settings
from streams.sinks import AtLeastOnceSink, Out, Sink, TransactionalSink

log = logging.getLogger(__name__)

Records = list[ConsumerRecord]
Done = Callable[[], None]  # what to tell listeners once a unit's batch is committed


FETCH_STALE_SECONDS = 5.0  # an unpaused partition with no fetch answer this long waits
CLOSE_SECONDS = STOP_SECONDS  # a stopping loop waits this long for commits cut short to abort


class Stalled(RuntimeError):
    """An assigned partition waited ``stall_seconds`` without progress (see the message)."""


class PartitionWatch:
    """Per partition, since when it has been *waiting* (input it has not handled and
    committed) with its *progress mark* (committed offset, fetch position) unchanged.
    :meth:`observe` returns how long that has been (0 when not waiting or it moved)."""

    def __init__(self) -> None:
        self._since: dict[TopicPartition, tuple[Any, float]] = {}

    def observe(self, tp: TopicPartition, waiting: bool, mark: Any, now: float) -> float:
        if not waiting:
            self._since.pop(tp, None)
            return 0.0
        seen = self._since.get(tp)
        if seen is None or seen[0] != mark:
            self._since[tp] = (mark, now)
            return 0.0
        return now - seen[1]

    def reset(self) -> None:
        self._since.clear()


def _ago(ms: int | None) -> str:
    return "never" if ms is None else f"{time.time() - ms / 1000:.0f} s ago"


async def first_failure(*coros: Coroutine[Any, Any, None]) -> None:
    """Run ``coros`` (each runs until it fails) together; when one ends, cancel the
    others and raise what ended it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
    for task in done:
        task.result()


class UnitLoop(ConsumerRebalanceListener):
    """The loop; subclasses define ``name``, ``topics``, :meth:`unit_of`, :meth:`handle`."""

    name = "loop"
    topics: tuple[str, ...] = ()
    assignors: tuple[Any, ...] | None = None  # None: aiokafka's default
    # False: at-least-once even on Apache Kafka (the intake: its one reader drops repeats)
    transactional = True

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
        self._pending: dict[str, list[tuple[TopicPartition, Records]]] = {}  # polled, queued
        self._running: dict[str, asyncio.Task[None]] = {}  # a unit's task, while it has work
        self._locks: dict[str, asyncio.Lock] = {}
        self._failure: BaseException | None = None  # of a unit task, raised by the loop
        self._takeover: list[TopicPartition] | None = None  # assigned, not yet taken over
        self.fetched_to: dict[TopicPartition, int] = {}  # past the last record polled
        self.watch = PartitionWatch()
        self._restoring = False  # a takeover restores state (not watched meanwhile)
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
        txn = self.exactly_once and self.transactional
        self.sink = (TransactionalSink(self.bootstrap, self.group_id, self.group_id)
                     if txn else AtLeastOnceSink(self.bootstrap, cons.commit))
        if txn:
            log.info("%s: exactly-once (Kafka transactions, id prefix %s)", self.name,
                     self.group_id)
        elif self.exactly_once:
            log.info("%s: at-least-once (an idempotent producer; its reader drops repeats)",
                     self.name)
        else:
            log.warning("%s: at-least-once (Tansu has no transactions; consumers drop "
                        "repeats by id)", self.name)
        cons.subscribe(list(self.topics), listener=self)
        try:
            await cons.start()
            self.health.started()
            await first_failure(self._poll(cons), self._watch_forever(cons))
        finally:
            self._pending.clear()
            self.fetched_to.clear()
            self.watch.reset()
            for task in list(self._running.values()):
                task.cancel()
            if self._running:  # a commit cut short aborts its transaction (bounded)
                await asyncio.wait(list(self._running.values()), timeout=CLOSE_SECONDS)
            self._failure = None
            self.consumer = None
            released = sorted(self.units)
            self.units.clear()
            self.released(released)
            with contextlib.suppress(Exception):
                await self.sink.close()
            await stop_client(cons)

    async def _poll(self, cons: AIOKafkaConsumer) -> None:
        while True:
            self.health.beat()
            self._raise_failure()
            if self._takeover is not None:
                assigned, self._takeover = self._takeover, None
                await self._take_over(cons, assigned)
            await self._backpressure()
            batch = await cons.getmany(timeout_ms=100, max_records=self.settings.batch_size)
            if batch:
                self._queue(cons, batch)
            await self.idle()

    async def _watch_forever(self, cons: AIOKafkaConsumer) -> None:
        """:meth:`_watch` every second, beside the polling (which it ends by raising): a
        poll stuck in any await is seen too."""
        while True:
            await asyncio.sleep(1.0)
            await self._watch(cons)

    def unit_lock(self, unit: str) -> asyncio.Lock:
        """Held from handling to commit of a batch (or a timer's output) of ``unit``."""
        return self._locks.setdefault(unit, asyncio.Lock())

    def _queue(self, cons: AIOKafkaConsumer, batch: dict[TopicPartition, Records]) -> None:
        """Queue polled records per unit and start the task of each unit that has none."""
        for tp, records in batch.items():
            unit = self.unit_of(tp)
            if unit not in self.units:  # fetched while its takeover still runs: read again
                cons.seek(tp, records[0].offset)
                continue
            self.health.fetched(tp, records[0].offset, records[0].timestamp)
            self.fetched_to[tp] = records[-1].offset + 1
            self._pending.setdefault(unit, []).append((tp, records))
            if (hw := cons.highwater(tp)) is not None:
                self.highwater[tp] = hw
            if unit not in self._running:
                self._running[unit] = asyncio.create_task(self._drain(cons, unit))

    async def _drain(self, cons: AIOKafkaConsumer, unit: str) -> None:
        """Handle and commit what is queued for ``unit`` until nothing is; a failure is kept
        for the loop to raise."""
        try:
            while parts := self._pending.pop(unit, None):
                async with self.unit_lock(unit):
                    await self._unit_batch(unit, parts)
                if unit not in self._pending:  # past the records, and past the transaction
                    for tp in {tp for tp, _rs in parts}:  # markers the same fetch brought
                        with contextlib.suppress(Exception):
                            self.read_to[tp] = await position(cons, tp)
        except Exception as e:
            self._failure = self._failure or e
        finally:
            self._running.pop(unit, None)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    async def _backpressure(self) -> None:
        """Wait for a unit task while ``batch_size`` records or more are queued."""
        while self._running and sum(len(rs) for parts in self._pending.values()
                                    for _tp, rs in parts) >= self.settings.batch_size:
            await asyncio.wait(list(self._running.values()),
                               return_when=asyncio.FIRST_COMPLETED)
            self._raise_failure()

    async def _watch(self, cons: AIOKafkaConsumer) -> None:
        """Raise :class:`Stalled` when an assigned partition has been waiting
        ``stall_seconds`` without progress: paused outside a takeover, records past its
        fetch position it does not fetch, no fetch answer for it in ``FETCH_STALE_SECONDS``
        while it is not paused, or records polled that are not committed. A pending
        takeover or a state restore resets the watch (fencing does not: it counts)."""
        now = time.monotonic()
        if self._takeover is not None or self._restoring:
            self.watch.reset()
            return
        paused = cons.paused()
        stale_before = time.time() * 1000 - FETCH_STALE_SECONDS * 1000
        # read without an await between: a rebalance cannot change the assignment meanwhile
        # (aiokafka asserts on a partition no longer assigned)
        seen = [(tp, cons.last_stable_offset(tp), cons.last_poll_timestamp(tp),
                 self.fetched_to.get(tp, self.committed.get(tp, 0)))
                for tp in cons.assignment()]
        for tp, lso, answered_at, fetched in seen:
            unfetched = lso is not None and lso > fetched
            if unfetched:  # an aborted transaction or markers at the end are not records
                with contextlib.suppress(Exception):
                    unfetched = lso > await position(cons, tp)
            if self._takeover is not None or tp not in cons.assignment():
                self.watch.reset()  # a rebalance came during the await: look again later
                return
            unit = self.unit_of(tp)
            queued = unit in self._pending or unit in self._running
            unanswered = tp not in paused and (answered_at or 0) < stale_before
            waiting = tp in paused or unfetched or unanswered or queued
            stalled = self.watch.observe(tp, waiting, (self.committed.get(tp), fetched), now)
            if waiting and stalled >= self.settings.stall_seconds:
                raise Stalled(
                    f"{self.name}: {tp.topic}[{tp.partition}] (unit {unit}) has waited "
                    f"{stalled:.0f} s without progress: paused {tp in paused}, fetched to "
                    f"{fetched}, stable end {lso}, last fetch answer "
                    f"{_ago(answered_at)}, committed {self.committed.get(tp)}, "
                    f"records queued {unit in self._pending}, batch in hand "
                    f"{unit in self._running}; starting the loop again")

    async def _quiesce(self) -> None:
        """Drop what is queued and wait for the units' batches and timers in hand to commit
        (their records are read again from the committed offsets)."""
        self._pending.clear()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        for lock in list(self._locks.values()):
            async with lock:
                pass

    async def _unit_batch(self, unit: str, parts: list[tuple[TopicPartition, Records]]) -> None:
        by_tp: dict[TopicPartition, Records] = {}
        for tp, rs in parts:  # successive polls of one partition, in order
            by_tp.setdefault(tp, []).extend(rs)
        # located and commands in time order; each partition keeps its own order
        records = list(heapq.merge(*by_tp.values(), key=lambda r: r.timestamp))
        out, done = self.handle(unit, records)
        offsets = {tp: rs[-1].offset + 1 for tp, rs in by_tp.items()}
        await self.commit(unit, out, offsets)
        if done is not None:
            done()

    async def commit(self, unit: str, out: list[Out],
                     offsets: dict[TopicPartition, int]) -> None:
        assert self.sink is not None
        t0 = time.perf_counter()
        await self.sink.commit(unit, out, offsets)
        self.health.commit_took(time.perf_counter() - t0)
        self.committed.update(offsets)
        self.health.committed(offsets)

    # -- rebalance ----------------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._quiesce()  # the batches in hand commit first
        self.health.revoked(revoked)
        for tp in revoked:
            self.highwater.pop(tp, None)
            self.read_to.pop(tp, None)
            self.fetched_to.pop(tp, None)

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
        await self._quiesce()  # nothing queued before the seek below may be handled after it
        units = {self.unit_of(tp) for tp in assigned}
        gone, new = sorted(self.units - units), sorted(units - self.units)
        log.info("%s: units %s (new %s, given up %s)", self.name, sorted(units), new, gone)
        await sink.release(gone)
        self.released(gone)
        self.units -= set(gone)
        t0 = time.monotonic()
        await sink.assign(new)  # fences the units' earlier owners first
        self._restoring = True  # as long as it takes: the watch does not count it
        try:
            await self.assigned(new)
        finally:
            self._restoring = False
        self.units |= set(new)
        for tp in assigned:  # read after the fence: a zombie's last commit is in
            with contextlib.suppress(KafkaError):
                off = await cons.committed(tp)
                if off is not None:
                    cons.seek(tp, off)
                self.committed[tp] = self.fetched_to[tp] = off or 0
        self.health.committed({tp: self.committed.get(tp, 0) for tp in assigned})
        if new:
            log.info("%s: %d unit(s) ready in %.2f s", self.name, len(new),
                     time.monotonic() - t0)
        self.watch.reset()
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
