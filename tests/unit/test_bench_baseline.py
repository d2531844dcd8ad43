"""The raw baseline of ``grid bench`` (bench/baseline.py) produces the engine's message mix in
two hops, the driver accounts for its output like the engine's, and the bench's summary and
table name each ratio (bench/run.py, bench/cli.py)."""

from __future__ import annotations

import json
import statistics
import uuid

import orjson
import pytest

from bench import baseline as B
from bench.cli import render
from bench.driver import accounted_id, first_baseline_work_order
from bench.mix import case_suffix
from bench.run import PHASES, summary

PROFILE = {"counts": {"located": 0.98, "event": 2.45, "work_order": 0.65, "alert": 0.04,
                      "changelog_case": 0.96, "changelog_index": 0.96, "dlq": 0.02},
           "sizes": {"located": 900, "event": 1200, "work_order": 700, "alert": 400,
                     "changelog_case": 2500, "changelog_index": 40, "dlq": 500}}


def report(i: int) -> bytes:
    return json.dumps({"report_id": f"r-{i}", "type_code": "0101",
                       "location": {"lon": 121.5, "lat": 31.3}}).encode()


def test_intake_hop_writes_one_located_message_or_a_dead_letter():
    p = B.Plan(PROFILE)
    [(topic, key, value)] = p.intake(report(1))
    assert (topic, key) == ("bench.located.v1", b"r-1")
    assert orjson.loads(value)["report"]["report_id"] == "r-1"
    assert abs(len(value) - 900) < 120  # the engine's mean located size
    [(topic, key, value)] = p.intake(b"{not json")
    assert (topic, key) == ("bench.dlq.v1", None)
    assert orjson.loads(value)["reason"] == "invalid"
    [(topic, _k, _v)] = p.intake(b'{"report_id": "r-2"}')  # no location
    assert topic == "bench.dlq.v1"


def test_cases_hop_produces_the_engines_counts_per_valid_report_on_average():
    p = B.Plan(PROFILE)
    n = 4000
    by_kind: dict[str, list[int]] = {}
    for i in range(n):
        [(_t, _k, located)] = p.intake(report(i))
        for topic, key, value in p.cases(located):
            assert key == f"r-{i}".encode()
            by_kind.setdefault(topic, []).append(len(value))
    valid = 1 - PROFILE["counts"]["dlq"]
    for kind in ("event", "work_order", "alert", "changelog_case", "changelog_index"):
        got = len(by_kind[B.topic_of(kind)]) / n
        assert got == pytest.approx(PROFILE["counts"][kind] / valid, rel=0.05), kind
    assert statistics.mean(by_kind["bench.changelog-case.v1"]) == pytest.approx(2500, rel=0.05)
    assert statistics.mean(by_kind["bench.event.v1"]) == pytest.approx(1200, rel=0.15)
    assert "bench.located.v1" not in by_kind  # the located hop is the intake's only


def test_driver_accounts_for_the_baselines_first_event_and_matches_its_work_order():
    p = B.Plan(PROFILE)
    rid = str(uuid.uuid4())
    raw = json.dumps({"report_id": rid, "location": {"lon": 121.5, "lat": 31.3}}).encode()
    out = p.handle(raw)
    assert out[0][0] == "bench.located.v1"
    events = [v for t, _k, v in out if t == "bench.event.v1"]
    assert accounted_id(events[0]) == rid
    assert [accounted_id(v) for v in events[1:]] == [None] * (len(events) - 1)
    orders = [v for t, _k, v in out if t == "bench.work-order.v1"]
    if orders:
        assert first_baseline_work_order(orders[0]) == case_suffix(rid)


def test_plan_leaves_out_the_dead_letters_and_the_located_hop():
    per = B.plan(PROFILE["counts"], 0.98)
    assert set(per) == {"event", "work_order", "alert", "changelog_case", "changelog_index"}
    assert per["event"] == pytest.approx(2.5)
    assert [B.how_many(0.25, h) for h in (0, 2499, 2500, 9999)] == [1, 1, 0, 0]


def test_transactional_ids_are_per_hop_and_input_partition():
    hop = B.TxnHop("127.0.0.1:9092", "bench-x-cases", "bench.located.v1", lambda v: [])
    assert [hop.transactional_id(p) for p in (0, 7)] == ["bench-x-cases-0", "bench-x-cases-7"]


def rates(rps: float, complete: bool = True) -> dict:
    return {"seconds": 10.0, "reports_per_s": rps, "msgs_per_s": rps * 6, "complete": complete,
            "cpu_s": 9.0, "peak_rss_mb": 100.0}


def lat(p50: float, p99: float) -> dict:
    return {"offered_rate": 1000.0, "achieved_rate": 990.0, "sent": 10_000,
            "work_orders": 6000, "p50_ms": p50, "p95_ms": p99 - 1, "p99_ms": p99,
            "max_ms": p99 + 5}


