"""The Faust app: topics, tables, agents and the escalation timer.

::

    grid.reports.v1 ─ intake (streams.intake: aiokafka consumer, group <app id>-intake;
                      batched: parse, locate_many, classify, decide)
        ├─▶ grid.reports.dlq.v1   (rejected, with reason)
        ├─▶ case handled inline   (this worker holds the street's partition)
        └─▶ grid.located.v1       (key: street; another worker holds it, or a rebalance runs)
    grid.located.v1 + grid.commands.v1 (key: street) ─ cases (tables partitioned by street)
        ─▶ grid.case-events.v1, grid.dispatch.v1, grid.alerts.v1
    timer (every tick): open cases past their warning time ─▶ grid.commands.v1

All messages are JSON bytes; the domain work is in :mod:`grid.service`.

Throughput design (see docs/BENCHMARKS.md): intake and the cases agent take batches; all
output, and the changelog entries of the two tables, go through one plain aiokafka producer
(:class:`Outbox`, batched by a background pump, ``acks=all``) instead of Faust's per-message
producer buffer. At-least-once holds: offsets are committed only after the output of the
input they cover is acknowledged — Faust flushes the outbox before every offset commit (and
on partition revocation) because :meth:`Outbox.attach` wraps ``app.producer.flush``, and the
intake consumer flushes it before its own commits. A failed delivery stops the worker before
the commit, so the input is processed again after restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from datetime import datetime
from typing import Any

import faust
import orjson
from aiokafka.partitioner import murmur2
from faust.streams import _current_event

from grid.clock import Clock
from grid.intake import report_id_of
from grid.models import Command, partition_key_of
from grid.service import DeadLetter, Effects, Engine, Located, dead_letter, dumps
from streams import topics as T
from streams.broker import bootstrap_of, client_security, faust_credentials, on_tansu
from streams.faust_patches import fix_rebalance_loss, set_fetch_wait
from streams.health import CommittedWatch
from streams.settings import Settings
from streams.state import CaseStore

log = logging.getLogger(__name__)

RAW = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (murmur2)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


# A record batch (one partition) stays under Apache Kafka's default message.max.bytes
# (1 MiB + 12): the broker refuses a larger batch whole (MessageSizeTooLarge), which stopped
# workers under load with the 4 MiB batches tuned on Tansu.
BATCH_BYTES = 1_000_000


class Outbox:
    """The agents' output: queued while handling a batch, produced by a background pump.

    :meth:`kick` wakes the pump, which hands everything queued to the producer as one
    record batch per topic partition. While the broker is busy with one round, the next
    batch's output queues up, so batches grow with load (group commit) and the agents never
    wait for the broker; :meth:`flush` (before every offset commit) drains what is queued
    and waits for every acknowledgement. Past ``max_pending`` queued messages, :meth:`kick`
    waits for the pump (back-pressure).
    """

    def __init__(self, bootstrap: str, linger_ms: int = 0, max_pending: int = 50_000) -> None:
        self.bootstrap = bootstrap
        self.linger_ms = linger_ms
        self.max_pending = max_pending
        self.producer: Any = None
        self._pending: list[tuple[str, bytes | None, bytes, int | None]] = []
        self._futures: list[tuple[asyncio.Future, str, int, list]] = []  # ack, where, what
        self._partitions: dict[str, int] = {}
        self._rr = 0
        self._lock = asyncio.Lock()
        self._drain_lock = asyncio.Lock()  # one drain at a time: the pump's or flush's
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._pump: asyncio.Task | None = None

    def send(self, topic: str, key: bytes | None, value: bytes,
             partition: int | None = None) -> None:
        self._pending.append((topic, key, value, partition))

    async def kick(self) -> None:
        """Let the pump produce what is queued (waits only under back-pressure)."""
        if len(self._pending) > self.max_pending:
            await self.drain()
        elif self._pending:
            self._wake.set()

    async def _run_pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:  # flush() retries what failed, or stops the worker
                log.exception("outbox pump: drain failed")

    async def start(self, app: Any) -> None:
        if self.producer is not None:
            return
        async with self._lock:
            if self.producer is not None:
                return
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", linger_ms=self.linger_ms,
                max_batch_size=BATCH_BYTES, request_timeout_ms=120_000,
                max_request_size=8 << 20, **client_security())
            await producer.start()
            self.producer = producer
            self.attach(app)
            self._pump = asyncio.ensure_future(self._run_pump())

    def attach(self, app: Any) -> None:
        """Make Faust flush this producer before it commits offsets or gives up partitions."""
        fprod = app.producer
        faust_flush = fprod.flush

        async def flush() -> None:
            await self.flush()
            await faust_flush()

        fprod.flush = flush

    async def drain(self) -> None:
        """Hand every queued message to the producer, one record batch per topic partition
        (keyed messages go where Kafka's default partitioner would put them)."""
        async with self._drain_lock:
            await self._drain()

    async def _drain(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        groups: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
        try:
            for topic, key, value, partition in pending:
                if partition is None:
                    n = self._partitions.get(topic) or await self._count(topic)
                    if key:
                        partition = (murmur2(key) & 0x7FFFFFFF) % n
                    else:
                        self._rr += 1
                        partition = self._rr % n
                groups.setdefault((topic, partition), []).append((key, value))
        except BaseException:
            self._pending[:0] = pending
            raise
        items = list(groups.items())
        for i, ((topic, partition), records) in enumerate(items):
            try:
                await self._send_records(topic, partition, records)
            except BaseException:  # not handed over: queued again (flush retries them)
                self._pending[:0] = [(t, k, v, p) for (t, p), recs in items[i:]
                                     for k, v in recs]
                raise

    async def _send_records(self, topic: str, partition: int,
                            records: list[tuple[bytes | None, bytes]]) -> None:
        prod = self.producer
        batch, sent = prod.create_batch(), []
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                await self._send(batch, topic, partition, sent)
                batch, sent = prod.create_batch(), []
                if batch.append(key=key, value=value, timestamp=None) is None:
                    log.error("message of %d bytes to %s exceeds the batch size: dropped",
                              len(value), topic)
                    continue
            sent.append((key, value))
        if sent:
            await self._send(batch, topic, partition, sent)

    async def _send(self, batch: Any, topic: str, partition: int,
                    records: list[tuple[bytes | None, bytes]]) -> None:
        fut = await self.producer.send_batch(batch, topic, partition=partition)
        # always the attribute, never a local alias: flush() may swap the list meanwhile
        self._futures.append((fut, topic, partition, records))

    async def _count(self, topic: str) -> int:
        n = len(await self.producer.partitions_for(topic))
        self._partitions[topic] = n
        return n

    async def flush(self, attempts: int = 5) -> None:
        """Wait until everything queued so far is acknowledged (before an offset commit).

        A batch the broker refused (after aiokafka's own retries) is sent again, a few times
        with backoff; if it still fails the process exits before the commit, so the input is
        read again after a restart (at-least-once)."""
        if self.producer is None:
            return
        async with self._flush_lock:  # flushes in turn: each sees its own snapshot through
            await self._flush(attempts)

    async def _flush(self, attempts: int) -> None:
        for attempt in range(attempts):
            await self.drain()
            # what was queued before this call is now handed over: wait for exactly that
            # (output queued meanwhile belongs to input the caller does not commit)
            sent, self._futures = self._futures, []
            if sent:
                await asyncio.wait([f for f, *_ in sent])
            failed = [(err, t, p, recs) for f, t, p, recs in sent
                      if (err := _failure(f)) is not None]
            if not failed:
                return
            log.warning("delivery failed for %d batch(es) (%s); retry %d of %d",
                        len(failed), failed[0][0], attempt + 1, attempts - 1)
            if attempt + 1 == attempts:
                break
            await asyncio.sleep(0.5 * 2**attempt)
            self._partitions.clear()
            for _err, topic, partition, recs in failed:
                for key, value in recs:
                    self._pending.append((topic, key, value, partition))
        log.critical("delivery failed (%s): stopping before offsets are committed", failed[0][0])
        os._exit(70)  # at-least-once: the input is read again after restart


def _failure(fut: asyncio.Future) -> BaseException | None:
    if fut.cancelled():
        return asyncio.CancelledError()
    return fut.exception()


def _report_id_in(raw: bytes) -> str | None:
    """The report id of a located message, if it can be read."""
    try:
        return str(orjson.loads(raw)["report"]["report_id"])
    except Exception:
        return None


class _PartitionMark:
    """Stands in for the current event where a store only asks for its partition."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, partition: int) -> None:
        self.message = type("Msg", (), {"partition": partition})()


_MARKS: dict[int, _PartitionMark] = {}


def _at_partition(partition: int) -> _PartitionMark:
    return _MARKS.setdefault(partition, _PartitionMark(partition))


@contextlib.contextmanager
def unacked_on_error(events: list[Any]):
    """If handling a taken batch fails or is cancelled (worker stopping, rebalance), keep
    its events from being acknowledged: Faust's ``take`` acks a batch when the generator
    closes, which would commit offsets of input whose output was never produced."""
    try:
        yield
    except BaseException:
        for e in events:
            e.message.acked = True  # never reaches the consumer's ack: not committed
        raise


POISON_TRIES = 3  # a report the engine fails on alone this often is dead-lettered


class GridApp:
    """Builds and holds the Faust app for one worker."""

    def __init__(self, settings: Settings, engine: Engine | None = None,
                 clock: Clock | None = None) -> None:
        self.settings = s = settings
        self.engine = engine or Engine.load(s.geodata, s.rules, s.taxonomy_extra)
        self.clock = clock or Clock.from_spec(s.clock)
        if on_tansu():  # Tansu only: it holds an empty fetch for Faust's whole 1.5 s wait
            set_fetch_wait(s.fetch_wait_ms)
        fix_rebalance_loss()
        fast = dict(broker_rebalance_timeout=3, broker_session_timeout=6,
                    broker_heartbeat_interval=1) if s.fast_group else {}
        self.app = app = faust.App(
            s.app_id, broker=s.broker, store=s.store, datadir=s.data_dir,
            topic_partitions=s.partitions, topic_replication_factor=s.replication,
            table_standby_replicas=0, consumer_auto_offset_reset="earliest",
            web_enabled=True, web_port=s.web_port, web_host=s.web_host,
            web_bind=s.web_host, producer_acks=-1, broker_commit_interval=1.0,
            topic_disable_leader=True, stream_buffer_maxsize=8192,
            broker_credentials=faust_credentials(), **fast,
        )
        self.outbox = Outbox(bootstrap_of(s.broker))
        logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.root.level))
        self._partition: int | None = None  # source partition of the event being handled
        n = s.partitions
        self.reports = app.topic(T.REPORTS, partitions=n, **RAW)
        self.located = app.topic(T.LOCATED, partitions=n, **RAW)
        self.commands = app.topic(T.COMMANDS, partitions=n, **RAW)
        self.case_events = app.topic(T.CASE_EVENTS, partitions=n, **RAW)
        self.dispatch = app.topic(T.DISPATCH, partitions=n, **RAW)
        self.alerts = app.topic(T.ALERTS, partitions=n, **RAW)
        self.dlq = app.topic(T.DLQ, partitions=n, **RAW)
        self.cases_table = self._raw_table("cases")
        self.report_table = self._raw_table("report-index")
        self.store = CaseStore(self.cases_table, self.report_table, self.owns_street,
                               warn_share=self._warn_share(), writer=self._write_table)
        app.on_rebalance_complete.connect(self._on_rebalance)
        self.listeners: list[Any] = []  # callbacks(fx) for dashboards/metrics
        self._escalations_sent: set[str] = set()  # command ids the timer already produced
        from streams.intake import IntakeConsumer

        self.intake = IntakeConsumer(self)  # grid.reports.v1: plain aiokafka, own group
        app.task(self.intake.run)
        self.cases_health = CommittedWatch(
            "cases", committed=lambda: self.cases_offsets()[0],
            lag=lambda: sum(self.cases_lag().values()), stuck_after=s.stuck_seconds)
        app.agent(app.topic(T.LOCATED, T.COMMANDS, partitions=n, **RAW),
                  name="cases")(self._cases)
        app.timer(s.tick_seconds, name="escalation")(self._tick)

    def _raw_table(self, name: str) -> Any:
        """A changelog-backed table of bytes → bytes (we serialise with orjson ourselves)."""
        table = self.app.Table(name, partitions=self.settings.partitions, key_type=bytes,
                               value_type=bytes)
        table.key_serializer = table.value_serializer = "raw"
        return table

    def _write_table(self, table: str, key: bytes, value: bytes) -> None:
        """Write a table entry: the local store now, the changelog entry via the outbox
        (same partition as the source event, as Faust does)."""
        t = self.cases_table if table == "cases" else self.report_table
        if self._partition is not None and hasattr(t.data, "_db_for_partition"):
            # a partitioned store (RocksDB) files the key under the current event's
            # partition: for a report handled inline that is the street's, not the report's
            token = _current_event.set(weakref.ref(_at_partition(self._partition)))
            try:
                t.data[key] = value
            finally:
                _current_event.reset(token)
        else:
            t.data[key] = value
        self.outbox.send(t.changelog_topic.get_topic_name(), key, value, self._partition)

    def _warn_share(self) -> float:
        return float(self.engine.ruleset.escalation.warn_at)

    # -- partition ownership ------------------------------------------------------------

    def owns_street(self, street: str) -> bool:
        mine = self._assigned_partitions()
        return mine is None or partition_of(street, self.settings.partitions) in mine

    def _assigned_partitions(self) -> frozenset[int] | None:
        """Partitions of the case state (located/commands) assigned to this worker; None
        before the first assignment."""
        try:
            actives = self.app.assignor.assigned_actives()
        except Exception:  # before the first assignment
            return None
        return frozenset(tp.partition for tp in actives if tp.topic == T.LOCATED)

    def _owned_partitions(self) -> frozenset[int] | None:
        """The assigned partitions whose tables are ready to use; None while a rebalance or
        table recovery runs, or once the worker is stopping (its assignment is stale then,
        another worker may already hold the streets): intake forwards instead."""
        app = self.app
        if app.rebalancing or app.should_stop or not app.tables.actives_ready:
            return None
        return self._assigned_partitions()

    # -- health ------------------------------------------------------------------------

    def cases_offsets(self) -> tuple[dict[Any, int], dict[Any, int]]:
        """(committed, end) offsets of the cases agent's assigned partitions (Faust's)."""
        mon = getattr(self.app, "monitor", None)
        ends = dict(getattr(mon, "tp_end_offsets", None) or {})
        committed = dict(getattr(mon, "tp_committed_offsets", None) or {})
        try:
            assigned = set(self.app.consumer.assignment())
        except Exception:  # before the consumer exists
            assigned = set()
        return ({tp: committed.get(tp, 0) for tp in assigned},
                {tp: ends[tp] for tp in assigned if tp in ends})

    def cases_lag(self) -> dict[Any, int]:
        committed, ends = self.cases_offsets()
        return {tp: max(end - committed.get(tp, 0), 0) for tp, end in ends.items()}

    def consumers(self) -> dict[str, dict[str, Any]]:
        """Each consumer's state, lag and age of its oldest waiting input."""
        out = {"intake": self.intake.health.status(), "cases": self.cases_health.status()}
        if (pr := getattr(self, "projector", None)) is not None:
            out["projector"] = pr.health.status()
        if (feed := getattr(self, "live_feed", None)) is not None:
            out["live_feed"] = feed.health.status()
        return out

    def not_ready(self) -> list[str]:
        """Why this worker cannot serve yet, in words (empty when it can)."""
        why = []
        if self.intake.health.state != "running":
            why.append(f"the intake consumer is {self.intake.health.state}")
        app = self.app
        if app.rebalancing or not app.tables.actives_ready:
            why.append("the consumer group is rebalancing or the case tables are recovering")
        pr = getattr(self, "projector", None)
        if pr is not None and not pr.caught_up.is_set():
            why.append(f"the projector is still storing the event log present at start "
                       f"({pr.applied} events so far)")
        return why

    async def _on_rebalance(self, *args: Any, **kw: Any) -> None:
        self.store.invalidate()
        self._escalations_sent.clear()

    # -- agents --------------------------------------------------------------------------

    async def intake_batch(self, batch: list[bytes | None],
                           topics: list[str] | None = None) -> None:
        """Parse, locate, classify and decide a batch of raw reports; handle each case here
        when this worker holds its street's partition, else forward it to the located topic;
        hand all output to the outbox."""
        out = self.outbox
        now = self.clock.now()
        channels = [T.INTAKE_CHANNELS.get(t) for t in topics] if topics else None
        try:
            located, dead = self.engine.intake(batch, now, channels)
        except Exception:  # never stop on one bad record: find it, handle the others
            log.exception("intake batch of %d failed; handling its reports one by one",
                          len(batch))
            located, dead = self._intake_one_by_one(batch, now, channels)
        for d in dead:
            out.send(T.DLQ, (d.report_id or "").encode() or None, dumps(d))
        for cb in self.listeners:
            cb("intake", located=located, dead=dead)
        mine = self._owned_partitions() or frozenset()
        n = self.settings.partitions
        _current_event.set(None)  # table reads below are not about the intake event
        for msg in located:
            street = msg.placement.partition_key
            p = partition_of(street, n)
            if p not in mine:  # another worker holds this street's case state
                out.send(T.LOCATED, street.encode(), dumps(msg), p)
                continue
            # this worker holds the street's partition: handle the case here, saving the
            # located hop (serialise, produce, consume, re-validate)
            self._partition = p
            try:
                fx = self.store.on_located(self.engine, msg, now)
            except Exception as err:
                self._handling_failed(dumps(msg), err, now, msg.report.rid)
                continue
            finally:
                self._partition = None
            self._publish(fx)
        await out.kick()

    def _intake_one_by_one(self, batch: list[bytes | None], now: datetime,
                           channels: list[Any] | None = None,
                           ) -> tuple[list[Located], list[DeadLetter]]:
        """Each report of a failed batch alone, up to ``POISON_TRIES`` times; a report the
        engine still fails on goes to the DLQ (``internal_error``), the others go on."""
        located: list[Located] = []
        dead: list[DeadLetter] = []
        for i, raw in enumerate(batch):
            for attempt in range(1, POISON_TRIES + 1):
                try:
                    ok, bad = self.engine.intake([raw], now,
                                                 [channels[i]] if channels else None)
                except Exception as err:
                    if attempt < POISON_TRIES:
                        continue
                    log.error("report %s failed %d times: %s", report_id_of(raw) or "?",
                              attempt, err)
                    dead.append(dead_letter(
                        raw, "internal_error", f"the engine failed on this report {attempt} "
                        f"times: {type(err).__name__}: {err}", now, report_id=report_id_of(raw)))
                else:
                    located += ok
                    dead += bad
                break
        return located, dead

    async def _cases(self, stream: Any) -> None:
        s = self.settings
        out = self.outbox
        await out.start(self.app)
        async for events in stream.take_events(s.batch_size, within=s.batch_within):
            with unacked_on_error(events):
                await self._cases_batch(events)

    async def _cases_batch(self, events: list[Any]) -> None:
        """Handle a batch of located reports and commands.

        A report or command already in the tables (a Kafka redelivery after a crash or a
        rebalance, or a second copy from the source) emits again the output it caused the
        first time, with the same ids: that output may not have been acknowledged before
        the crash, and consumers dedupe by event/work order id.
        """
        now = self.clock.now()
        for event in events:
            _current_event.set(weakref.ref(event))  # table stores look it up
            m = event.message
            self._partition = m.partition
            try:
                fx = self._handle(m.topic, event.value, now)
            except Exception as err:
                rid = _report_id_in(event.value) if m.topic == T.LOCATED else None
                self._handling_failed(event.value, err, now, rid)
                continue
            self._publish(fx)
        self._partition = None
        await self.outbox.kick()

    def _handling_failed(self, raw: bytes, err: Exception, now: datetime,
                         report_id: str | None = None) -> None:
        """A report or command the engine could not handle goes to the DLQ with reason
        ``internal_error`` (its offset is committed: it must not vanish), and the worker
        goes on with the rest of the batch."""
        log.exception("case handling failed (report %s)", report_id or "?")
        self.outbox.send(T.DLQ, report_id.encode() if report_id else None, dumps(dead_letter(
            raw, "internal_error", f"case handling failed: {type(err).__name__}: {err}", now,
            report_id=report_id)))

    def _handle(self, topic: str, raw: bytes, now: datetime) -> Effects:
        if topic == T.LOCATED:
            return self.store.on_located(self.engine, Located.model_validate_json(raw), now)
        try:
            cmd = Command.model_validate_json(raw)
        except ValueError as err:
            log.warning("invalid command dropped: %s", err)
            self.outbox.send(T.DLQ, None, dumps(dead_letter(
                raw, "invalid_command", str(err).split("\n")[0], now)))
            return Effects()
        fx = self.engine.on_command(cmd, self.store.get(cmd.case_id), now)
        if fx.case is not None and not fx.duplicate_delivery and any(
                e.seq > 0 for e in fx.events):
            self.store.put(fx.case)
        return fx

    def _publish(self, fx: Effects) -> None:
        out = self.outbox
        if fx.conflict and fx.report is not None:
            out.send(T.DLQ, fx.report.rid.encode(), dumps(dead_letter(
                dumps(fx.report), "duplicate_conflict", fx.conflict, self.clock.now(),
                report_id=fx.report.rid)))
        for e in fx.events:
            out.send(T.CASE_EVENTS, e.case_id.encode(), dumps(e))
        for wo in fx.work_orders:
            out.send(T.DISPATCH, (wo.unit or wo.department).encode(), dumps(wo))
        for r in fx.replies:
            out.send(T.HOTLINE_REPLIES, r.ticket_no.encode(), dumps(r))
        for a in fx.alerts:
            out.send(T.ALERTS, (a.district or "").encode(), dumps(a))
        for cb in self.listeners:
            cb("effects", fx=fx)

    async def _tick(self) -> None:
        now = self.clock.now()
        for entry in list(self.store.due_for_check(now)):
            case = self.store.get(entry.case_id)
            if case is None or not case.is_open:
                continue
            for cmd in self.engine.escalations(case, now):
                if cmd.command_id in self._escalations_sent:
                    continue
                self._escalations_sent.add(cmd.command_id)
                self.outbox.send(T.COMMANDS, partition_key_of(cmd.case_id).encode(), dumps(cmd))
        if self.outbox.producer is not None:
            await self.outbox.kick()

    # -- helpers for adapters (CLI, web) ----------------------------------------------------

    def command_bytes(self, cmd: Command) -> tuple[bytes, bytes]:
        return partition_key_of(cmd.case_id).encode(), orjson.dumps(
            cmd.model_dump(mode="json", by_alias=True, exclude_none=True))


def create_app(settings: Settings | None = None, **kw: Any) -> GridApp:
    return GridApp(settings or Settings.from_env(), **kw)
