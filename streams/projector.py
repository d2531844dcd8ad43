"""The projector: case events, work orders and alerts from Kafka into the read store.

One plain aiokafka loop in a consumer group: ``poll batch → StoreWriter.apply (rows and
offsets in one database transaction) → tell live subscribers``. Kafka offsets are not
committed: the store's ``consumed_offsets`` are the truth, and on every assignment the
consumer seeks there, so a crash never loses or doubles a row. Several projectors on one
store share the partitions (same group); a projector that lost a partition it still
writes is fenced by the store (:class:`store.writer.Fenced`) and seeks again.

A worker whose store is filled by projectors elsewhere runs a :class:`LiveFeed` instead:
it tails the same topics from their end (no group) and hands each event to the live
subscribers once the store holds it, so a page that reads the store on an event sees it.

A store that is *ahead* of the log (the broker was recreated, e.g. the memory-only Tansu
fallback restarted) does not describe this log: a private store (SQLite, the embedded
default) is emptied and rebuilt from the log; a shared one stops the projector with an
error that says to run ``grid projector --rebuild``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError

from store.db import reset
from store.writer import TOPICS, Fenced, Record, StoreWriter
from streams import topics as T
from streams.broker import bootstrap_of, client_security
from streams.health import ConsumerHealth
from streams.kafka_io import position, run_forever, stop_client

log = logging.getLogger(__name__)

QUEUE_SIZE = 2000
# records per batch (one transaction) when the log is behind: at 1,000,000 cases a batch
# of 2,000 spans ~40 minutes of the log and nearly every event rewrites its case's row;
# 10,000 fold several events of a case in memory first (grid bench store: +35 % events/s)
MAX_RECORDS = 10_000


class StoreBehindLog(RuntimeError):
    """The store holds offsets beyond the end of the log: it belongs to another log."""


class Subscribers:
    """Live subscribers (server-sent events): bounded queues; a slow one loses messages."""

    def __init__(self) -> None:
        self.subscribers: set[asyncio.Queue] = set()
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self.subscribers.discard(q)

    def _notify(self, kind: str, msg: dict[str, Any]) -> None:
        for cb in self.listeners:
            cb(kind, msg)
        for q in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait({"kind": kind, "data": msg})


class Projector(Subscribers):
    """Feeds ``writer``'s store from ``bootstrap`` in consumer group ``group``.

    ``private``: the store belongs to this projector alone (rebuilt when it does not match
    the log). ``subscribe()`` gives a queue of ``{"kind": "event"|"alert", "data": msg}``
    for each newly stored event or alert; ``caught_up`` is set once the log present at
    start is stored.
    """

    def __init__(self, bootstrap: str, writer: StoreWriter, group: str,
                 private: bool = False, stuck_after: float = 30.0) -> None:
        super().__init__()
        self.bootstrap = bootstrap_of(bootstrap)
        self.writer = writer
        self.group = group
        self.private = private
        self.caught_up = asyncio.Event()
        self.applied = 0
        self.fenced = 0
        self._lag: dict[TopicPartition, int] = {}
        self._ends: dict[TopicPartition, int] | None = None
        self._error: BaseException | None = None  # raised in a rebalance callback
        self.health = ConsumerHealth("projector", stuck_after=stuck_after,
                                     lag=lambda: sum(self._lag.values()))

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Project forever (cancel to stop); a failed consumer is replaced after 2 s."""
        await run_forever(self._consume, "projector", health=self.health)

    async def _consume(self) -> None:
        cons = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest", isolation_level="read_committed",
            metadata_max_age_ms=5000, **client_security())
        await cons.start()
        try:
            cons.subscribe(list(TOPICS), listener=_Seek(self, cons))
            self.health.started()
            while True:
                self.health.beat()
                if self._error is not None:
                    err, self._error = self._error, None
                    raise err
                batch = await cons.getmany(timeout_ms=500, max_records=MAX_RECORDS)
                mine = cons.assignment()  # a rebalance may have taken some meanwhile
                records = [Record(tp.topic, tp.partition, r.offset, r.value)
                           for tp, rs in batch.items() if tp in mine for r in rs]
                if records:
                    try:
                        applied = await asyncio.to_thread(self.writer.apply, records)
                    except Fenced as err:
                        self.fenced += 1
                        log.warning("projector fenced (%s); seeking to the stored offsets", err)
                        await self._seek(cons, cons.assignment())
                        continue
                    self.applied += len(applied.records)
                    if self.listeners or self.subscribers:  # parsed only for them
                        for e in applied.events:
                            self._notify("event", e)
                    for a in applied.alerts:
                        self._notify("alert", a)
                    self.health.committed({TopicPartition(*tp): o
                                           for tp, o in self.writer.positions.items()})
                read = await self._read_to(cons)
                mine = cons.assignment()  # the awaits above may have crossed a rebalance
                for tp, pos in read.items():
                    if tp in mine:  # aiokafka asserts on the highwater of others
                        self._lag[tp] = max((cons.highwater(tp) or pos) - pos, 0)
                self._check_caught_up(cons, read)
        finally:
            await stop_client(cons)

    async def _read_to(self, cons: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """Per assigned partition, how far the log is stored: the stored position, or the
        consumer's position when that is further — past the commit markers of the engine's
        transactions, which take offsets but are no records (so none is ever stored)."""
        out = {}
        for tp in cons.assignment():
            pos = self.writer.positions.get((tp.topic, tp.partition), 0)
            with contextlib.suppress(Exception):  # no position yet (just assigned)
                pos = max(pos, await position(cons, tp))
            out[tp] = pos
        return out

    def _check_caught_up(self, cons: AIOKafkaConsumer, read: dict[TopicPartition, int]
                         ) -> None:
        if self.caught_up.is_set() or self._ends is None:
            return
        if all(read.get(tp, 0) >= end
               for tp, end in self._ends.items() if tp in cons.assignment()):
            self.caught_up.set()
            log.info("projector caught up with the log present at start")

    async def _seek(self, cons: AIOKafkaConsumer, tps: Any) -> None:
        """Seek ``tps`` to the offsets stored with the rows (checking them against the log)."""
        tps = sorted(tps, key=lambda tp: (tp.topic, tp.partition))
        if not tps:
            return
        ends = await cons.end_offsets(tps)
        if self._ends is None:
            self._ends = dict(ends)
        stored = await asyncio.to_thread(self.writer.load_positions,
                                         [(tp.topic, tp.partition) for tp in tps])
        ahead = {tp: o for tp in tps if (o := stored[(tp.topic, tp.partition)]) > ends[tp]}
        if ahead:
            what = ", ".join(f"{tp.topic}[{tp.partition}] at {o} > end {ends[tp]}"
                             for tp, o in ahead.items())
            if not self.private:
                raise StoreBehindLog(f"the store is ahead of the log ({what}): it was filled "
                                     f"from another cluster; run `grid projector --rebuild`")
            log.warning("the store is ahead of the log (%s): the broker was recreated; "
                        "emptying the store and rebuilding it from the log", what)
            await asyncio.to_thread(reset, self.writer.engine)
            self.writer.positions.clear()
            stored = await asyncio.to_thread(self.writer.load_positions,
                                             [(tp.topic, tp.partition) for tp in tps])
        for tp in tps:
            with contextlib.suppress(IllegalStateError):  # revoked meanwhile: not ours
                cons.seek(tp, stored[(tp.topic, tp.partition)])


class _Seek(ConsumerRebalanceListener):
    """Assignment → seek to the store's offsets; revocation → forget those partitions."""

    def __init__(self, projector: Projector, cons: AIOKafkaConsumer) -> None:
        self.p = projector
        self.cons = cons

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.p.writer.forget((tp.topic, tp.partition) for tp in revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            await self.p._seek(self.cons, assigned)
        except Exception as err:  # aiokafka would only log it: the loop raises it
            self.p._error = err


class LiveFeed(Subscribers):
    """Live events for a worker without a projector: tails case events and alerts from their
    end (no group) and publishes each once projector group ``group`` has stored it in the
    store that ``stored_offsets(group)`` reads (``ReadStore.stored_offsets``, asked every
    ``poll`` seconds at most while something waits). With no subscriber and no listener it
    holds nothing (a worker serving the API always has one: its command results)."""

    def __init__(self, bootstrap: str, stored_offsets: Callable[[str], dict], group: str,
                 poll: float = 0.2) -> None:
        super().__init__()
        self.bootstrap = bootstrap_of(bootstrap)
        self.stored_offsets = stored_offsets
        self.group = group
        self.poll = poll
        self.caught_up = asyncio.Event()  # the store is not this worker's to wait for
        self.caught_up.set()
        self.health = ConsumerHealth("live_feed")

    async def run(self) -> None:
        await run_forever(self._consume, "live feed", health=self.health)

    async def _consume(self) -> None:
        # no group: every partition, each from its end when it is first seen
        cons = AIOKafkaConsumer(T.CASE_EVENTS, T.ALERTS, bootstrap_servers=self.bootstrap,
                                group_id=None, enable_auto_commit=False,
                                auto_offset_reset="latest", isolation_level="read_committed",
                                **client_security())
        await cons.start()
        try:
            self.health.started()
            # per partition, in offset order: what the store has not yet stored
            waiting: dict[TopicPartition, deque[tuple[int, bytes]]] = {}
            next_look = 0.0
            while True:
                self.health.beat()
                batch = await cons.getmany(timeout_ms=int(self.poll * 1000))
                if not (self.subscribers or self.listeners):
                    waiting.clear()  # nobody watches: nothing to hold
                    continue
                for tp, rs in batch.items():
                    q = waiting.setdefault(tp, deque(maxlen=QUEUE_SIZE))  # a screenful behind
                    q.extend((r.offset, r.value) for r in rs if r.value is not None)
                if not any(waiting.values()) or time.monotonic() < next_look:
                    continue
                next_look = time.monotonic() + self.poll  # the store is asked this often
                stored = await asyncio.to_thread(self.stored_offsets, self.group)
                for tp, q in waiting.items():
                    end = stored.get((tp.topic, tp.partition), 0)
                    while q and q[0][0] < end:
                        _offset, raw = q.popleft()
                        with contextlib.suppress(orjson.JSONDecodeError):
                            msg = orjson.loads(raw)
                            if isinstance(msg, dict):
                                self._notify("alert" if tp.topic == T.ALERTS else "event", msg)
        finally:
            await stop_client(cons)

