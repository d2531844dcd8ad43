"""The read model's drill-down queries: the cases behind a day's counter, search, open and
overdue cases per street (the dashboard's case lists and street map)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from grid.projection import Projection
from grid.report import read_jsonl

LOG = Path(__file__).parent.parent / "fixtures" / "events" / "district.jsonl"
CST = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def p() -> Projection:
    with LOG.open("rb") as f:
        events = list(read_jsonl(f))
    proj = Projection()
    proj.apply_all(events)
    a2 = next(c for c in proj.cases.values() if c.description == "fixture A2")
    proj.apply({"event_id": f"{a2.case_id}:merge", "case_id": a2.case_id, "seq": a2.seq + 1,
                "type": "merged", "state_from": a2.state, "state_to": a2.state,
                "actor": "system", "role": "system", "at": "2026-03-06T11:00:00+08:00",
                "data": {"report_id": "dup-report-1", "reporter_id": "sup-9"}})
    return proj


def names(cases) -> list[str]:
    return [c.description.removeprefix("fixture ") for c in cases]


def test_day_cases_match_the_day_counters(p):
    day = date(2026, 3, 3)  # B1: reported, filed, dispatched, returned, re-dispatched, closed
    counters = p.counters(day)
    assert counters["dispatched"] == 1  # cases: B1's re-dispatch is not a second one
    for key in ("reported", "filed", "dispatched", "closed"):
        assert names(p.day_cases(day, key)) == ["B1"], key
        assert counters[key] == 1, key
    assert p.day_cases(day, "self_closed") == [] and counters["self_closed"] == 0
    assert names(p.day_cases(date(2026, 3, 4), "self_closed")) == ["C1"]


def test_day_cases_merged_overdue_and_district(p):
    assert names(p.day_cases(date(2026, 3, 6), "merged")) == ["A2"]
    assert p.counters(date(2026, 3, 6))["merged"] == 1
    assert names(p.day_cases(date(2026, 3, 6), "reported")) == ["D1"]
    assert p.day_cases(date(2026, 3, 6), "reported", district="310110") == []
    later = datetime(2026, 4, 20, tzinfo=CST)
    assert names(p.day_cases(date(2026, 4, 20), "overdue", now=later)) == ["A4", "B4", "B2"]
    with pytest.raises(ValueError, match="no counter 'opened'"):
        p.day_cases(date(2026, 3, 3), "opened")
    with pytest.raises(ValueError, match="need now"):
        p.day_cases(date(2026, 3, 3), "overdue")


def test_search_by_case_id_report_id_prefix_and_text(p):
    b1 = next(c for c in p.cases.values() if c.description == "fixture B1")
    assert names(p.search(b1.case_id)) == ["B1"]
    assert names(p.search("aed7615f-d12f-5724-b7ea-9c268737e227")) == ["B1"]  # its report
    assert names(p.search("dup-report-1")) == ["A2"]  # a merged duplicate's report id
    assert names(p.search("310110002-")) == ["B4", "A4", "B2", "A3"]  # prefix, newest first
    assert names(p.search("  FIXTURE b")) == ["B4", "B2", "B1", "B3"]  # text, any case
    assert names(p.search("fixture", district="310105")) == ["D1"]
    assert len(p.search("fixture", limit=3)) == 3
    assert p.search("") == [] and p.search("no such thing") == []


def test_open_and_overdue_per_street(p):
    later = datetime(2026, 4, 20, tzinfo=CST)
    assert p.open_by_street(later) == {"310110002": {"open": 3, "overdue": 3}}
    early = datetime(2026, 3, 21, tzinfo=CST)  # B2, B4, A4 open; only A4 past due then
    assert p.open_by_street(early, district="310110") == {
        "310110002": {"open": 3, "overdue": 1}}
    assert p.open_by_street(later, district="310105") == {}
