"""``grid bench store``'s several-projector measurement (bench/store.py ``scaling``) on a real
PostgreSQL: each process applies its own partitions, and together they store every event
of the log once, as one projector does."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bench.store import Log, clones, events_in_time_order, scaling, scenarios
from store import schema as S
from store.db import connect
from store.reader import ReadStore
from tests.conftest import pg_database, unique_name
from tests.unit.test_bench_store import WHERE


def test_two_projector_processes_store_the_log_once_as_one_does(postgres):
    records = [r for b in Log().batches(events_in_time_order(
        clones(300, WHERE, scenarios(), seed=3))) for r in b]
    lines: list[str] = []
    with pg_database(postgres, "scale") as one, pg_database(postgres, "scale") as two:
        urls = {1: one, 2: two}
        for url in urls.values():
            connect(url).dispose()  # migrated before the processes start
        out = scaling(urls, records, lambda kind, code: None, None, lines.append)
        _check(out, records, urls, lines)


def _check(out: dict, records: list, urls: dict[int, str], lines: list[str]) -> None:
    """Both counts stored every event once, the same cases, and each partition's offset."""
    n_events = len({r.value for r in records})  # the fixture repeats one event
    for n in (1, 2):
        assert out[str(n)]["events"] == len(records)
        assert len(out[str(n)]["per_process_events_per_s"]) == n
        assert out[str(n)]["events_per_s"] > 0
    stores = {n: connect(url) for n, url in urls.items()}
    try:
        stored = {}
        for n, eng in stores.items():
            with eng.connect() as conn:
                stored[n] = sorted(conn.execute(sa.select(
                    S.case_events.c.event_id, S.case_events.c.state_to)).all())
        assert len(stored[1]) == n_events == len(stored[2])
        assert stored[1] == stored[2]
        assert ReadStore(stores[1]).count() == ReadStore(stores[2]).count() == 300
        cases = {}
        for n, eng in stores.items():  # the same cases in the same states and counts
            with eng.connect() as conn:
                cases[n] = sorted(conn.execute(sa.select(
                    S.cases.c.case_id, S.cases.c.state, S.cases.c.closed_at)).all())
        assert cases[1] == cases[2]
        assert {state for _, state, _ in cases[2]} >= {"closed", "dispatched"}
        # every partition's offset was moved to its end by the process that applied it
        with stores[2].connect() as conn:
            pos = dict(conn.execute(sa.select(S.offsets.c.partition,
                                              S.offsets.c.next_offset)).all())
        assert pos == {p: sum(1 for r in records if r.partition == p)
                       for p in {r.partition for r in records}}
    finally:
        for eng in stores.values():
            eng.dispose()
    assert [ln.split(":")[0].strip() for ln in lines] == ["1 projector(s)", "2 projector(s)"]


def test_projectors_of_a_group_of_their_own_add_new_cases_to_a_loaded_store(postgres):
    """The loaded-store count: new cases by two processes in projector group ``other`` go
    into a store another group filled; both logs' events are stored once, each group's
    offsets are its own."""
    first = [r for b in Log().batches(events_in_time_order(
        clones(100, WHERE, scenarios(), seed=3))) for r in b]
    more = [r for b in Log().batches(events_in_time_order(
        clones(100, WHERE, scenarios(), seed=3, prefix="s2-"))) for r in b]
    with pg_database(postgres, "loaded") as url:
        connect(url).dispose()
        scaling({1: url}, first, lambda kind, code: None, None, lambda line: None)
        out = scaling({2: url}, more, lambda kind, code: None, None, lambda line: None,
                      consumer="other")
        assert out["2"]["events"] == len(more)
        eng = connect(url)
        try:
            assert ReadStore(eng).count() == 200
            with eng.connect() as conn:
                n = conn.scalar(sa.select(sa.func.count()).select_from(S.case_events))
                ends = dict(conn.execute(sa.select(S.offsets.c.consumer, sa.func.sum(
                    S.offsets.c.next_offset)).group_by(S.offsets.c.consumer)).all())
        finally:
            eng.dispose()
    assert n == len({r.value for r in first}) + len({r.value for r in more})
    assert ends == {"bench-projector": len(first), "other": len(more)}


def test_a_projector_process_that_fails_fails_the_measurement_with_its_error(postgres):
    records = [r for b in Log().batches(events_in_time_order(
        clones(5, WHERE, scenarios(), seed=3))) for r in b]
    missing = postgres.rsplit("/", 1)[0] + "/" + unique_name("absent").replace("-", "_")
    with pytest.raises(RuntimeError, match=r"2 of 2 projector processes failed: "
                                           r"OperationalError.*does not exist"):
        scaling({2: missing}, records, lambda kind, code: None, None, lambda line: None)


def test_load_tells_the_projector_s_cpu_and_the_database_server_s_apart(postgres):
    """The throughput part counts, besides the seconds inside the projector's calls, the CPU
    seconds of the projector and of the PostgreSQL server in them (its postmaster's process
    tree), and the baseline stores the same events."""
    import functools

    import psutil

    from bench.store import load, tree_cpu_s
    from store.writer import StoreWriter

    batches = list(Log().batches(events_in_time_order(
        clones(300, WHERE, scenarios(), seed=5)), size=400))
    n = sum(map(len, batches))
    with pg_database(postgres, "load") as url, pg_database(postgres, "base") as base_url:
        engine, base = connect(url), connect(base_url)
        with engine.connect() as conn:
            backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        server = functools.partial(tree_cpu_s, psutil.Process(backend).parent().pid)
        assert server() > 0
        w = StoreWriter(engine, consumer="bench-test")
        w.load_positions([])
        res = load(w, base, iter(batches), n, lambda line: None, "test", server)
        assert res["events"] == n
        assert 0 < res["projector_cpu_s"] <= res["projector_s"] + 0.05
        assert res["server_cpu_s"] > 0
        per, tol = res["us_per_event"], 1e6 * 0.005 / n + 0.1  # seconds are rounded to 0.01
        assert per["wall"] == pytest.approx(1e6 * res["projector_s"] / n, abs=tol)
        assert per["projector_cpu"] == pytest.approx(1e6 * res["projector_cpu_s"] / n, abs=tol)
        assert per["server_cpu"] == pytest.approx(1e6 * res["server_cpu_s"] / n, abs=tol)
        with base.connect() as conn:  # the baseline stored each event of the log once
            assert conn.scalar(sa.select(sa.func.count()).select_from(S.case_events)) == len(
                {r.value for b in batches for r in b})
        assert ReadStore(engine).count() == 300
        engine.dispose()
        base.dispose()
