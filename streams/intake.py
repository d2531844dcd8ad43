"""The intake loop: reports → validated, located, classified and decided reports.

Reads the intake topics (:data:`streams.topics.INTAKE_CHANNELS`) in group
``<app id>-intake``; each report partition is a unit of :class:`streams.loop.UnitLoop`.
A batch goes through :meth:`grid.service.Engine.intake_each` at once (vectorised location).
Everything goes to ``grid.located.v1``, the case loop's input, with an ``origin`` header
(``topic:partition:offset`` of the report's record): a located report keyed and
partitioned by street; a rejected one with a ``dead-letter`` header, keyed by its report id
in the partition of its report partition's number, which the case loop forwards to
``grid.reports.dlq.v1`` with a reason. No record stops the loop: a batch the engine fails on
is retried report by report and only the report it keeps failing on is dead-lettered
(``internal_error``).

The loop is at-least-once on purpose (an idempotent producer, offsets committed once the
output is acknowledged): a crash repeats a batch's output, and the case loop, which commits
everything it outputs in one transaction, drops each record it handled before by its
origin (:mod:`streams.caseloop`). So each report costs one Kafka transaction, and every
report, case event, work order and DLQ entry still comes out exactly once.

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
from streams.topics import DEAD_LETTER, origin_header

log = logging.getLogger(__name__)

POISON_TRIES = 3  # a report the engine fails on alone this often is dead-lettered


class IntakeLoop(UnitLoop):
    """Reports in, located reports and dead letters out (see the module doc)."""

    name = "intake"
    topics = tuple(T.INTAKE_CHANNELS)
    transactional = False  # the case loop drops repeats by origin (see the module doc)

    def __init__(self, settings: Settings, engine: Engine, clock: Clock,
                 listeners: list[Callable[..., None]]) -> None:
        super().__init__(settings, "intake")
        self.engine = engine
        self.clock = clock
        self.listeners = listeners

    def unit_of(self, tp: TopicPartition) -> str:
        return f"{tp.topic}-{tp.partition}"

    def handle(self, unit: str, records: Records) -> tuple[list[Out], Done | None]:
        out, located, _dead = self.intake(
            [r.value for r in records], [r.topic for r in records],
            [(r.topic, r.partition, r.offset) for r in records],
            [r.timestamp for r in records])
        if not self.listeners:
            return out, None

        def tell() -> None:
            for cb in self.listeners:
                cb("intake", located=located)
        return out, tell

    def intake(self, batch: list[bytes | None], topics: list[str] | None = None,
               origins: list[tuple[str, int, int]] | None = None,
               timestamps: list[int] | None = None,
               ) -> tuple[list[Out], list[Located], list[DeadLetter]]:
        """Output records for a batch of raw reports (from ``topics``, one per report; read
        at ``origins``: topic, partition, offset; ``timestamps``: the records' times, ms;
        not positive: unknown). Validation measures time from a record's own time, in the
        engine's clock (when not later than now): a report read again after a crash gets the
        verdict it got the first time, so it reaches the case loop as a case or as a dead
        letter, never once as each."""
        now = self.clock.now()
        channels = [T.INTAKE_CHANNELS.get(t) for t in topics] if topics else None
        sent = ([self.clock.at(ms / 1000) if ms > 0 else None for ms in timestamps]
                if timestamps else None)
        try:
            results = self.engine.intake_each(batch, now, channels, sent)
        except Exception:  # never stop on one bad record: find it, handle the others
            log.exception("intake batch of %d failed; handling its reports one by one",
                          len(batch))
            results = self._one_by_one(batch, now, channels, sent)
        n = self.settings.partitions
        out: list[Out] = []
        located: list[Located] = []
        dead: list[DeadLetter] = []
        for i, res in enumerate(results):
            src = origins[i] if origins else None
            headers = (origin_header(*src),) if src is not None else ()
            if isinstance(res, DeadLetter):
                dead.append(res)
                out.append(Out(T.LOCATED, (res.report_id or "").encode() or None, dumps(res),
                               (src[1] if src else 0) % n, (*headers, DEAD_LETTER)))
            else:
                located.append(res)
                street = res.placement.partition_key
                out.append(Out(T.LOCATED, street.encode(), dumps(res), partition_of(street, n),
                               headers))
        return out, located, dead

    def _one_by_one(self, batch: list[bytes | None], now: datetime,
                    channels: list[Any] | None, sent: list[datetime | None] | None,
                    ) -> list[Located | DeadLetter]:
        """Each report of a failed batch alone, up to ``POISON_TRIES`` times; a report the
        engine still fails on is dead-lettered (``internal_error``), the others go on."""
        results: list[Located | DeadLetter] = []
        for i, raw in enumerate(batch):
            for attempt in range(1, POISON_TRIES + 1):
                try:
                    (res,) = self.engine.intake_each([raw], now,
                                                     [channels[i]] if channels else None,
                                                     [sent[i]] if sent else None)
                except Exception as err:
                    if attempt < POISON_TRIES:
                        continue
                    log.error("report %s failed %d times: %s", report_id_of(raw) or "?",
                              attempt, err)
                    res = dead_letter(
                        raw, "internal_error", f"the engine failed on this report {attempt} "
                        f"times: {type(err).__name__}: {err}", now, report_id=report_id_of(raw))
                results.append(res)
                break
        return results
