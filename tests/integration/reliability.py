"""Helpers for the reliability and fault tests (their private cluster is the ``cluster``
fixture of tests/integration/conftest.py): workers, the simulated report stream, and
the accounting of a whole run (every report exactly once, work orders, case histories).

What is asserted, reading the outputs ``read_committed``:

* every valid report id belongs to exactly ONE case (it opened it, or was merged into it),
  or - if the engine rejected it - is in the DLQ and in no case; inputs without a readable
  report id each have a DLQ entry;
* on Apache Kafka (transactions) each event_id, work_order_id and report's DLQ entry is
  read exactly once. On the Tansu fallback (at-least-once) the same id read twice is an
  allowed duplicate, but two copies of one event_id must describe the same transition;
* per case, the distinct seq numbers are exactly 1..n (no gap) and the events replay with
  ``grid.lifecycle.replay`` to a case whose state is the last event's ``state_to``;
* work orders: the distinct work_order_ids of a case are exactly those named by its
  dispatched events, the lead's and each assisting department's of a joint case (none lost,
  no second, different work order for one dispatch).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams import topics as T
from tests.integration.conftest import WorkerProc


def start_worker(broker: Any, tmp_path: Path, app_id: str) -> WorkerProc:
    """A started ``grid worker`` on ``broker``, its changelogs replicated as the broker's
    topics, on the system clock (no escalations: the runs are about delivery)."""
    w = WorkerProc(broker.url, tmp_path, app_id, GRID_REPLICATION=str(broker.replication))
    w.env["GRID_CLOCK"] = "system"
    # a stalled partition is restarted well within the tests' 120 s wait (and logged)
    w.env["GRID_STALL_SECONDS"] = "30"
    return w.start()


def alive(w: WorkerProc, when: str) -> None:
    """Fail with the worker's log tail if it has exited."""
    assert w.proc is not None and w.proc.poll() is None, (
        f"worker exited with {w.proc and w.proc.returncode} {when}:\n{w.log_tail()}")


def chunks(items: list, n: int) -> list[list]:
    """``items`` cut into ``n`` nearly equal runs, in order."""
    size = -(-len(items) // n)
    return [items[i:i + size] for i in range(0, len(items), size)]


def sim_messages(n: int, seed: int, district: str | None = "310110"
                 ) -> tuple[list[bytes], set[bytes]]:
    """``n`` messages of the realistic stream and the set of bad inputs: the points in
    ``district`` (Yangpu), or with None in the whole shipped city, where Qingpu's area takes
    ~90 % of them, so a few streets (and their partitions) carry most of the load."""
    from bench import mix
    from geodata.locator import Locator
    from grid.simulator import BAD_INPUTS

    # The crowded stream failed the rebalance test with the at-least-once case loop and the
    # zombie test once on a loaded machine (a located partition left behind by a stalled
    # event loop). With the exactly-once loop and the partition watch beside it, it passed
    # both (2 of 2) and the whole fault tier twice (14 of 14) on 2026-12-03: those two tests
    # now run it, the others keep Yangpu.
    sim = mix.simulator(Locator.load(None), seed=seed, n_points=600, district=district)
    return mix.messages(sim, n, datetime.now(UTC)), set(BAD_INPUTS)


def produce(bootstrap: str, raws: list[bytes]) -> None:
    from bench.driver import key_of

    async def go() -> None:
        prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await prod.start()
        try:
            futs = [await prod.send(T.REPORTS, r, key=key_of(r)) for r in raws]
            await asyncio.gather(*futs)
        finally:
            await prod.stop()

    asyncio.run(go())


@dataclass
class Log:
    """Everything the engine wrote to case events, dispatch and the DLQ."""

    events: list[dict] = field(default_factory=list)
    work_orders: list[dict] = field(default_factory=list)
    dlq: list[dict] = field(default_factory=list)

    def accounted(self) -> set[str]:
        out = {e["data"]["report"]["report_id"] for e in self.events if e["type"] == "reported"}
        out |= {e["data"]["report_id"] for e in self.events if e["type"] == "merged"}
        return out | {d["report_id"] for d in self.dlq if d.get("report_id")}


def _read(bootstrap: str, topics: list[str], on_record, done, timeout: float,
          wait_ms: int = 500) -> None:
    """Read ``topics`` from the beginning, handing each record to ``on_record``, until a
    fetch waits ``wait_ms`` for nothing and ``done()`` holds, or ``timeout`` seconds pass."""

    async def go() -> None:
        cons = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                metadata_max_age_ms=1000, isolation_level="read_committed")
        await cons.start()
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < timeout:
                batches = await cons.getmany(timeout_ms=wait_ms, max_records=10_000)
                for recs in batches.values():
                    for r in recs:
                        on_record(r)
                if not batches and done():
                    return
        finally:
            await cons.stop()

    asyncio.run(go())


