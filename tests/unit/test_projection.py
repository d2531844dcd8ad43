"""The read model: folding the event log, at-least-once input, queries."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from grid.models import CaseEvent
from grid.projection import Projection
from grid.report import read_jsonl

LOG = Path(__file__).parent.parent / "fixtures" / "events" / "district.jsonl"
CST = timezone(timedelta(hours=8))
END_OF_MARCH = datetime(2026, 4, 1, tzinfo=CST)


@pytest.fixture(scope="module")
def events() -> list[dict]:
    with LOG.open("rb") as f:
        return list(read_jsonl(f))


def by_desc(p: Projection, name: str):
    return next(c for c in p.cases.values() if c.description == f"fixture {name}")


def folded(events) -> Projection:
    p = Projection()
    p.apply_all(events)
    return p


def test_summary_fields_after_a_full_lifecycle(events):
    p = folded(events)
    a1 = by_desc(p, "A1")
    assert a1.state == "closed" and a1.closed_on_time is True
    assert (a1.district, a1.street, a1.department, a1.category) == (
        "310110", "310110001", "sanitation", "06")
    assert a1.dispatched_at == datetime(2026, 3, 2, 10, tzinfo=CST)
    assert a1.closed_at == datetime(2026, 3, 2, 16, tzinfo=CST)
    b1 = by_desc(p, "B1")
    assert (b1.returns, b1.dispatches, b1.state) == (1, 2, "closed")
    a4 = by_desc(p, "A4")
    assert a4.extensions == 1
    assert a4.deadlines["dispose"] == datetime(2026, 3, 20, 22, tzinfo=CST)  # 12:00 + 600 min
    c1 = by_desc(p, "C1")
    assert c1.self_closed and c1.tier == "self" and c1.department is None


def test_redelivery_and_any_order_give_the_same_read_model(events):
    once = folded(events)
    shuffled = list(events) * 2
    random.Random(3).shuffle(shuffled)  # duplicates, and events before their predecessors
    again = Projection()
    again.apply_all(shuffled)
    assert again.cases == once.cases
    assert again.events_applied == once.events_applied
    assert not again._pending


def test_models_and_dicts_are_both_accepted(events):
    p = Projection()
    for e in events[:10]:
        p.apply(CaseEvent.model_validate(e))
    q = Projection()
    q.apply_all(events[:10])
    assert p.cases == q.cases


def test_duplicate_event_id_is_not_applied_twice(events):
    p = Projection()
    first = events[0]
    assert p.apply(first) is True
    assert p.apply(dict(first)) is False
    assert p.counters(date(2026, 2, 27))["reported"] == 1


def test_command_rejected_is_history_not_state(events):
    p = folded(events)
    a4 = by_desc(p, "A4")
    assert a4.state == "accepted"
    hist = p.detail(a4.case_id)["history"]
    assert [h["type"] for h in hist][-1] == "command_rejected"
    assert p.apply({"event_id": "x:rejected:1", "case_id": "nope", "seq": 0,
                    "type": "command_rejected", "state_to": "rejected",
                    "at": "2026-03-01T00:00:00+08:00"}) is True
    assert "nope" not in p.cases


def test_list_filters_and_cursor_pages(events):
    p = folded(events)
    everything, cur = p.list(limit=100)
    assert cur is None and len(everything) == 11
    created = [c.created_at for c in everything]
    assert created == sorted(created, reverse=True)  # newest first
    pages, cursor = [], None
    while True:
        page, cursor = p.list(limit=3, cursor=cursor)
        pages.extend(page)
        if cursor is None:
            break
    assert [c.case_id for c in pages] == [c.case_id for c in everything]
    assert {c.street for c in p.list(street="310110002", limit=100)[0]} == {"310110002"}
    assert {c.district for c in p.list(district="310105")[0]} == {"310105"}
    open_ = p.list(state="open", limit=100)[0]
    assert {by_desc(p, n).case_id for n in ("A4", "B2", "B4")} == {c.case_id for c in open_}
    closed = p.list(state=["closed"], department="roads", limit=100)[0]
    assert {c.description for c in closed} == {"fixture B1", "fixture B3"}
    late = p.list(overdue=True, now=END_OF_MARCH, limit=100)[0]
    assert [c.description for c in late] == ["fixture A4"]
    with pytest.raises(ValueError):
        p.list(overdue=True)


def test_overdue_sorted_by_lateness(events):
    p = folded(events)
    later = datetime(2026, 4, 20, tzinfo=CST)  # B2 due 04-15 09:00, B4 04-03 09:00, A4 03-20
    assert [c.description for c in p.overdue(later)] == [
        "fixture A4", "fixture B4", "fixture B2"]
    assert p.overdue(datetime(2026, 3, 20, 21, tzinfo=CST)) == []


def test_counters_of_a_day(events):
    p = folded(events)
    c = p.counters(date(2026, 3, 4), now=END_OF_MARCH)
    assert c == {"reported": 1, "filed": 0, "self_closed": 1, "dispatched": 0, "closed": 1,
                 "overdue": 1, "merged": 0}
    c = p.counters(date(2026, 3, 3))  # B1: filed, dispatched, redispatched, closed
    assert (c["reported"], c["filed"], c["dispatched"], c["closed"]) == (1, 1, 1, 1)  # cases


def test_tier_flow_open_counts_and_work_orders(events):
    p = folded(events)
    flow = p.tier_flow()
    assert flow["self"] == {"total": 1, "open": 0, "closed": 1, "escalated": 0}
    assert flow["street"]["total"] == 10 and flow["street"]["open"] == 3
    assert p.open_counts() == {("310110", "310110002", "accepted"): 1,
                               ("310110", "310110002", "dispatched"): 2}
    wo = p.work_orders("roads")
    assert [w["case_id"] for w in wo] == [by_desc(p, "B2").case_id, by_desc(p, "B4").case_id]
    assert wo[0]["work_order_id"].endswith(":1")
    assert p.work_orders("sanitation")[0]["state"] == "accepted"


def test_summary_json_and_report_index(events):
    p = folded(events)
    a4 = by_desc(p, "A4")
    d = json.loads(json.dumps(a4.to_dict(END_OF_MARCH)))
    assert d["overdue"] is True and d["stage"] == "dispose"
    assert d["late_seconds"] == int(timedelta(days=11, hours=2).total_seconds())
    rid = next(e["data"]["report"]["report_id"] for e in events
               if e["case_id"] == a4.case_id and e["type"] == "reported")
    assert p.case_for_report(rid) == a4.case_id
    det = p.detail(a4.case_id, END_OF_MARCH)
    assert det["decision"]["winner"] == "fixture"
    assert det["report"]["report_id"] == rid


def test_detail_is_bounded():
    p = Projection(keep_detail=2)
    with LOG.open("rb") as f:
        p.apply_all(read_jsonl(f))
    kept = [cid for cid in p.cases if p.detail(cid)["history_kept"]]
    assert len(kept) == 2 and len(p.cases) == 11


def test_alerts_are_idempotent_and_bounded():
    p = Projection(keep_alerts=3)
    for i in range(5):
        assert p.apply_alert({"alert_id": f"a{i}", "case_id": "c"})
    assert p.apply_alert({"alert_id": "a4", "case_id": "c"}) is False
    assert [a["alert_id"] for a in p.alerts] == ["a2", "a3", "a4"]
    assert p.apply_alert({"alert_id": "a0", "case_id": "c"}) is True  # evicted: seen anew
