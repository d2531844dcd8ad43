"""``grid bench store``: the read store on PostgreSQL and SQLite, side by side in one run.

Data: the fixture log's cases (tests/fixtures/events/district.jsonl, 11 scenarios: closed on
time and late, returned, reworked, extended, self-closed, still open, …) cloned under new case
and report ids, each clone on a random Yangpu street and community, with a random incident
type of the taxonomy (and that type's department), and all its times shifted so that the
cases open uniformly over one quarter (:data:`QUARTER`). The events are delivered as a real
``grid.case-events.v1`` log would be: in time order across cases (so most records of a batch
update a case stored by an earlier batch), 8 partitions keyed by case id, offsets per
partition.

Per database (a throwaway PostgreSQL from :class:`store.pg_server.PostgresServer`, a SQLite
file in a temporary directory):

1. **Projector throughput**: :meth:`store.writer.StoreWriter.apply` in batches of
   :data:`BATCH` records (the projector's ``MAX_RECORDS``), with the rows'
   place/type/department names as ``grid projector`` writes them. Beside it, batch by
   batch on the same records (alternating, so both see the same machine load), the
   **baseline**: parse the records and one plain
   ``executemany`` INSERT of their rows into ``case_events`` of an empty second database,
   without folding. events/s = records / seconds inside the calls (generation excluded).
   This runs over the first ``throughput_cases`` cases' events; the rest of the log goes
   through the same writer without the baseline (its events/s reported as ``rest``).
2. **List queries**: 1,000 :meth:`store.reader.ReadStore.page` calls (limit 50), a mix of
   five filters (below); p50/p99 ms per kind and overall.
3. **Evaluation**: ``grid.report.evaluation_of`` of the quarter over ``ReadStore.evaluation``.
4. **Worker start**: ``connect(url)`` (migration check) + ``StoreWriter.load_positions`` +
   the first ``apply`` of one new batch, on a store with :data:`SMALL_CASES` cases and on the
   full store.
5. **Several projectors** (PostgreSQL): :func:`scaling`, the same log by 1 and 2 projector
   processes over disjoint partitions, as ``grid projector`` instances in one consumer
   group share them: each count on an empty store, then each with new cases into the
   loaded store (``scaling_loaded``: a young store is cheaper per event).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import math
import os
import random
import re
import statistics
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from grid.projection import TZ
from store.rows import no_names
from streams.projector import MAX_RECORDS
from streams.topics import CASE_EVENTS

LOG = Path(__file__).parent.parent / "tests" / "fixtures" / "events" / "district.jsonl"
DISTRICT = "310110"  # Yangpu
QUARTER = (date(2026, 1, 1), date(2026, 3, 31))  # the cases open over these 90 days
PARTITIONS = 8
BATCH = MAX_RECORDS  # records per apply, as the projector's batches when behind
START_BATCH = 2000  # the first batch of a starting worker (live flow: small batches)
SMALL_CASES = 1000
CONSUMER = "bench-projector"
TIME_RE = re.compile(rb'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?\+08:00)"')


# -- the generated log ----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One fixture case as byte templates with tokens for what a clone changes."""

    events: tuple[bytes, ...]  # in seq order (command_rejected where it was)
    offsets: tuple[float, ...]  # seconds of each event after the case opened
    times: tuple[tuple[bytes, float], ...]  # (token, seconds after the opening) per time


def _token(name: str) -> bytes:
    return f"@@{name}@@".encode()


