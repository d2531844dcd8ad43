"""Where a report's dispatch latency goes, seen from outside the process under test.

An observer tails the input, the located hop and the work orders (read_committed, group-less)
while the latency run offers its reports, and keeps per report: the report's CreateTime (the
driver's send), the located record's CreateTime (the intake handled it and handed its output
to its producer), the time the observer read it (the intake's transaction committed and its
markers written, + the observer's fetch), the work order's CreateTime (the case loop handled
it) and the time the observer read that. Record timestamps are the producers' wall clocks on
this machine, in ms. Stages::

    intake     report sent → located record made   (fetch wait, batching, handling)
    commit 1   located made → located readable      (intake's transaction: round trips, markers)
    hop 2      located readable → work order made   (case loop's fetch and handling)
    commit 2   work order made → work order read    (case loop's transaction, markers, fetch)

A stage can come out slightly negative for a report (the case loop fetched the located record
before the observer did); its percentiles are over the reports seen at every point.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import orjson

from bench.driver import percentile, tail_from_end
from bench.mix import case_suffix
from grid.intake import report_id_of

Match = Callable[[bytes], str | None]
T = TypeVar("T")
STAGES = ("intake", "commit 1", "hop 2", "commit 2", "total")


def located_report(value: bytes) -> str | None:
    """The case suffix of a located message's report (engine and baseline alike)."""
    try:
        return case_suffix(str(orjson.loads(value)["report"]["report_id"]))
    except (KeyError, TypeError, ValueError):
        return None


def input_report(value: bytes) -> str | None:
    rid = report_id_of(value)
    return case_suffix(rid) if rid else None


@dataclass
class Observer:
    """Timestamps per report suffix: [sent, located made, located read, wo made, wo read]."""

    seen: dict[str, list[float | None]] = field(default_factory=dict)

    def note(self, suffix: str | None, i: int, t: float) -> None:
        if suffix is None:
            return
        row = self.seen.setdefault(suffix, [None] * 5)
        if row[i] is None:
            row[i] = t

    def breakdown(self) -> dict[str, dict[str, float]]:
        """p50/p99 ms of each stage over the reports seen at every point."""
        full = [r for r in self.seen.values() if None not in r]
        out: dict[str, dict[str, float]] = {}
        for k, name in enumerate(STAGES):
            a, b = (k, k + 1) if name != "total" else (0, 4)
            xs = sorted((r[b] - r[a]) * 1000 for r in full)
            out[name] = {"p50_ms": round(percentile(xs, 50), 1),
                         "p99_ms": round(percentile(xs, 99), 1)}
        return out | {"reports": {"p50_ms": len(full), "p99_ms": len(full)}}


async def observed(bootstrap: str, in_topic: str, located_topic: str, out_topic: str,
                   match_out: Match, run: Callable[[], Awaitable[T]]
                   ) -> tuple[T, dict[str, dict[str, float]]]:
    """``await run()`` (the latency run) with an observer on the three topics; returns its
    result and :meth:`Observer.breakdown`."""
    cons = await tail_from_end(bootstrap, [in_topic, located_topic, out_topic])
    obs, stop = Observer(), asyncio.Event()
    task = asyncio.create_task(observe(cons, in_topic, located_topic, match_out, stop, obs))
    try:
        result = await run()
    finally:
        stop.set()
        await task
    return result, obs.breakdown()


async def observe(cons, in_topic: str, located_topic: str, match_out: Match,
                  stop: asyncio.Event, obs: Observer) -> None:
    """Tail ``cons`` (positioned) until ``stop`` is set (then 3 s more); closes it."""
    stopped_at = None
    try:
        while stopped_at is None or time.time() - stopped_at < 3.0:
            if stop.is_set() and stopped_at is None:
                stopped_at = time.time()
            got = await cons.getmany(timeout_ms=100, max_records=5000)
            now = time.time()
            for tp, records in got.items():
                for r in records:
                    made = r.timestamp / 1000
                    if tp.topic == in_topic:
                        obs.note(input_report(r.value), 0, made)
                    elif tp.topic == located_topic:
                        s = located_report(r.value)
                        obs.note(s, 1, made)
                        obs.note(s, 2, now)
                    else:
                        s = match_out(r.value)
                        obs.note(s, 3, made)
                        obs.note(s, 4, now)
    finally:
        await cons.stop()
