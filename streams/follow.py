"""``grid submit --follow``: send reports, then show what became of each one — its case,
its work order, its alerts, or why it was refused — as a person reads it (names beside
codes, Shanghai time).

The positions of the output topics are taken *before* the reports are sent, so nothing the
engine writes for them can be missed, however fast it answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import topics as T
from streams.broker import client_security, on_tansu
from streams.kafka_io import _partitions, decode
from streams.tansu import true_end_offsets

WATCHED = (T.CASE_EVENTS, T.DISPATCH, T.ALERTS, T.DLQ)
SETTLED = frozenset({"triaged", "self_closed", "rejected"})  # no work order will follow


@dataclass
class Outcome:
    """What is known of one submitted report."""

    report_id: str
    case_id: str | None = None
    merged: bool = False
    settled: bool = False  # a work order, self-closed, triage, rejected or refused
    lines: list[str] = field(default_factory=list)


class Follower:
    """Matches output records to the submitted ``report_ids`` (pure: feed it values)."""

    def __init__(self, report_ids: Iterable[str], describe: Callable[[Any], str]) -> None:
        self.reports = {rid: Outcome(rid) for rid in report_ids}
        self.by_case: dict[str, Outcome] = {}
        self.waiting: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.describe = describe

    def done(self) -> bool:
        return all(o.settled for o in self.reports.values())

    def feed(self, topic: str, v: Any) -> list[str]:
        """The lines to print for record value ``v`` of ``topic``: none when it is not about
        a submitted report. A work order or alert read before its case's first event (other
        topics, other partitions) waits for that event."""
        if not isinstance(v, dict):
            return []
        if topic == T.DLQ:
            o = self.reports.get(v.get("report_id") or "")
            if o is None:
                return []
            o.settled = True
            return [f"REFUSED {v.get('reason')}: {v.get('message')}"]
        cid = v.get("case_id") or ""
        o = self.by_case.get(cid)
        if o is None and topic == T.CASE_EVENTS:
            data = v.get("data") or {}
            rid = (data.get("report") or {}).get("report_id") if v.get("type") == "reported" \
                else data.get("report_id") if v.get("type") == "merged" else None
            o = self.reports.get(rid or "")
            if o is not None:
                o.case_id = cid
                o.merged = v.get("type") == "merged"
                self.by_case[cid] = o
                return [self._line(o, topic, v)] + [
                    self._line(o, t, w) for t, w in self.waiting.pop(cid, [])]
        if o is None:
            if topic != T.CASE_EVENTS and len(self.waiting) < 10_000:
                self.waiting.setdefault(cid, []).append((topic, v))
            return []
        return [self._line(o, topic, v)]

    def _line(self, o: Outcome, topic: str, v: dict[str, Any]) -> str:
        if topic == T.DISPATCH or (topic == T.CASE_EVENTS and (
                v.get("type") in SETTLED or o.merged)):
            o.settled = True
        return self.describe(v)


async def follow(bootstrap: str, report_ids: list[str], send: Callable[[], Any],
                 describe: Callable[[Any], str], echo: Callable[[str], None],
                 timeout: float = 30.0, linger: float = 1.5) -> Follower:
    """Take the watched topics' end offsets, ``await send()``, then print (``echo``) every
    record about ``report_ids`` until each is settled (plus ``linger`` seconds for the
    alerts that follow a work order) or ``timeout`` seconds passed."""
    f = Follower(report_ids, describe)
    cons = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                            enable_auto_commit=False, auto_offset_reset="earliest",
                            isolation_level="read_committed", **client_security())
    await cons.start()
    try:
        tps: list[TopicPartition] = []
        for topic in WATCHED:
            tps += await _partitions(cons, topic, timeout)
        cons.assign(tps)
        ends = await cons.end_offsets(tps)
        if on_tansu():  # Tansu only: its "latest" is wrong after a batch (streams.tansu)
            ends = await true_end_offsets(cons._client._bootstrap_servers, ends)
        for tp, end in ends.items():
            cons.seek(tp, end)
        await send()
        deadline = time.monotonic() + timeout
        settled_at: float | None = None
        while time.monotonic() < deadline:
            if settled_at is None and f.done():
                settled_at = time.monotonic()
            if settled_at is not None and time.monotonic() - settled_at >= linger:
                break
            batches = await cons.getmany(timeout_ms=200, max_records=500)
            for tp, recs in batches.items():
                for m in recs:
                    for line in f.feed(tp.topic, decode(m.value)):
                        echo(line)
    finally:
        await cons.stop()
    return f


def run_follow(bootstrap: str, report_ids: list[str], send: Callable[[], Any],
               describe: Callable[[Any], str], echo: Callable[[str], None],
               timeout: float = 30.0) -> Follower:
    return asyncio.run(follow(bootstrap, report_ids, send, describe, echo, timeout))