def read_until(bootstrap: str, done, timeout: float) -> Log:
    """Read the three output topics from the beginning until ``done(log)`` or timeout."""
    log = Log()
    lists = {T.CASE_EVENTS: log.events, T.DISPATCH: log.work_orders, T.DLQ: log.dlq}
    _read(bootstrap, list(lists), lambda r: lists[r.topic].append(orjson.loads(r.value)),
          lambda: done(log), timeout)
    return log


def expected_ids(raws: list[bytes], bad: set[bytes]) -> tuple[set[str], int]:
    from grid.intake import report_id_of

    rids = {r for raw in raws if raw not in bad and (r := report_id_of(raw))}
    return rids, sum(1 for raw in raws if raw in bad)


def wait_accounted(bootstrap: str, raws: list[bytes], bad: set[bytes],
                   timeout: float = 180) -> Log:
    rids, n_bad = expected_ids(raws, bad)

    def done(log: Log) -> bool:
        no_id = sum(1 for d in log.dlq if d.get("report_id") not in rids)
        return rids <= log.accounted() and no_id >= n_bad

    return read_until(bootstrap, done, timeout)


def where_are(bootstrap: str | None, report_ids: list[str]) -> str:
    """Where a fresh read finds reports the run did not account for (a failure message):
    forwarded to the located topic? in case events or the DLQ after all (then the reader
    missed them, not the engine)?"""
    if not bootstrap:
        return "no broker to look"
    want = set(report_ids)
    found: dict[str, set] = {T.LOCATED: set(), T.CASE_EVENTS: set(), T.DLQ: set()}

    def look(r) -> None:
        v = orjson.loads(r.value)
        data = v.get("data") or {}
        rid = (v.get("report_id") or (v.get("report") or {}).get("report_id")
               or (data.get("report") or {}).get("report_id") or data.get("report_id"))
        if rid in want:
            found[r.topic].add((rid, r.partition, r.offset))

    _read(bootstrap, list(found), look, lambda: True, timeout=120, wait_ms=2000)
    located = sorted(found[T.LOCATED], key=lambda x: x[1:])[:5]
    return ("a fresh read finds them in: " + ", ".join(
        f"{t} {len(hits)}" for t, hits in found.items())
        + f" (located partition/offset: {[(p, o) for _r, p, o in located]}); "
        + group_lags(bootstrap))


