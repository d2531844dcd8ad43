"""The case loop: ``grid.located.v1`` + ``grid.commands.v1`` → case events, work orders,
hotline replies and alerts, one Kafka transaction per street partition and batch.

Both input topics are keyed by street and have the same partition count; the range
assignor gives a worker partition *p* of both, so street partition *p* is one unit
(:mod:`streams.loop`) with its own case state: a :class:`streams.state.CaseStore` over two
dicts restored from the compacted changelog topics ``<app id>-cases-changelog`` (case id →
case JSON) and ``<app id>-report-index-changelog`` (report id → case id), partition *p*,
read committed to the end. Every state write goes into the same transaction as the output
and the input offsets, so state, output and offsets never disagree.

The escalation timer runs in the loop: every ``tick_seconds`` the open cases whose warning
time has come get the engine's escalation commands applied at once, in the partition's
transaction (no round trip through the commands topic), at most ``ESCALATIONS_PER_TICK`` per
partition and tick (the event loop also sends the group's heartbeats).

The intake is at-least-once (:mod:`streams.intake`): after a crash it sends some located
records again. Each carries its report's ``origin`` (report partition and offset); the store
keeps the highest origin handled per report partition (:meth:`CaseStore.handled_to`,
written in the batch's transaction), and a located record at or below it is dropped. The
intake writes each report partition's records to a located partition in order (an
idempotent producer), and a report goes to the same partition each time, so what is at or
below the mark was handled, even with two intake workers writing at once (one a zombie).
Rejected reports come the same way (header ``dead-letter``) and go to ``grid.reports.dlq.v1``
in the transaction: every DLQ entry exactly once.

A report or command already in the state (a second copy from its source) produces nothing
new on Apache Kafka: its first output was committed with the state. On the Tansu fallback
(at-least-once) the state is sent only after the rest of a batch's output is acknowledged
(:class:`streams.sinks.AtLeastOnceSink`), so a stored input's output is out; if it was its
case's latest input, the engine re-emits that output all the same (same ids, consumers
dedupe), an older one re-emits nothing (``grid.case/2`` keeps the latest input's events
only: :func:`grid.lifecycle.redelivered`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from grid.clock import Clock
from grid.models import Command, partition_key_of
from grid.service import Effects, Engine, Located, dead_letter, dumps
from streams import topics as T
from streams.broker import client_security
from streams.kafka_io import stop_client
from streams.loop import Done, Records, UnitLoop
from streams.settings import Settings
from streams.sinks import Out, partition_of
from streams.state import CaseStore
from streams.topics import origin_of

log = logging.getLogger(__name__)

Listener = Callable[..., None]
ESCALATIONS_PER_TICK = 200  # per partition: a backlog of due cases is worked off over ticks


def changelog_topics(app_id: str) -> tuple[str, str]:
    """(cases, report index) changelog topic names of an app."""
    return f"{app_id}-cases-changelog", f"{app_id}-report-index-changelog"


def _reason_of(dead_letter: bytes) -> str:
    try:
        return str(orjson.loads(dead_letter)["reason"])
    except Exception:
        return "unknown"


def _report_id_in(raw: bytes) -> str | None:
    try:
        return str(orjson.loads(raw)["report"]["report_id"])
    except Exception:
        return None


class CaseLoop(UnitLoop):
    """Case state per street partition; see the module doc."""

    name = "cases"
    topics = (T.LOCATED, T.COMMANDS)
    assignors = (RangePartitionAssignor,)  # partition p of both topics to one worker

    def __init__(self, settings: Settings, engine: Engine, clock: Clock,
                 listeners: list[Listener]) -> None:
        super().__init__(settings, "cases")
        self.engine = engine
        self.clock = clock
        self.listeners = listeners
        self.cases_log, self.index_log = changelog_topics(settings.app_id)
        self.stores: dict[int, CaseStore] = {}
        self._out: list[Out] = []  # the unit's output while it is handled
        self._escalated: dict[int, set[str]] = {}  # escalation command ids applied or refused
        self._next_tick = 0.0

    def unit_of(self, tp: TopicPartition) -> str:
        return str(tp.partition)

    # -- state --------------------------------------------------------------------------------

    def _new_store(self, p: int) -> CaseStore:
        def write(table: str, key: bytes, value: bytes) -> None:
            (cases if table == "cases" else index)[key] = value
            topic = self.cases_log if table == "cases" else self.index_log
            self._out.append(Out(topic, key, value, p))

        cases: dict[bytes, bytes] = {}
        index: dict[bytes, bytes] = {}
        return CaseStore(cases, index, warn_share=float(self.engine.ruleset.escalation.warn_at),
                         writer=write)

    async def assigned(self, new_units: list[str]) -> None:
        parts = [int(u) for u in new_units]
        stores = {p: self._new_store(p) for p in parts}
        if parts:
            await self._restore(stores)
        self.stores.update(stores)

    def released(self, units: list[str]) -> None:
        for u in units:
            self.stores.pop(int(u), None)
            self._escalated.pop(int(u), None)

    async def _restore(self, stores: dict[int, CaseStore]) -> None:
        """Read the changelogs of ``stores``' partitions (committed records) to their end."""
        tps = {TopicPartition(t, p): (s.cases if t == self.cases_log else s.report_index)
               for p, s in stores.items() for t in (self.cases_log, self.index_log)}
        cons = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                isolation_level="read_committed", group_id=None,
                                max_partition_fetch_bytes=4 << 20, **client_security())
        await cons.start()
        try:
            cons.assign(list(tps))
            await cons.seek_to_beginning(*tps)
            end = await cons.end_offsets(list(tps))
            n, t0 = 0, time.monotonic()
            waiting = {tp for tp in tps if end[tp] > 0}
            while waiting:
                got = await cons.getmany(*waiting, timeout_ms=500, max_records=10_000)
                for tp, recs in got.items():
                    table = tps[tp]
                    for r in recs:
                        if r.value is None:
                            table.pop(r.key, None)
                        else:
                            table[r.key] = r.value
                    n += len(recs)
                for tp in list(waiting):
                    if await cons.position(tp) >= end[tp]:
                        waiting.discard(tp)
        finally:
            await stop_client(cons)
        for s in stores.values():  # decoding every case: off the event loop (heartbeats)
            await asyncio.to_thread(s.rebuild)
        log.info("cases: restored %d changelog records of partitions %s in %.2f s", n,
                 sorted(stores), time.monotonic() - t0)

    def store_for(self, case_id: str) -> CaseStore | None:
        """The store holding ``case_id``'s street, when this worker holds it."""
        return self.stores.get(partition_of(partition_key_of(case_id),
                                            self.settings.partitions))

    # -- handling -----------------------------------------------------------------------------

    def handle(self, unit: str, records: Records) -> tuple[list[Out], Done | None]:
        store = self.stores[int(unit)]
        out: list[Out] = []
        self._out = out
        now = self.clock.now()
        effects: list[Effects] = []
        rejected: list[bytes] = []
        handled: dict[str, int] = {}  # report partition -> highest origin handled (batch)
        for r in records:
            if r.topic == T.LOCATED:
                origin = origin_of(r.headers)
                if origin is not None:
                    src, off = origin
                    last = handled[src] if src in handled else store.handled_to(src)
                    if last is not None and off <= last:
                        continue  # the intake sent it again (at-least-once): handled before
                    handled[src] = off
                if T.DEAD_LETTER in r.headers:
                    out.append(Out(T.DLQ, r.key, r.value))
                    rejected.append(r.value)
                    continue
            try:
                fx = self._handle(store, r.topic, r.value, now)
            except Exception as err:
                rid = _report_id_in(r.value) if r.topic == T.LOCATED else None
                self._failed(r.value, err, now, rid)
                continue
            self._publish(fx, now)
            effects.append(fx)
        for src, off in handled.items():
            store.mark_handled(src, off)
        self._out = []
        return out, self._done(effects, rejected)

    def _done(self, effects: list[Effects], rejected: list[bytes] = ()) -> Done | None:
        if not (effects or rejected) or not self.listeners:
            return None

        def tell() -> None:
            if rejected:
                reasons = [_reason_of(v) for v in rejected]
                for cb in self.listeners:
                    cb("rejected", reasons=reasons)
            for fx in effects:
                for cb in self.listeners:
                    cb("effects", fx=fx)
        return tell

    def _handle(self, store: CaseStore, topic: str, raw: bytes | None, now: datetime
                ) -> Effects:
        if raw is None:
            raise ValueError("a record without a value")
        if topic == T.LOCATED:
            return store.on_located(self.engine, Located.model_validate_json(raw), now)
        try:
            cmd = Command.model_validate_json(raw)
        except ValueError as err:
            log.warning("invalid command dropped: %s", err)
            self._out.append(Out(T.DLQ, None, dumps(dead_letter(
                raw, "invalid_command", str(err).split("\n")[0], now))))
            return Effects()
        return self._command(store, cmd, now)

    def _command(self, store: CaseStore, cmd: Command, now: datetime) -> Effects:
        fx = self.engine.on_command(cmd, store.get(cmd.case_id), now)
        if fx.case is not None and not fx.duplicate_delivery and any(
                e.seq > 0 for e in fx.events):
            store.put(fx.case)
        return fx

    def _failed(self, raw: bytes | None, err: Exception, now: datetime,
                report_id: str | None) -> None:
        """An input the engine could not handle goes to the DLQ (``internal_error``) and the
        loop goes on with the rest of the batch."""
        log.exception("case handling failed (report %s)", report_id or "?")
        self._out.append(Out(T.DLQ, report_id.encode() if report_id else None,
                             dumps(dead_letter(raw or b"", "internal_error",
                                               f"case handling failed: {type(err).__name__}: "
                                               f"{err}", now, report_id=report_id))))

    def _publish(self, fx: Effects, now: datetime) -> None:
        out = self._out
        if fx.conflict and fx.report is not None:
            out.append(Out(T.DLQ, fx.report.rid.encode(), dumps(dead_letter(
                dumps(fx.report), "duplicate_conflict", fx.conflict, now,
                report_id=fx.report.rid))))
        if fx.duplicate_delivery and self.exactly_once:
            return  # its first output was committed with the state
        for e in fx.events:
            out.append(Out(T.CASE_EVENTS, e.case_id.encode(), dumps(e)))
        for wo in fx.work_orders:
            out.append(Out(T.DISPATCH, (wo.unit or wo.department).encode(), dumps(wo)))
        for reply in fx.replies:
            out.append(Out(T.HOTLINE_REPLIES, reply.ticket_no.encode(), dumps(reply)))
        for a in fx.alerts:
            out.append(Out(T.ALERTS, (a.district or "").encode(), dumps(a)))

    # -- the escalation timer -------------------------------------------------------------------

    async def idle(self) -> None:
        if time.monotonic() < self._next_tick:
            return
        self._next_tick = time.monotonic() + self.settings.tick_seconds
        await asyncio.gather(*(self._escalate(p) for p in list(self.stores)))

    def escalate(self, p: int) -> tuple[list[Out], Done | None]:
        """Apply the escalations due in partition ``p`` now (warnings, supervision)."""
        store = self.stores[p]
        sent = self._escalated.setdefault(p, set())
        out: list[Out] = []
        self._out = out
        now = self.clock.now()
        effects = []
        applied = 0
        for entry in list(store.due_for_check(now)):
            if applied >= ESCALATIONS_PER_TICK:  # the rest next tick: the loop stays responsive
                break
            case = store.get(entry.case_id)
            if case is None or not case.is_open:
                continue
            for cmd in self.engine.escalations(case, now):
                if cmd.command_id in sent:  # applied, or refused: not again every tick
                    continue
                sent.add(cmd.command_id)
                fx = self._command(store, cmd, now)
                applied += 1
                if not fx.duplicate_delivery:
                    self._publish(fx, now)
                    effects.append(fx)
        self._out = []
        return out, self._done(effects)

    async def _escalate(self, p: int) -> None:
        async with self.unit_lock(str(p)):  # never inside a batch of the partition
            if p not in self.stores or str(p) not in self.units:
                return
            out, done = self.escalate(p)
            if out:
                await self.commit(str(p), out, {})
                if done is not None:
                    done()

    def open_count(self) -> int:
        return sum(s.open_count() for s in self.stores.values())

    def status(self) -> dict[str, Any]:
        return {"partitions": sorted(self.stores), "open_cases": self.open_count()}
