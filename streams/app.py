"""The worker: the engine's loops, its API producer and its web server, wired in one place.

::

    intake topics ─ intake loop (streams.intake; group <app id>-intake; one transaction per
                    report partition and batch: parse, locate, classify, decide)
        ├─▶ grid.reports.dlq.v1   (rejected, with reason)
        └─▶ grid.located.v1       (key and partition: street)
    grid.located.v1 + grid.commands.v1 (key: street) ─ case loop (streams.caseloop; group
                    <app id>-cases; case state per street partition from its changelog;
                    one transaction per partition and batch; the escalation timer)
        ─▶ grid.case-events.v1, grid.dispatch.v1, grid.hotline-replies.v1, grid.alerts.v1,
           <app id>-cases-changelog, <app id>-report-index-changelog

On Apache Kafka both loops are exactly-once (Kafka transactions, zombies fenced per unit:
streams.sinks); on the Tansu fallback they are at-least-once and say so at start.

Faust provides the process around them: the app's lifecycle, its web server (the API, the
pages, /metrics) and timers. It consumes nothing of the engine's topics (its own group only
holds its leader topic, ``<app id>-__assignor-__leader``) and runs unpatched.
All messages are JSON bytes; the domain work is in :mod:`grid.service`.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
import orjson

from grid.clock import Clock
from grid.models import Command, partition_key_of
from grid.service import Engine
from streams.broker import bootstrap_of, faust_credentials, on_tansu
from streams.caseloop import CaseLoop
from streams.intake import IntakeLoop
from streams.settings import Settings
from streams.sinks import Publisher, partition_of

__all__ = ["GridApp", "create_app", "partition_of"]

log = logging.getLogger(__name__)


class GridApp:
    """One worker: settings, engine, clock, the two loops, the API's producer, the web app."""

    def __init__(self, settings: Settings, engine: Engine | None = None,
                 clock: Clock | None = None) -> None:
        self.settings = s = settings
        self.engine = engine or Engine.load(s.geodata, s.rules, s.taxonomy_extra)
        self.clock = clock or Clock.from_spec(s.clock)
        fast = dict(broker_rebalance_timeout=3, broker_session_timeout=6,
                    broker_heartbeat_interval=1) if s.fast_group else {}
        self.app = app = faust.App(
            s.app_id, broker=s.broker, store="memory://", datadir=s.data_dir,
            topic_partitions=s.partitions, topic_replication_factor=s.replication,
            consumer_auto_offset_reset="earliest", web="grid://", web_enabled=True,
            web_port=s.web_port,
            web_host=s.web_host, web_bind=s.web_host, producer_acks=-1,
            broker_credentials=faust_credentials(), **fast,
        )
        logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.root.level))
        self.listeners: list[Any] = []  # callbacks(kind, **what) for dashboards/metrics
        self.publisher = Publisher(bootstrap_of(s.broker))
        self.intake = IntakeLoop(s, self.engine, self.clock, self.listeners)
        self.cases = CaseLoop(s, self.engine, self.clock, self.listeners)
        app.task(self.intake.run)
        app.task(self.cases.run)

    @property
    def exactly_once(self) -> bool:
        return not on_tansu()

    # -- health ------------------------------------------------------------------------

    def cases_lag(self) -> dict[Any, int]:
        return self.cases.lag()

    def consumers(self) -> dict[str, dict[str, Any]]:
        """Each consumer's state, lag and age of its oldest waiting input."""
        out = {"intake": self.intake.health.status(), "cases": self.cases.health.status()}
        if (pr := getattr(self, "projector", None)) is not None:
            out["projector"] = pr.health.status()
        if (feed := getattr(self, "live_feed", None)) is not None:
            out["live_feed"] = feed.health.status()
        return out

    def not_ready(self) -> list[str]:
        """Why this worker cannot serve yet, in words (empty when it can)."""
        why = [f"the {loop.name} loop is {loop.health.state}"
               for loop in (self.intake, self.cases) if loop.health.state != "running"]
        pr = getattr(self, "projector", None)
        if pr is not None and not pr.caught_up.is_set():
            why.append(f"the projector is still storing the event log present at start "
                       f"({pr.applied} events so far)")
        return why

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Produce one record for the API (acknowledged by all in-sync replicas)."""
        await self.publisher.send(topic, key, value)

    # -- helpers for adapters (CLI, web) ----------------------------------------------------

    def command_bytes(self, cmd: Command) -> tuple[bytes, bytes]:
        return partition_key_of(cmd.case_id).encode(), orjson.dumps(
            cmd.model_dump(mode="json", by_alias=True, exclude_none=True))


def create_app(settings: Settings | None = None, **kw: Any) -> GridApp:
    return GridApp(settings or Settings.from_env(), **kw)
