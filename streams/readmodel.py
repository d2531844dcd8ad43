"""The worker's read model: every case event and alert, folded into ``grid_app.projection``.

:func:`attach_read_model` adds a background task to the Faust app that reads
``grid.case-events.v1`` and ``grid.alerts.v1`` with aiokafka — no consumer group, all
partitions, from the beginning — so every worker holds the complete picture (the
dashboard, list endpoints and ``grid_cases_open`` need all streets, not only the
partitions this worker owns). New events and alerts are fanned out to live subscribers
(server-sent events) through bounded queues; a slow subscriber loses messages, never
blocks the read model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from grid.projection import Projection
from streams import topics as T
from streams.broker import bootstrap_of, client_security
from streams.health import ConsumerHealth
from streams.kafka_io import run_forever

log = logging.getLogger(__name__)

QUEUE_SIZE = 2000


class ReadModel:
    """Consumes the event log into a :class:`Projection`; publishes to subscribers."""

    def __init__(self, bootstrap: str, projection: Projection | None = None,
                 topics: tuple[str, ...] = (T.CASE_EVENTS, T.ALERTS),
                 pace: float = 0.05) -> None:
        self.bootstrap = bootstrap_of(bootstrap)
        self.projection = projection or Projection()
        self.topics = topics
        self.pace = pace  # seconds between fetches once caught up (when data keeps coming)
        self.subscribers: set[asyncio.Queue] = set()
        self.caught_up = asyncio.Event()  # set once the log read at startup is applied
        self.listeners: list[Any] = []  # cb(kind, message) after applying: "event" | "alert"
        self.errors = 0
        self._lag: dict[TopicPartition, int] = {}
        self.health = ConsumerHealth("read_model", lag=lambda: sum(self._lag.values()))

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self.subscribers.discard(q)

    def _publish(self, item: dict[str, Any]) -> None:
        for q in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(item)

    def handle(self, topic: str, raw: bytes | None) -> None:
        """Apply one message (bad JSON is counted and skipped)."""
        if raw is None:
            return
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.errors += 1
            return
        if not isinstance(msg, dict):
            self.errors += 1
            return
        try:
            if topic == T.ALERTS:
                if self.projection.apply_alert(msg):
                    self._notify("alert", msg)
            elif self.projection.apply(msg):
                self._notify("event", msg)
        except (KeyError, TypeError, ValueError):
            self.errors += 1
            log.warning("read model skipped a malformed %s message", topic, exc_info=True)

    def _notify(self, kind: str, msg: dict[str, Any]) -> None:
        for cb in self.listeners:
            cb(kind, msg)
        if self.subscribers:
            self._publish({"kind": kind, "data": msg})

    async def run(self) -> None:
        """Read forever (cancel to stop); a failed consumer is replaced after 2 s."""
        await run_forever(self._consume, "read model consumer", health=self.health)

    async def _consume(self) -> None:
        cons = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", metadata_max_age_ms=5000, **client_security())
        await cons.start()
        try:
            parts = await self._partitions(cons)
            cons.assign(parts)
            # a restarted consumer reads from the beginning again; the projection skips
            # what it has seen (idempotent by event id)
            await cons.seek_to_beginning(*parts)
            ends = await cons.end_offsets(parts)
            self.health.started()
            while True:
                self.health.beat()
                batch = await cons.getmany(timeout_ms=500, max_records=2000)
                n = 0
                for tp, records in batch.items():
                    for r in records:
                        self.handle(tp.topic, r.value)
                        n += 1
                        if n % 250 == 0:
                            await asyncio.sleep(0)  # let the engine's batches in between
                    # no commits (it reads from the start): what it has applied is progress
                    position = records[-1].offset + 1
                    self.health.committed({tp: position})
                    self._lag[tp] = max((cons.highwater(tp) or position) - position, 0)
                if batch and self.caught_up.is_set() and self.pace:
                    # the dashboard needs no fresher picture; fewer, larger fetches spare the
                    # broker (and the stages that share this event loop)
                    await asyncio.sleep(self.pace)
                if not self.caught_up.is_set():
                    positions = [await cons.position(tp) for tp in ends]
                    if all(p >= e for p, e in zip(positions, ends.values(), strict=True)):
                        self.caught_up.set()
                        log.info("read model caught up: %d cases", len(self.projection.cases))
        finally:
            await cons.stop()

    async def _partitions(self, cons: AIOKafkaConsumer) -> list[TopicPartition]:
        """All partitions of the topics, waiting until the broker knows them."""
        while True:
            await cons.topics()  # refreshes cluster metadata
            got = {t: cons.partitions_for_topic(t) for t in self.topics}
            if all(got.values()):
                return [TopicPartition(t, p) for t, ps in got.items() for p in sorted(ps)]
            await asyncio.sleep(1)


def attach_read_model(grid_app: Any) -> ReadModel:
    """Give ``grid_app`` a ``projection`` and a ``read_model`` fed by a background task."""
    from grid.projection import Projection

    tax = grid_app.engine.taxonomy

    def category_of(code: str) -> str | None:
        t = tax.types.get(code)
        return t.category if t else None

    keep = int(os.environ.get("GRID_READ_MODEL_DETAIL", "20000"))
    projection = Projection(category_of=category_of, keep_detail=keep)
    rm = ReadModel(grid_app.settings.broker, projection)
    grid_app.projection = projection
    grid_app.read_model = rm

    @grid_app.app.task
    async def read_model_task() -> None:
        await rm.run()

    return rm
