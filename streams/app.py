"""The Faust app: topics, tables, agents and the escalation timer.

::

    grid.reports.v1 ─ intake (batched: parse, locate_many, classify, decide)
        ├─▶ grid.reports.dlq.v1   (rejected, with reason)
        └─▶ grid.located.v1       (key: street)
    grid.located.v1 + grid.commands.v1 (key: street) ─ cases (tables partitioned by street)
        ─▶ grid.case-events.v1, grid.dispatch.v1, grid.alerts.v1
    timer (every tick): open cases past their warning time ─▶ grid.commands.v1

All messages are JSON bytes (orjson); the domain work is in :mod:`grid.service`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import faust
import orjson
from aiokafka.partitioner import murmur2

from grid.clock import Clock
from grid.models import Command, partition_key_of
from grid.service import Effects, Engine, Located, dead_letter, dumps
from streams import topics as T
from streams.settings import Settings
from streams.state import CaseStore

log = logging.getLogger(__name__)

RAW = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (murmur2)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class GridApp:
    """Builds and holds the Faust app for one worker."""

    def __init__(self, settings: Settings, engine: Engine | None = None,
                 clock: Clock | None = None) -> None:
        self.settings = s = settings
        self.engine = engine or Engine.load(s.geodata, s.rules, s.taxonomy_extra)
        self.clock = clock or Clock.from_spec(s.clock)
        fast = dict(broker_rebalance_timeout=3, broker_session_timeout=10,
                    broker_heartbeat_interval=1) if s.fast_group else {}
        self.app = app = faust.App(
            s.app_id, broker=s.broker, store=s.store, datadir=s.data_dir,
            topic_partitions=s.partitions, topic_replication_factor=s.replication,
            table_standby_replicas=0, consumer_auto_offset_reset="earliest",
            web_enabled=True, web_port=s.web_port, web_host=s.web_host,
            web_bind=s.web_host, producer_acks=-1, broker_commit_interval=1.0,
            topic_disable_leader=True, **fast,
        )
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
                               warn_share=self._warn_share())
        app.on_rebalance_complete.connect(self._on_rebalance)
        self.listeners: list[Any] = []  # callbacks(fx) for dashboards/metrics
        self._escalations_sent: set[str] = set()  # command ids the timer already produced
        app.agent(self.reports, name="intake")(self._intake)
        app.agent(app.topic(T.LOCATED, T.COMMANDS, partitions=n, **RAW),
                  name="cases")(self._cases)
        app.timer(s.tick_seconds, name="escalation")(self._tick)

    def _raw_table(self, name: str) -> Any:
        """A changelog-backed table of bytes → bytes (we serialise with orjson ourselves)."""
        table = self.app.Table(name, partitions=self.settings.partitions, key_type=bytes,
                               value_type=bytes)
        table.key_serializer = table.value_serializer = "raw"
        return table

    def _warn_share(self) -> float:
        return float(self.engine.ruleset.escalation.warn_at)

    # -- partition ownership ------------------------------------------------------------

    def owns_street(self, street: str) -> bool:
        try:
            actives = self.app.assignor.assigned_actives()
        except Exception:  # before the first assignment
            return True
        mine = {tp.partition for tp in actives if tp.topic == T.LOCATED}
        return partition_of(street, self.settings.partitions) in mine

    async def _on_rebalance(self, *args: Any, **kw: Any) -> None:
        self.store.invalidate()
        self._escalations_sent.clear()

    # -- agents --------------------------------------------------------------------------

    async def _intake(self, stream: Any) -> None:
        s = self.settings
        async for batch in stream.take(s.batch_size, within=s.batch_within):
            now = self.clock.now()
            try:
                located, dead = self.engine.intake(list(batch), now)
            except Exception as err:  # never stop on one bad batch
                log.exception("intake batch failed; sending each report to the DLQ")
                located = []
                dead = [dead_letter(raw, "internal_error", f"engine error: {err}", now)
                        for raw in batch]
            for d in dead:
                self.dlq.send_soon(key=(d.report_id or "").encode() or None, value=dumps(d))
            for msg in located:
                self.located.send_soon(key=msg.placement.partition_key.encode(),
                                       value=dumps(msg))
            for cb in self.listeners:
                cb("intake", located=located, dead=dead)

    async def _cases(self, stream: Any) -> None:
        async for event in stream.events():
            now = self.clock.now()
            try:
                fx = self._handle(event.message.topic, event.value, now)
            except Exception:  # log, go on; input stays in log
                log.exception("case handling failed for %s", event.message.topic)
                continue
            self._publish(fx)

    def _handle(self, topic: str, raw: bytes, now: datetime) -> Effects:
        if topic == T.LOCATED:
            msg = Located.model_validate_json(raw)
            existing = self.store.case_for_report(msg.report.rid)
            nearby = (self.store.open_cases(msg.placement.partition_key,
                                            msg.decision.type_code)
                      if existing is None and msg.decision.type_code else ())
            fx = self.engine.on_located(msg, existing, nearby, now)
            if fx.case is not None and not fx.duplicate_delivery:
                self.store.put(fx.case, [msg.report.rid])
            return fx
        try:
            cmd = Command.model_validate_json(raw)
        except ValueError as err:
            log.warning("invalid command dropped: %s", err)
            self.dlq.send_soon(key=None, value=dumps(dead_letter(
                raw, "invalid_command", str(err).split("\n")[0], now)))
            return Effects()
        fx = self.engine.on_command(cmd, self.store.get(cmd.case_id), now)
        if fx.case is not None and any(e.seq > 0 for e in fx.events):
            self.store.put(fx.case)
        return fx

    def _publish(self, fx: Effects) -> None:
        for e in fx.events:
            self.case_events.send_soon(key=e.case_id.encode(), value=dumps(e))
        for wo in fx.work_orders:
            self.dispatch.send_soon(key=wo.department.encode(), value=dumps(wo))
        for a in fx.alerts:
            self.alerts.send_soon(key=(a.district or "").encode(), value=dumps(a))
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
                self.commands.send_soon(key=partition_key_of(cmd.case_id).encode(),
                                        value=dumps(cmd))

    # -- helpers for adapters (CLI, web) ----------------------------------------------------

    def command_bytes(self, cmd: Command) -> tuple[bytes, bytes]:
        return partition_key_of(cmd.case_id).encode(), orjson.dumps(
            cmd.model_dump(mode="json", by_alias=True, exclude_none=True))


def create_app(settings: Settings | None = None, **kw: Any) -> GridApp:
    return GridApp(settings or Settings.from_env(), **kw)
