"""The intake stage: ``grid.reports.v1`` read with a plain aiokafka consumer.

Intake is stateless (parse, locate, classify, decide), so it does not need Faust's stream
machinery: a consumer in its own group (``<app id>-intake``) takes batches straight from the
fetcher and hands them to :meth:`streams.app.GridApp.intake_batch`, which handles the case
inline when this worker holds the street's partition and forwards to ``grid.located.v1``
otherwise. Compared with a Faust agent this removes the consumer thread hand-off, the
per-event ``Event`` objects and the stream buffer — most of the time a report used to wait
before its batch started (docs/BENCHMARKS.md).

At-least-once, as everywhere in the engine: offsets are committed only after the output
of the batches they cover is acknowledged (:meth:`streams.app.Outbox.flush`), every
``commit_interval`` seconds and before partitions are given up in a rebalance. A report
read again after a crash is recognised by its id (the ``report-index`` table) and re-emits
its output with the same ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from streams import topics as T
from streams.broker import bootstrap_of, client_security
from streams.health import ConsumerHealth
from streams.kafka_io import run_forever

log = logging.getLogger(__name__)


class IntakeConsumer(ConsumerRebalanceListener):
    """Reads reports in batches, runs them through ``grid_app``, commits what is delivered."""

    def __init__(self, grid_app: Any, commit_interval: float = 1.0) -> None:
        s = grid_app.settings
        self.grid_app = grid_app
        self.group_id = f"{s.app_id}-intake"
        self.commit_interval = commit_interval
        self.consumer: AIOKafkaConsumer | None = None
        self.highwater: dict[TopicPartition, int] = {}  # for grid_consumer_lag
        self.committed: dict[TopicPartition, int] = {}
        self._processed: dict[TopicPartition, int] = {}  # next offsets, not yet committed
        self._lock = asyncio.Lock()  # held while a batch is handled
        self._committing: asyncio.Future | None = None
        self.health = ConsumerHealth("intake", stuck_after=s.stuck_seconds,
                                     lag=lambda: sum(self.lag().values()))

    def _new_consumer(self) -> AIOKafkaConsumer:
        s = self.grid_app.settings
        fast = dict(session_timeout_ms=6000, heartbeat_interval_ms=1000,
                    rebalance_timeout_ms=3000) if s.fast_group else {}
        return AIOKafkaConsumer(
            bootstrap_servers=bootstrap_of(s.broker), group_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=s.fetch_wait_ms, max_partition_fetch_bytes=2 << 20,
            max_poll_records=s.batch_size, **fast, **client_security())

    async def run(self) -> None:
        """Consume forever (cancel to stop); a failed consumer is replaced after 2 s."""
        await run_forever(self._consume, "intake consumer", health=self.health)

    async def _consume(self) -> None:
        g = self.grid_app
        await g.outbox.start(g.app)
        cons = self.consumer = self._new_consumer()
        cons.subscribe(list(T.INTAKE_CHANNELS), listener=self)
        await cons.start()
        self.health.started()
        last_commit = time.monotonic()
        try:
            while True:
                self.health.beat()
                batch = await cons.getmany(timeout_ms=200,
                                           max_records=g.settings.batch_size)
                for tp, records in batch.items():
                    self.health.fetched(tp, records[0].offset, records[0].timestamp)
                if batch:
                    async with self._lock:
                        await g.intake_batch([r.value for rs in batch.values() for r in rs],
                                             [tp.topic for tp, rs in batch.items() for _ in rs])
                        for tp, records in batch.items():
                            self._processed[tp] = records[-1].offset + 1
                            if (hw := cons.highwater(tp)) is not None:
                                self.highwater[tp] = hw
                if (time.monotonic() - last_commit >= self.commit_interval and
                        (self._committing is None or self._committing.done())):
                    # in the background: reading goes on while the output is acknowledged
                    self._committing = asyncio.ensure_future(self._commit(dict(self._processed)))
                    last_commit = time.monotonic()
        finally:
            with contextlib.suppress(Exception):
                async with self._lock:
                    await self._commit_now()
            self.consumer = None
            await cons.stop()

    async def _commit_now(self) -> None:
        """Commit everything handled so far (after any commit already under way)."""
        if self._committing is not None:
            with contextlib.suppress(Exception):
                await self._committing
        await self._commit(dict(self._processed))

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Wait for the output of the reports up to ``offsets``, then commit them."""
        if not offsets or self.consumer is None:
            return
        await self.grid_app.outbox.flush()  # exits the process if delivery fails for good
        try:
            await self.consumer.commit(offsets)
        except KafkaError as err:  # e.g. a rebalance in between: the input is read again
            log.warning("intake commit failed (%s); those reports will be read again", err)
            return
        self.committed.update(offsets)
        self.health.committed(offsets)
        for tp, off in offsets.items():
            if self._processed.get(tp) == off:
                del self._processed[tp]

    # -- rebalance listener ----------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:  # the batch in hand finishes first
            await self._commit_now()
        for tp in revoked:
            self._processed.pop(tp, None)
            self.highwater.pop(tp, None)
        self.health.revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("intake partitions: %s", sorted(tp.partition for tp in assigned))
        if self.consumer is not None:
            for tp in assigned:
                with contextlib.suppress(KafkaError):
                    self.committed[tp] = await self.consumer.committed(tp) or 0
            self.health.committed({tp: self.committed.get(tp, 0) for tp in assigned})

    def lag(self) -> dict[TopicPartition, int]:
        """End offset (as of the last fetch) minus committed offset, per assigned partition."""
        cons = self.consumer
        if cons is None:
            return {}
        return {tp: max(self.highwater.get(tp, 0) - self.committed.get(tp, 0), 0)
                for tp in cons.assignment()}