def group_lags(bootstrap: str) -> str:
    """Per consumer group, the input partitions whose committed offset is behind the end
    (a failure message: which partition a loop stopped consuming)."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def go() -> str:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        cons = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                isolation_level="read_committed")
        await admin.start()
        await cons.start()
        try:
            lines = []
            for group, _proto in sorted(await admin.list_consumer_groups()):
                offsets = await admin.list_consumer_group_offsets(group)
                ends = await cons.end_offsets(list(offsets))
                behind = {f"{tp.topic}[{tp.partition}]": (m.offset, ends[tp])
                          for tp, m in sorted(offsets.items()) if m.offset < ends[tp] - 1}
                lines.append(f"{group}: " + (f"committed/end {behind}" if behind
                                             else "every partition committed to its end"))
            return "consumer groups: " + "; ".join(lines)
        finally:
            await cons.stop()
            await admin.close()

    try:
        return asyncio.run(go())
    except Exception as e:  # a diagnosis must not hide the failure it explains
        return f"consumer groups: not read ({e!r})"


def check_run(log: Log, raws: list[bytes], bad: set[bytes],
              bootstrap: str | None = None) -> dict[str, int]:
    """Assert the contract in the module docstring; returns counts for messages."""
    from grid.lifecycle import replay
    from grid.models import CaseEvent
    from streams.broker import on_tansu

    rids, n_bad = expected_ids(raws, bad)
    if not on_tansu():  # exactly once: no copies the engine made
        for what, ids in (("event", [e["event_id"] for e in log.events]),
                          ("work order", [w["work_order_id"] for w in log.work_orders])):
            copies = {i: n for i, n in Counter(ids).items() if n > 1}
            assert not copies, (f"{len(copies)} {what} id(s) read more than once with "
                                f"read_committed, e.g. {list(copies.items())[:3]}")
        from grid.intake import report_id_of

        sent = Counter(report_id_of(raw) for raw in raws)  # the stream repeats some input
        dead = Counter(d["report_id"] for d in log.dlq if d.get("report_id"))
        copies = {i: n for i, n in dead.items() if n > sent[i]}
        assert not copies, (f"{len(copies)} report(s) with more DLQ entries than times sent, "
                            f"e.g. {list(copies.items())[:3]}")
    # one transition per event id
    by_id: dict[str, dict] = {}
    for e in log.events:
        if e["seq"] == 0:  # command_rejected: not part of the history
            continue
        first = by_id.setdefault(e["event_id"], e)
        assert (first["type"], first["seq"], first["state_to"]) == (
            e["type"], e["seq"], e["state_to"]), f"conflicting copies of {e['event_id']}"
    cases: dict[str, list[dict]] = defaultdict(list)
    for e in by_id.values():
        cases[e["case_id"]].append(e)
    # every report exactly once
    owner: dict[str, set[str]] = defaultdict(set)
    for e in by_id.values():
        if e["type"] == "reported":
            owner[e["data"]["report"]["report_id"]].add(e["case_id"])
        elif e["type"] == "merged":
            owner[e["data"]["report_id"]].add(e["case_id"])
    dlq_ids = {d.get("report_id") for d in log.dlq}
    missing = [r for r in rids if not owner.get(r) and r not in dlq_ids]
    assert not missing, (f"{len(missing)} reports unaccounted, e.g. {missing[:3]}; "
                         f"{where_are(bootstrap, missing)}")
    twice = {r: c for r, c in owner.items() if len(c) > 1}
    assert not twice, f"reports in more than one case: {list(twice.items())[:3]}"
    both = [r for r in owner if r in dlq_ids]
    assert not both, f"reports both in a case and in the DLQ: {both[:3]}"
    no_id = sum(1 for d in log.dlq if d.get("report_id") not in rids)
    assert no_id >= n_bad, f"{n_bad} bad inputs but {no_id} DLQ entries without a report id"
    # histories: seq 1..n, replayable
    for cid, evs in cases.items():
        evs.sort(key=lambda e: e["seq"])
        seqs = [e["seq"] for e in evs]
        assert seqs == list(range(1, len(evs) + 1)), f"{cid}: seq {seqs}"
        case = replay(CaseEvent.model_validate(e) for e in evs)
        assert case.state == evs[-1]["state_to"]
    # work orders: exactly the dispatches
    wos: dict[str, set[str]] = defaultdict(set)
    for w in log.work_orders:
        wos[w["case_id"]].add(w["work_order_id"])
    for cid, evs in cases.items():
        dispatches = [e["data"] for e in evs if e["type"] in ("dispatched", "redispatched")]
        want = {d["work_order_id"] for d in dispatches}  # the lead's, and each assisting part's
        want |= {p["work_order_id"] for d in dispatches for p in d.get("assisting") or []}
        assert wos.get(cid, set()) == want, f"{cid}: work orders {wos.get(cid)} != {want}"
    stray = set(wos) - set(cases)
    assert not stray, f"work orders for unknown cases: {list(stray)[:3]}"
    return {"cases": len(cases), "events": len(log.events), "distinct_events": len(by_id),
            "work_orders": len(log.work_orders),
            "distinct_work_orders": sum(len(v) for v in wos.values()), "dlq": len(log.dlq)}


# -- fault tests: partition leaders, group membership ---------------------------------------

def leader_of(bootstrap: str, topic: str, partition: int = 0, not_on: int | None = None,
              timeout: float = 90) -> tuple[int, list[int]]:
    """The broker id leading ``topic``/``partition`` and its replica ids, once the topic
    exists and the partition has a leader other than ``not_on`` (a Faust changelog topic
    appears only after its worker started; a killed leader is replaced after the controller
    fenced it). Raises ``TimeoutError`` with the last answer."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def go() -> tuple[int, list[int]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        await admin.start()
        deadline = time.monotonic() + timeout
        last: object = None
        try:
            while time.monotonic() < deadline:
                try:
                    described = await admin.describe_topics([topic])
                except Exception as err:  # a node just went away: ask again
                    last = err
                else:
                    parts = {p["partition"]: p for p in described[0]["partitions"]}
                    last = parts.get(partition)
                    if last and last["leader"] >= 0 and last["leader"] != not_on:
                        return last["leader"], sorted(last["replicas"])
                await asyncio.sleep(0.5)
        finally:
            await admin.close()
        raise TimeoutError(f"{topic}/{partition}: no leader (other than {not_on}) within "
                           f"{timeout:.0f} s; last answer {last}")

    return asyncio.run(go())