def test_summary_gives_the_ratio_against_the_transactional_baseline_and_the_eos_cost():
    res = {"baseline": rates(2000.0), "baseline_txn": rates(1600.0), "engine": rates(1400.0),
           "latency": lat(12.0, 45.0), "baseline_latency": lat(8.0, 20.0),
           "baseline_txn_latency": lat(10.0, 30.0), "passthrough_latency": lat(3.0, 15.0)}
    s = summary(res)
    assert (s["ratio"], s["ratio_plain"], s["exactly_once_cost"]) == (0.875, 0.7, 0.8)
    assert (s["p50_ms"], s["p99_ms"], s["baseline_txn_p99_ms"], s["passthrough_p99_ms"]) == (
        12.0, 45.0, 30.0, 15.0)
    assert s["complete"] is True and s["ratio_two_workers"] is None
    res["baseline_txn"]["complete"] = False
    assert summary(res)["complete"] is False


def test_two_engine_workers_get_their_own_ratio_and_rows():
    res = {"baseline_txn": rates(1600.0), "engine": rates(1000.0), "engine_2": rates(1400.0),
           "latency": lat(12.0, 45.0) | {"worker_cpu_share": 0.5},
           "engine_2_latency": lat(11.0, 40.0) | {"worker_cpu_share": 0.9},
           "worker_peak_rss_mb": 900.0,
           "machine": {"nproc": 2, "cpu": "Xeon", "ram_gb": 23.5, "load_avg": [1.0] * 3},
           "broker": {"name": "Apache Kafka 4.1.1"}, "geodata": "city", "cells": 930_372,
           "reports": 20_000, "profile": {"per_input": 6.1}}
    s = summary(res)
    assert (s["ratio"], s["ratio_two_workers"]) == (0.625, 0.875)
    text = render(res | s)
    assert "two workers / transactional baseline: 0.88" in text
    assert [ln.split(",")[0] for ln in text.splitlines()
            if ln.startswith("engine, two workers")] == ["engine", "engine"]


def test_summary_and_table_of_a_run_with_some_phases_only():
    res = {"passthrough_latency": lat(3.0, 15.0), "latency": lat(30.0, 80.0) | {
        "worker_cpu_share": 0.5}, "worker_peak_rss_mb": 700.0,
        "machine": {"nproc": 2, "cpu": "Xeon", "ram_gb": 23.5, "load_avg": [3.0, 3.0, 3.0]},
        "broker": {"name": "Apache Kafka 4.1.1"}, "geodata": "city", "cells": 930_372,
        "reports": 0, "profile": {"per_input": 6.1}}
    s = summary(res)
    assert (s["ratio"], s["exactly_once_cost"], s["engine_rate"]) == (None, None, None)
    assert s["complete"] is False  # nothing was counted
    text = render(res | s)
    assert "ratio engine / transactional baseline: — (target ≥ 0.8)" in text
    assert "passthrough" in text and "baseline txn" not in text
    assert [ln.split()[0] for ln in text.splitlines() if ln.endswith("6,000")] == [
        "passthrough", "engine"]
    assert PHASES == ("baseline", "baseline_txn", "passthrough", "engine")


def test_stages_split_a_reports_latency_at_the_located_hop():
    from bench.stages import Observer, located_report

    rid = "r-9"
    located = orjson.dumps({"report": {"report_id": rid}, "decision": {}})
    assert located_report(located) == case_suffix(rid)
    assert located_report(b'{"pad": "x"}') is None
    obs = Observer()
    s = case_suffix(rid)
    for i, t in enumerate((100.000, 100.004, 100.016, 100.019, 100.030)):
        obs.note(s, i, t)
    obs.note(s, 2, 200.0)  # read again later: the first time counts
    obs.note("other", 0, 100.0)  # never made it through: left out
    b = obs.breakdown()
    assert {k: v["p50_ms"] for k, v in b.items()} == {
        "intake": 4.0, "commit 1": 12.0, "hop 2": 3.0, "commit 2": 11.0, "total": 30.0,
        "reports": 1}


def test_transactional_hop_tells_what_its_transactions_took(capsys):
    hop = B.TxnHop("127.0.0.1:9092", "bench-x-intake", B.IN_TOPIC, lambda v: [])
    hop.timings = [(2, 0.005, 0.110, 0.020), (4, 0.007, 0.120, 0.030)]
    hop.tell()
    assert capsys.readouterr().err.strip() == (
        "bench-x-intake: 2 transactions; records p50 4 p99 4, send+ack ms p50 7.0 p99 7.0, "
        "offsets ms p50 120.0 p99 120.0, commit ms p50 30.0 p99 30.0")
    assert hop.timings == []
    hop.tell()  # nothing since: says nothing
    assert capsys.readouterr().err == ""
    assert "pipelined" in B.MODES
