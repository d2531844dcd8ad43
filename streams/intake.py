"""The intake loop: reports → validated, located, classified and decided reports.

Reads the intake topics (:data:`streams.topics.INTAKE_CHANNELS`) in group
``<app id>-intake``; each report partition is a unit of :class:`streams.loop.UnitLoop`.
A batch goes through :meth:`grid.service.Engine.intake` at once (vectorised location), and
its output — ``grid.located.v1`` keyed and partitioned by street, or ``grid.reports.dlq.v1``
with a reason — is committed with the input offsets in one transaction (on Apache Kafka).
No record stops the loop: a batch the engine fails on is retried report by report and only
the report it keeps failing on is dead-lettered (``internal_error``).

Intake never touches case state: every located report goes through the located topic to
the worker holding its street (:mod:`streams.caseloop`), so no worker acts on a street it
does not hold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiokafka import TopicPartition

from grid.clock import Clock
from grid.intake import report_id_of
from grid.service import DeadLetter, Engine, Located, dead_letter, dumps
from streams import topics as T
from streams.loop import Done, Records, UnitLoop
from streams.settings import Settings
from streams.sinks import Out, partition_of

log = logging.getLogger(__name__)

POISON_TRIES = 3  # a report the engine fails on alone this often is dead-lettered


class IntakeLoop(UnitLoop):
    """Reports in, located reports and dead letters out (see the module doc)."""

    name = "intake"
    topics = tuple(T.INTAKE_CHANNELS)

    def __init__(self, settings: Settings, engine: Engine, clock: Clock,
                 listeners: list[Callable[..., None]]) -> None:
        super().__init__(settings, "intake")
        self.engine = engine
        self.clock = clock
        self.listeners = listeners

    def unit_of(self, tp: TopicPartition) -> str:
        return f"{tp.topic}-{tp.partition}"

    def handle(self, unit: str, records: Records) -> tuple[list[Out], Done | None]:
        out, located, dead = self.intake([r.value for r in records],
                                         [r.topic for r in records])
        if not self.listeners:
            return out, None

        def tell() -> None:
            for cb in self.listeners:
                cb("intake", located=located, dead=dead)
        return out, tell

    def intake(self, batch: list[bytes | None], topics: list[str] | None = None
               ) -> tuple[list[Out], list[Located], list[DeadLetter]]:
        """Output records for a batch of raw reports (from ``topics``, one per report)."""
        now = self.clock.now()
        channels = [T.INTAKE_CHANNELS.get(t) for t in topics] if topics else None
        try:
            located, dead = self.engine.intake(batch, now, channels)
        except Exception:  # never stop on one bad record: find it, handle the others
            log.exception("intake batch of %d failed; handling its reports one by one",
                          len(batch))
            located, dead = self._one_by_one(batch, now, channels)
        n = self.settings.partitions
        out = [Out(T.DLQ, (d.report_id or "").encode() or None, dumps(d)) for d in dead]
        for msg in located:
            street = msg.placement.partition_key
            out.append(Out(T.LOCATED, street.encode(), dumps(msg), partition_of(street, n)))
        return out, located, dead

    def _one_by_one(self, batch: list[bytes | None], now: datetime,
                    channels: list[Any] | None) -> tuple[list[Located], list[DeadLetter]]:
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