def health(worker) -> dict | None:
    """A worker's ``/api/v1/health`` (None while its web server does not answer)."""
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{worker.web_port}/api/v1/health", timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None


def wait_group(workers: list, timeout: float = 120) -> dict[str, list[int]]:
    """Wait until exactly ``workers`` share every partition of the cases table, as each of
    them sees it (the Faust group has settled); returns that assignment (url -> partitions).
    Fails with every view if it does not happen within ``timeout``."""
    deadline = time.monotonic() + timeout
    views: list = []
    while time.monotonic() < deadline:
        for w in workers:
            alive(w, "while the group settled")
        got = [health(w) for w in workers]
        views = [h and {h["worker"].rstrip("/"): h["partitions"]} for h in got]
        if all(got):
            n = got[0]["partition_count"]  # type: ignore[index]
            held = [p for v in views for ps in v.values() for p in ps]  # type: ignore[union-attr]
            if all(h["partitions"] for h in got) and sorted(held) == list(range(n)):  # type: ignore[index]
                return {u: ps for v in views for u, ps in v.items()}  # type: ignore[union-attr]
        time.sleep(0.5)
    raise AssertionError(f"{len(workers)} worker(s) did not share the partitions within "
                         f"{timeout:.0f} s: {views}")


def group_assignment(bootstrap: str, group: str, topic: str) -> tuple[str, list[list[int]]]:
    """Consumer group ``group`` as its coordinator describes it: its state and each member's
    assigned partitions of ``topic`` (sorted)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=10_000)
    try:
        g = admin.describe_groups([group])[group]
    finally:
        admin.close()
    parts = [sorted(p for a in (m["member_assignment"] or {}).get("assigned_partitions", [])
                    if a["topic"] == topic for p in a["partitions"]) for m in g["members"]]
    return g["group_state"], parts


def wait_assignment(bootstrap: str, group: str, topic: str, members: int, partitions: int = 8,
                    timeout: float = 90) -> list[list[int]]:
    """Wait until ``group`` is Stable with ``members`` members, each holding a partition of
    ``topic`` and together all ``partitions``; returns each member's partitions."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            state, parts = last = group_assignment(bootstrap, group, topic)
        except Exception as err:  # coordinator moving: ask again
            last = err
        else:
            if (state == "Stable" and len(parts) == members and all(parts)
                    and sorted(p for ps in parts for p in ps) == list(range(partitions))):
                return parts
        time.sleep(0.5)
    raise AssertionError(f"group {group} not Stable with {members} member(s) sharing the "
                         f"{partitions} partitions of {topic} within {timeout:.0f} s: {last}")