def scenarios(path: Path = LOG) -> list[Scenario]:
    """The fixture log's cases as :class:`Scenario` templates."""
    by_case: dict[str, list[dict[str, Any]]] = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            e = orjson.loads(line)
            by_case.setdefault(e["case_id"], []).append(e)
    out = []
    for cid, evs in by_case.items():
        evs.sort(key=lambda e: (datetime.fromisoformat(e["at"]), e["seq"]))
        opened = datetime.fromisoformat(evs[0]["at"])
        assert evs[0]["type"] == "reported", cid
        rep = evs[0]["data"]["report"]
        place = evs[0]["data"]["placement"]
        depts = {str(e["data"]["department"]) for e in evs
                 if "department" in (e.get("data") or {})}
        depts |= {str(e["data"]["decision"]["department"]) for e in evs
                  if "decision" in (e.get("data") or {})}
        subs = [(cid.encode(), _token("C")), (rep["report_id"].encode(), _token("R")),
                (f'"{place["cell"]}"'.encode(), b'"' + _token("L") + b'"'),
                (f'"{place["community"]}"'.encode(), b'"' + _token("M") + b'"'),
                (f'"{place["street"]}"'.encode(), b'"' + _token("S") + b'"'),
                (f'"{place["district"]}"'.encode(), f'"{DISTRICT}"'.encode()),
                (f'"{rep["type_code"]}"'.encode(), b'"' + _token("T") + b'"'),
                (b'"category":"' + rep["type_code"][:2].encode() + b'"',
                 b'"category":"' + _token("G") + b'"'),
                (b'"kind":"event"', b'"kind":"' + _token("K") + b'"')]
        subs += [(f'"{d}"'.encode(), b'"' + _token("D") + b'"') for d in sorted(depts)]
        times: dict[bytes, bytes] = {}
        tpl = []
        for e in evs:
            raw = orjson.dumps(e)
            for old, new in subs:
                raw = raw.replace(old, new)

            def tok(m: re.Match[bytes], times: dict[bytes, bytes] = times) -> bytes:
                t = times.setdefault(m.group(1), _token(f"t{len(times)}"))
                return b'"' + t + b'"'

            tpl.append(TIME_RE.sub(tok, raw))
        out.append(Scenario(
            events=tuple(tpl),
            offsets=tuple((datetime.fromisoformat(e["at"]) - opened).total_seconds()
                          for e in evs),
            times=tuple((t, (datetime.fromisoformat(v.decode()) - opened).total_seconds())
                        for v, t in times.items())))
    return out


@dataclass(frozen=True)
class Places:
    """What a clone is spread over: streets with their communities, incident types."""

    streets: list[tuple[str, list[str]]]
    types: list[tuple[str, str, str, str]]  # (type code, category, kind, department)


def places(geodata: str | None = None) -> Places:
    """Yangpu's streets and communities (the demo layers, or ``geodata``'s) and the
    taxonomy's incident types with their departments."""
    import pandas as pd

    from grid.taxonomy import load_taxonomy

    root = Path(geodata) if geodata else Path(__file__).parent.parent / "geodata" / "data"
    streets = pd.read_parquet(root / "streets.parquet", columns=["code", "district"])
    comms = pd.read_parquet(root / "communities.parquet", columns=["code", "street"])
    codes = sorted(str(c) for c in streets[streets["district"] == DISTRICT]["code"])
    by_street = {s: sorted(str(c) for c in comms[comms["street"] == s]["code"]) or [s + "001"]
                 for s in codes}
    tax = load_taxonomy()
    types = [(t.code, t.category, t.kind, t.department) for t in tax.types.values()
             if t.department]
    return Places(streets=list(by_street.items()), types=sorted(types))


@dataclass(frozen=True)
class Clone:
    case_id: str
    report_id: str
    opened: datetime
    street: str
    community: str
    type: tuple[str, str, str, str]
    scenario: Scenario

    def event(self, i: int) -> bytes:
        """The clone's ``i``-th event as it would be on the topic."""
        raw = self.scenario.events[i]
        code, cat, kind, dept = self.type
        for tok, val in ((b"@@C@@", self.case_id), (b"@@R@@", self.report_id),
                         (b"@@L@@", self.community + "001"), (b"@@M@@", self.community),
                         (b"@@S@@", self.street), (b"@@T@@", code), (b"@@G@@", cat),
                         (b"@@K@@", kind), (b"@@D@@", dept)):
            raw = raw.replace(tok, val.encode())
        for tok, sec in self.scenario.times:
            if tok in raw:
                raw = raw.replace(tok, (self.opened + timedelta(seconds=sec)).isoformat()
                                  .encode())
        return raw


