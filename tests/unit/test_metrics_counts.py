"""Domain counters count reports and output once, not deliveries (pure: the engine in-process,
a GridMetrics on its own registry)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from grid.service import Engine
from streams.metrics import GridMetrics

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def located(engine: Engine, type_code: str = "0101", source: str = "supervisor"):
    raw = orjson.dumps({
        "schema": "grid.report/1", "report_id": str(uuid.uuid4()), "source": source,
        "reporter_id": "sup-1", "reported_at": "2026-11-23T09:30:00+08:00",
        "location": {"lon": 121.5262, "lat": 31.2708, "crs": "gcj02"}, "type_code": type_code,
        "description": "井盖缺失"})
    (msg,), dead = engine.intake([raw], NOW)
    assert not dead
    return msg


def value(m: GridMetrics, name: str, **labels: str) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


def test_a_redelivered_report_is_counted_once(engine):
    m = GridMetrics()
    msg = located(engine)
    m.listener("intake", located=[msg])
    first = engine.on_located(msg, None, (), NOW)
    m.listener("effects", fx=first)
    # the same report read again after a crash: its output is re-emitted, same ids
    m.listener("intake", located=[msg])
    again = engine.on_located(msg, first.case, (), NOW)
    assert again.duplicate_delivery and again.work_orders == first.work_orders
    m.listener("effects", fx=again)
    assert value(m, "grid_reports_total", source="supervisor", category="01") == 1
    assert value(m, "grid_work_orders_total", department=first.work_orders[0].department,
                 priority=first.work_orders[0].priority) == 1
    assert value(m, "grid_case_events_total", type="reported") == 1
    assert value(m, "grid_dispatch_latency_seconds_count") == 1


def test_a_merged_duplicate_counts_as_a_report(engine):
    m = GridMetrics()
    a, b = located(engine, source="supervisor"), located(engine, source="citizen")
    fx_a = engine.on_located(a, None, (), NOW)
    fx_b = engine.on_located(b, None, [fx_a.case], NOW)
    assert fx_b.merged_into == fx_a.case.case_id
    for fx in (fx_a, fx_b):
        m.listener("effects", fx=fx)
    assert value(m, "grid_reports_total", source="supervisor", category="01") == 1
    assert value(m, "grid_reports_total", source="citizen", category="01") == 1
    assert value(m, "grid_duplicates_merged_total") == 1