def clones(n: int, where: Places, scen: list[Scenario], seed: int = 15,
           prefix: str = "b", start: date = QUARTER[0], days: int | None = None
           ) -> Iterator[Clone]:
    """``n`` clones opening uniformly over ``days`` (default: the quarter) from ``start``,
    in the order they open."""
    rng = random.Random(seed)
    days = days or (QUARTER[1] - QUARTER[0]).days + 1
    t0 = datetime.combine(start, datetime.min.time(), TZ)
    span = days * 86400
    opens = sorted(rng.randrange(span // 60) * 60 for _ in range(n))
    for i, sec in enumerate(opens):
        street, comms = where.streets[rng.randrange(len(where.streets))]
        yield Clone(case_id=f"{street}-{prefix}{i:011x}", report_id=f"bench-{prefix}-{i}",
                    opened=t0 + timedelta(seconds=sec), street=street,
                    community=comms[rng.randrange(len(comms))],
                    type=where.types[rng.randrange(len(where.types))],
                    scenario=scen[rng.randrange(len(scen))])


def events_in_time_order(cs: Iterator[Clone]) -> Iterator[tuple[str, bytes]]:
    """(case id, event bytes) of all clones, by event time across cases (clones must come
    in the order they open)."""
    heap: list[tuple[float, int, int, Clone]] = []
    n = 0
    for c in cs:
        t = c.opened.timestamp()
        while heap and heap[0][0] <= t:
            _, _, i, d = heapq.heappop(heap)
            yield d.case_id, d.event(i)
        for i, off in enumerate(c.scenario.offsets):
            heapq.heappush(heap, (t + off, n, i, c))
            n += 1
    while heap:
        _, _, i, d = heapq.heappop(heap)
        yield d.case_id, d.event(i)


def partition_of(case_id: str) -> int:
    return zlib.crc32(case_id.encode()) % PARTITIONS


class Log:
    """Records of the case-event topic with per-partition offsets, in batches."""

    def __init__(self, next_offsets: dict[int, int] | None = None) -> None:
        self.next = dict(next_offsets or {})

    def batches(self, events: Iterator[tuple[str, bytes]], size: int = BATCH
                ) -> Iterator[list[Any]]:
        from store.writer import Record

        batch: list[Record] = []
        for cid, raw in events:
            p = partition_of(cid)
            off = self.next.get(p, 0)
            self.next[p] = off + 1
            batch.append(Record(CASE_EVENTS, p, off, raw))
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch


# -- measurements ---------------------------------------------------------------------------


def percentile(xs: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``xs`` by the nearest-rank method."""
    if not xs:
        raise ValueError("no values")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


class LoadSampler:
    """The 1-minute load average every ``every`` seconds while it runs."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        s = self.samples or [os.getloadavg()[0]]
        return {"mean": round(statistics.fmean(s), 2), "max": round(max(s), 2)}


def baseline_apply(engine: Any, records: list[Any]) -> None:
    """The baseline: parse the records and INSERT their rows into case_events, one
    executemany in one transaction — no lookup, no fold, no case rows, no offsets. ON
    CONFLICT DO NOTHING because the log redelivers (the fixture has one event twice)."""
    from store import schema as S
    from store.writer import _event_row, _insert

    rows = [_event_row(orjson.loads(r.value)) for r in records]
    with engine.begin() as conn:
        conn.execute(_insert(conn, S.case_events).on_conflict_do_nothing(), rows)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and its live descendants: a PostgreSQL
    server's postmaster, backends and background processes."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def load(writer: Any, base: Any | None, batches: Iterator[list[Any]], events_total: int,
         log: Callable[[str], None], label: str,
         server_cpu: Callable[[], float] | None = None) -> dict[str, Any]:
    """Apply every batch with ``writer`` (and, while ``base`` is given, the baseline on the
    same batch right before); seconds inside the calls, and the CPU seconds of this process
    and (``server_cpu``: a database server's CPU seconds so far) of the server in them."""
    proj_s = base_s = proj_cpu = srv_cpu = 0.0
    n = 0
    last = time.monotonic()
    for batch in batches:
        if base is not None:
            t = time.perf_counter()
            baseline_apply(base, batch)
            base_s += time.perf_counter() - t
        c, s0 = time.process_time(), server_cpu() if server_cpu else 0.0
        t = time.perf_counter()
        writer.apply(batch)
        proj_s += time.perf_counter() - t
        proj_cpu += time.process_time() - c
        if server_cpu:
            srv_cpu += server_cpu() - s0
        n += len(batch)
        if time.monotonic() - last > 30:
            last = time.monotonic()
            log(f"  {label}: {n:,}/{events_total:,} events, projector "
                f"{n / proj_s:,.0f}/s" + (f", baseline {n / base_s:,.0f}/s" if base_s else "")
                + f", load {os.getloadavg()[0]:.1f}")
    out: dict[str, Any] = {"events": n, "projector_s": round(proj_s, 2),
                           "projector_events_per_s": round(n / proj_s) if proj_s else None,
                           "projector_cpu_s": round(proj_cpu, 2),
                           "server_cpu_s": round(srv_cpu, 2) if server_cpu else None}
    if n:  # where an event's time goes: the projector's CPU, the server's, and the rest
        out["us_per_event"] = {  # (the projector waiting on the server, or on the host)
            "wall": round(1e6 * proj_s / n, 1), "projector_cpu": round(1e6 * proj_cpu / n, 1),
            "server_cpu": round(1e6 * srv_cpu / n, 1) if server_cpu else None}
    if base is not None:
        out.update(baseline_s=round(base_s, 2),
                   baseline_events_per_s=round(n / base_s) if base_s else None,
                   ratio=round(base_s / proj_s, 3) if proj_s else None)
    return out


def query_mix(rs: Any, where: Places, now: datetime, n: int = 1000, seed: int = 7
              ) -> dict[str, Any]:
    """``n`` ``ReadStore.page(limit=50)`` calls, five kinds in turn; ms per kind."""
    rng = random.Random(seed)
    q0 = datetime.combine(QUARTER[0], datetime.min.time(), TZ)
    days = (QUARTER[1] - QUARTER[0]).days + 1
    depts = sorted({t[3] for t in where.types})
    codes = [t[0] for t in where.types]

    def district_open() -> dict[str, Any]:
        return {"district": DISTRICT, "state": "open"}

    def street() -> dict[str, Any]:
        return {"street": rng.choice(where.streets)[0]}

    def dept_overdue() -> dict[str, Any]:
        return {"department": rng.choice(depts), "overdue": True, "now": now}

    def type_range() -> dict[str, Any]:
        since = q0 + timedelta(days=rng.randrange(days - 7))
        return {"type_code": rng.choice(codes), "since": since,
                "until": since + timedelta(days=7)}

    kinds: dict[str, Callable[[], dict[str, Any]]] = {
        "district+open": district_open, "street": street,
        "department+overdue": dept_overdue, "type+week": type_range}
    ms: dict[str, list[float]] = {k: [] for k in [*kinds, "street, page 2"]}
    rows = 0
    for i in range(n):
        k = i % 5
        if k < 4:
            name, f = list(kinds.items())[k]
            t = time.perf_counter()
            page, _, _ = rs.page(limit=50, **f())
            ms[name].append((time.perf_counter() - t) * 1000)
        else:
            name, f = "street, page 2", street()
            _, cursor, _ = rs.page(limit=50, **f)  # not timed: where the user came from
            t = time.perf_counter()
            page, _, _ = rs.page(limit=50, cursor=cursor, **f)
            ms[name].append((time.perf_counter() - t) * 1000)
        rows += len(page)
    every = [x for xs in ms.values() for x in xs]

    def stats(xs: list[float]) -> dict[str, float]:
        return {"n": len(xs), "p50_ms": round(percentile(xs, 0.5), 2),
                "p99_ms": round(percentile(xs, 0.99), 2), "max_ms": round(max(xs), 2)}

    return {"all": stats(every), "by_kind": {k: stats(v) for k, v in ms.items()},
            "rows_per_page": round(rows / n, 1)}


def evaluation(rs: Any, runs: int = 3) -> dict[str, Any]:
    """Seconds of ``grid report``'s evaluation of the quarter (first run and median; one
    run when it takes over 30 s)."""
    from grid.report import evaluation_of

    secs: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        ev = evaluation_of(DISTRICT, *QUARTER, rs.evaluation)
        secs.append(time.perf_counter() - t)
        if secs[0] > 30:  # once is enough to see it is far off
            break
    return {"first_s": round(secs[0], 3), "median_s": round(statistics.median(secs), 3),
            "dispatched": ev.total.dispatched, "closed": ev.total.closed,
            "departments": len(ev.departments), "streets": len(ev.streets),
            "events": ev.events}


def worker_start(url: str, fresh: Iterator[list[Any]], names: Any, cat: Any
                 ) -> float:
    """Seconds: connect (with the migration check), load the stored positions, apply one
    new batch — what a worker or projector does before it serves."""
    from store.db import connect
    from store.writer import TOPICS, StoreWriter

    batch = next(fresh)
    t = time.perf_counter()
    engine = connect(url)
    w = StoreWriter(engine, consumer=CONSUMER, names=names, category_of=cat)
    w.load_positions([(tp, p) for tp in TOPICS for p in range(PARTITIONS)])
    w.apply(batch)
    secs = time.perf_counter() - t
    engine.dispose()
    return secs


# -- one database ---------------------------------------------------------------------------


@dataclass
class Target:
    """Where one database's stores live: the full store, the baseline's, the small one."""

    name: str
    full: str
    baseline: str
    small: str
    server_cpu: Callable[[], float] | None = None  # the server's CPU seconds so far


def run_target(tg: Target, cases: int, throughput_cases: int, where: Places,
               scen: list[Scenario], names: Any, cat: Any, queries: int,
               log: Callable[[str], None]) -> dict[str, Any]:
    from store.db import connect
    from store.reader import ReadStore
    from store.writer import StoreWriter

    out: dict[str, Any] = {"database": tg.name}
    engine, base = connect(tg.full), connect(tg.baseline)
    out["server"] = engine.dialect.server_version_info and ".".join(
        map(str, engine.dialect.server_version_info))
    w = StoreWriter(engine, consumer=CONSUMER, names=names, category_of=cat)
    w.load_positions([])
    lg = Log()
    evs = events_in_time_order(clones(cases, where, scen))
    ev_per_case = sum(len(s.events) for s in scen) / len(scen)
    log(f"{tg.name}: loading {cases:,} cases (~{cases * ev_per_case:,.0f} events), the first "
        f"{throughput_cases:,} cases' events beside the baseline")
    # the throughput part: the first throughput_cases/cases of the log (expected events),
    # each batch beside the baseline
    n_tp = round(throughput_cases * ev_per_case)
    batches = lg.batches(evs)
    def first_part() -> Iterator[list[Any]]:
        got = 0
        for b in batches:
            yield b
            got += len(b)
            if got >= n_tp:
                return

    with LoadSampler() as ls:
        out["throughput"] = load(w, base, first_part(), n_tp, log, f"{tg.name} throughput",
                                 tg.server_cpu)
    out["throughput"]["load"] = ls.summary()
    log(f"{tg.name} throughput: {orjson.dumps(out['throughput']).decode()}")
    t = time.perf_counter()
    with LoadSampler() as ls:
        out["rest"] = load(w, None, batches, round(cases * ev_per_case) - n_tp, log,
                           f"{tg.name} rest")
    out["rest"]["load"] = ls.summary()
    out["load_s"] = round(time.perf_counter() - t + out["throughput"]["projector_s"], 1)
    base.dispose()
    rs = ReadStore(engine)
    out["cases"] = rs.count()
    out["events"] = out["throughput"]["events"] + out["rest"]["events"]
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            raw.driver_connection.autocommit = True
            raw.driver_connection.execute("VACUUM ANALYZE")
            out["size_mb"] = round(raw.driver_connection.execute(
                "select pg_database_size(current_database())").fetchone()[0] / 2**20)
        finally:
            raw.close()
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        path = tg.full.removeprefix("sqlite:///")
        out["size_mb"] = round(sum(os.path.getsize(p) for p in (path, path + "-wal")
                                   if os.path.exists(p)) / 2**20)
    now = _last_time(engine)
    out["now"] = now.isoformat()
    log(f"{tg.name}: {out['cases']:,} cases, {out['events']:,} events "
        f"({out['size_mb']:,} MB); {queries:,} list queries")
    with LoadSampler(2) as ls:
        out["list"] = query_mix(rs, where, now, queries)
        out["list"]["load"] = ls.summary()
    log(f"{tg.name} list: {orjson.dumps(out['list']).decode()}")
    log(f"{tg.name}: evaluation of the quarter")
    with LoadSampler(2) as ls:
        out["evaluation"] = evaluation(rs)
        out["evaluation"]["load"] = ls.summary()
    log(f"{tg.name} evaluation: {orjson.dumps(out['evaluation']).decode()}")
    out["start"] = start_pair(engine, tg.full, tg.small, log, names, cat)
    out["start"]["full_cases"] = out["cases"]
    engine.dispose()
    return out


def _project(url: str, records: list[Any], names: Any, cat: Any, ready: Any, out: Any,
             consumer: str = CONSUMER) -> None:
    """One projector process of :func:`scaling`: its own writer over ``records`` (its
    partitions, in log order), started when every process is ready; puts (start, end,
    records, seconds inside ``apply``) on ``out``, or the failure as text."""
    from store.db import connect
    from store.writer import StoreWriter

    try:
        engine = connect(url)
        w = StoreWriter(engine, consumer=consumer, names=names, category_of=cat)
        w.load_positions([])
        batches = [records[i:i + BATCH] for i in range(0, len(records), BATCH)]
        ready.wait(timeout=600)
        t0 = time.perf_counter()
        inside = 0.0
        for b in batches:
            t = time.perf_counter()
            w.apply(b)
            inside += time.perf_counter() - t
        out.put((t0, time.perf_counter(), len(records), inside))
        engine.dispose()
    except BaseException as err:
        ready.abort()  # the others stop waiting for this one
        out.put(f"{type(err).__name__}: {err}")
        raise


def scaling(urls: dict[int, str], records: list[Any], names: Any, cat: Any,
            log: Callable[[str], None], consumer: str = CONSUMER) -> dict[str, Any]:
    """``n`` projector processes for each ``n`` of ``urls`` (each count on its own store,
    as projector group ``consumer``), process ``i`` applying the partitions ``p % n == i``
    of ``records`` in batches of :data:`BATCH`, as a consumer group spreads partitions over
    ``grid projector`` instances. Records are made before the common start; events/s = all
    records / wall seconds from the start to the last process's end."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")  # the children inherit the records, not a pickled copy
    out: dict[str, Any] = {}
    for n, url in urls.items():
        ready, done = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_project, args=(
            url, [r for r in records if r.partition % n == i], names, cat, ready, done,
            consumer)) for i in range(n)]
        with LoadSampler() as ls:
            for p in procs:
                p.start()
            res = [done.get(timeout=3600) for _ in procs]
            for p in procs:
                p.join()
        if failed := [r for r in res if isinstance(r, str)]:
            raise RuntimeError(f"{len(failed)} of {n} projector processes failed: {failed[0]}")
        wall = max(r[1] for r in res) - min(r[0] for r in res)
        out[str(n)] = {"events": sum(r[2] for r in res), "wall_s": round(wall, 2),
                       "events_per_s": round(sum(r[2] for r in res) / wall),
                       "per_process_events_per_s": [round(r[2] / r[3]) for r in res],
                       "load": ls.summary()}
        log(f"  {n} projector(s): {orjson.dumps(out[str(n)]).decode()}")
    return out


def measure_existing(url: str, queries: int = 1000, geodata: str | None = None,
                     small_url: str | None = None,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """List queries and the evaluation on a store loaded before (``--keep``), migrated to
    the newest schema first (so new indexes are built); with ``small_url`` (an empty
    store) also the worker start, small against this one. No load."""
    from bench.run import machine
    from store.db import connect
    from store.reader import ReadStore

    t = time.perf_counter()
    engine = connect(url)
    out: dict[str, Any] = {"machine": machine(), "database": engine.dialect.name,
                           "migrate_s": round(time.perf_counter() - t, 1)}
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            raw.driver_connection.autocommit = True
            raw.driver_connection.execute("VACUUM ANALYZE cases")
        finally:
            raw.close()
    rs = ReadStore(engine)
    out["cases"] = rs.count()
    now = _last_time(engine)
    log(f"{engine.dialect.name}: {out['cases']:,} cases stored; {queries:,} list queries")
    if queries:
        with LoadSampler(2) as ls:
            out["list"] = query_mix(rs, places(geodata), now, queries)
            out["list"]["load"] = ls.summary()
        log(f"list: {orjson.dumps(out['list']).decode()}")
    with LoadSampler(2) as ls:
        out["evaluation"] = evaluation(rs)
        out["evaluation"]["load"] = ls.summary()
    log(f"evaluation: {orjson.dumps(out['evaluation']).decode()}")
    if small_url:
        out["start"] = start_pair(engine, url, small_url, log)
    engine.dispose()
    return out


def start_pair(engine: Any, url: str, small_url: str, log: Callable[[str], None],
               names: Any = no_names, cat: Any = None, runs: int = 3) -> dict[str, Any]:
    """Worker start on a new store of :data:`SMALL_CASES` cases (``small_url``) and on the
    store at ``url`` (offsets of :data:`CONSUMER` continued), alternating, ``runs`` each."""
    from sqlalchemy import select

    from store import schema as S
    from store.db import connect
    from store.writer import StoreWriter

    where, scen = places(), scenarios()
    log(f"worker start: small store ({SMALL_CASES:,} cases) vs {url}")
    small = StoreWriter(connect(small_url), consumer=CONSUMER, names=names, category_of=cat)
    small.load_positions([])
    slog = Log()
    load(small, None, slog.batches(events_in_time_order(clones(SMALL_CASES, where, scen))),
         0, log, "small")
    small.engine.dispose()
    o = S.offsets.c
    with engine.connect() as conn:
        stored = dict(conn.execute(select(o.partition, o.next_offset).where(
            o.consumer == CONSUMER, o.topic == CASE_EVENTS)).all())
    lg = Log(stored)
    later = QUARTER[1] + timedelta(days=1)
    fresh_full = lg.batches(events_in_time_order(clones(
        runs * START_BATCH, where, scen, seed=99, prefix="f", start=later)), START_BATCH)
    fresh_small = slog.batches(events_in_time_order(clones(
        runs * START_BATCH, where, scen, seed=99, prefix="f", start=later)), START_BATCH)
    s_small, s_full = [], []
    for _ in range(runs):
        s_small.append(worker_start(small_url, fresh_small, names, cat))
        s_full.append(worker_start(url, fresh_full, names, cat))
    return {"small_cases": SMALL_CASES,
            "small_s": [round(x, 3) for x in s_small], "full_s": [round(x, 3) for x in s_full],
            "small_median_s": round(statistics.median(s_small), 3),
            "full_median_s": round(statistics.median(s_full), 3)}


def _last_time(engine: Any) -> datetime:
    """The time of the newest stored event: "now" for the overdue filters."""
    from sqlalchemy import func, select

    from store import schema as S

    with engine.connect() as conn:
        at = conn.execute(select(func.max(S.case_events.c.at))).scalar()
    if isinstance(at, str):  # pragma: no cover (SQLite without the type's conversion)
        at = datetime.fromisoformat(at)
    return S.UTCDateTime().process_result_value(at, engine.dialect)


def _pg_databases(pg: Any, names: list[str]) -> None:
    from sqlalchemy import create_engine

    eng = create_engine(pg.url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        for n in names:
            conn.exec_driver_sql(f'CREATE DATABASE "{n}"')
    eng.dispose()


def run(cases: int, throughput_cases: int, queries: int = 1000, geodata: str | None = None,
        databases: tuple[str, ...] = ("postgresql", "sqlite"), keep: str | None = None,
        projectors: tuple[int, ...] = (1, 2), log: Callable[[str], None] = print
        ) -> dict[str, Any]:
    """Every measurement on every database in ``databases``; one dict (see module doc).
    ``keep``: a directory that keeps the stores afterwards (PostgreSQL's data directory in
    ``keep/pg``, the SQLite files beside it) for EXPLAIN ANALYZE and the like.
    ``projectors``: on PostgreSQL, :func:`scaling` over a log of ``throughput_cases`` cases
    (over the quarter, as a run of that many cases loads them) with these numbers of
    projector processes (empty: not measured), into empty stores and then (new cases each
    time) into the loaded one."""
    from bench.run import HostSteal, machine
    from grid.taxonomy import load_taxonomy
    from store.pg_server import PostgresServer
    from streams.readmodel import category_of, names_of

    throughput_cases = min(throughput_cases, cases)
    steal = HostSteal()
    where = places(geodata)
    scen = scenarios()
    tax = load_taxonomy()
    try:
        from geodata.locator import Locator

        names = names_of(Locator.load(geodata), tax)
    except Exception as err:  # names are decoration: say so, go on
        log(f"no place names ({err}); rows get type and department names only")
        names = names_of(type("NoLayers", (), {"district_names": {}, "layers": {}})(), tax)
    res: dict[str, Any] = {
        "machine": machine(), "cases": cases, "throughput_cases": throughput_cases,
        "batch": BATCH, "start_batch": START_BATCH, "partitions": PARTITIONS,
        "queries": queries,
        "quarter": [d.isoformat() for d in QUARTER], "scenarios": len(scen),
        "streets": len(where.streets), "types": len(where.types),
        "targets": {"projector_events_per_s": 20000, "list_p99_ms": 50, "evaluation_s": 5}}
    with tempfile.TemporaryDirectory(prefix="grid-bench-store-") as tmp:
        if keep:
            tmp = keep
            Path(keep, "pg").mkdir(parents=True, exist_ok=True)
        for db in databases:
            t = time.monotonic()
            if db == "postgresql":
                with PostgresServer(data_dir=Path(keep, "pg") if keep else None) as pg:
                    _pg_databases(pg, ["baseline", "small"])
                    base = pg.url.rsplit("/", 1)[0]
                    res[db] = run_target(Target(db, pg.url, base + "/baseline", base + "/small",
                                                functools.partial(tree_cpu_s, pg.proc.pid)),
                                         cases, throughput_cases, where, scen, names,
                                         category_of(tax), queries, log)
                    if projectors:
                        log(f"{db}: {throughput_cases:,} cases' events by "
                            f"{', '.join(map(str, projectors))} projector processes")
                        _pg_databases(pg, [f"scale{n}" for n in projectors])
                        records = [r for b in Log().batches(events_in_time_order(
                            clones(throughput_cases, where, scen))) for r in b]
                        res[db]["scaling"] = scaling(
                            {n: f"{base}/scale{n}" for n in projectors}, records, names,
                            category_of(tax), log)
                        del records
                        log(f"{db}: {throughput_cases:,} new cases' events by the same "
                            "projector processes into the loaded store")
                        res[db]["scaling_loaded"] = {}
                        for n in projectors:  # new case ids each time, a group of their own
                            records = [r for b in Log().batches(events_in_time_order(clones(
                                throughput_cases, where, scen, prefix=f"s{n}-"))) for r in b]
                            res[db]["scaling_loaded"].update(scaling(
                                {n: pg.url}, records, names, category_of(tax), log,
                                consumer=f"{CONSUMER}-more-{n}"))
                            del records
            else:
                res[db] = run_target(Target(db, f"sqlite:///{tmp}/full.db",
                                            f"sqlite:///{tmp}/baseline.db",
                                            f"sqlite:///{tmp}/small.db"),
                                     cases, throughput_cases, where, scen, names,
                                     category_of(tax), queries, log)
            res[db]["wall_s"] = round(time.monotonic() - t, 1)
    res["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    res["machine"]["host_steal_pct"] = steal.pct()
    return res


def render(res: dict[str, Any]) -> str:
    """The result as a table, one column per database."""
    m = res["machine"]
    dbs = [d for d in ("postgresql", "sqlite") if d in res]
    col = 22

    def row(label: str, f: Callable[[dict[str, Any]], Any]) -> str:
        return f"{label:34}" + "".join(f"{f(res[d])!s:>{col}}" for d in dbs)

    def ms(x: dict[str, Any]) -> str:
        return f"{x['p50_ms']:.1f} / {x['p99_ms']:.1f}"

    lines = [
        f"machine: {m['nproc']} cores, {m['cpu']}, {m['ram_gb']} GB RAM, load at start "
        f"{m['load_avg']}, at end {m.get('load_avg_end')}; host CPU steal "
        f"{m.get('host_steal_pct')} % (time the hypervisor gave other guests)",
        f"{res['cases']:,} cases ({res['scenarios']} fixture scenarios cloned over "
        f"{res['streets']} Yangpu streets, {res['types']} types, {res['quarter'][0]} .. "
        f"{res['quarter'][1]}); batches of {res['batch']:,} records, "
        f"{res['partitions']} partitions",
        "",
        f"{'':34}" + "".join(f"{d:>{col}}" for d in dbs),
        row("server", lambda r: r.get("server") or "-"),
        row("cases / events stored", lambda r: f"{r['cases']:,} / {r['events']:,}"),
        row("store size MB", lambda r: f"{r['size_mb']:,}"),
        row("load, whole log (s)", lambda r: f"{r['load_s']:,}"),
        row("throughput part: events", lambda r: f"{r['throughput']['events']:,}"),
        row("  baseline INSERT events/s",
            lambda r: f"{r['throughput']['baseline_events_per_s']:,}"),
        row("  projector events/s", lambda r: f"{r['throughput']['projector_events_per_s']:,}"),
        row("  ratio projector/baseline", lambda r: f"{r['throughput']['ratio']:.2f}"),
        row("  µs an event: wall", lambda r: f"{r['throughput']['us_per_event']['wall']}"),
        row("    projector CPU", lambda r: f"{r['throughput']['us_per_event']['projector_cpu']}"),
        row("    database server CPU",
            lambda r: f"{r['throughput']['us_per_event']['server_cpu'] or '-'}"),
        row("  load mean / max", lambda r: "{mean} / {max}".format(**r["throughput"]["load"])),
        row("rest: projector events/s", lambda r: f"{r['rest']['projector_events_per_s'] or 0:,}"),
        *(row(f"{n} projector process(es) events/s",
              lambda r, n=n: f"{r['scaling'][n]['events_per_s']:,}" if n in r.get(
                  "scaling", {}) else "-")
          for n in res.get("postgresql", {}).get("scaling", {})),
        *(row(f"  … into the loaded store ({n})",
              lambda r, n=n: f"{r['scaling_loaded'][n]['events_per_s']:,}" if n in r.get(
                  "scaling_loaded", {}) else "-")
          for n in res.get("postgresql", {}).get("scaling_loaded", {})),
        row("list p50 / p99 ms (all)", lambda r: ms(r["list"]["all"])),
        *(row(f"  {k}", lambda r, k=k: ms(r["list"]["by_kind"][k]))
          for k in res[dbs[0]]["list"]["by_kind"]),
        row("  load mean / max", lambda r: "{mean} / {max}".format(**r["list"]["load"])),
        row("quarter evaluation s (1st/med)",
            lambda r: f"{r['evaluation']['first_s']:.2f} / {r['evaluation']['median_s']:.2f}"),
        row("start s, small store (median)", lambda r: f"{r['start']['small_median_s']:.3f}"),
        row("start s, full store (median)", lambda r: f"{r['start']['full_median_s']:.3f}"),
        "",
        "targets (PostgreSQL): projector >= 20,000 events/s, list p99 <= 50 ms, quarter "
        "evaluation <= 5 s, start independent of the number of cases",
    ]
    return "\n".join(lines)


