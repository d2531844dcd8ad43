"""CaseStore over plain dicts: open index, duplicate-search buckets, cache (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from grid.lifecycle import apply, open_case
from grid.models import Action, Command, Decision, Placement, Report
from streams.state import CaseStore

NOW = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


def case_at(lon: float, lat: float, type_code: str = "0603"):
    report = Report.model_validate(dict(
        report_id=str(uuid.uuid4()), source="supervisor", reporter_id="s", reported_at=NOW,
        location={"lon": lon, "lat": lat}, type_code=type_code))
    place = Placement(lon=lon, lat=lat, crs="wgs84", district="310110", street="310110001")
    decision = Decision(type_code=type_code, department="landscaping", tier="street",
                        priority="normal", handling="self_disposable",
                        deadlines={"dispose": NOW + timedelta(days=3)})
    return open_case(report, place, decision, NOW)[0]


def test_near_finds_cases_within_radius_only_and_drops_closed():
    store = CaseStore({}, {})
    here = case_at(121.5200, 31.2700)
    close_by = case_at(121.5204, 31.2702)  # ~45 m
    far = case_at(121.5300, 31.2700)  # ~950 m
    other_type = case_at(121.5200, 31.2700, "0602")
    for c in (here, close_by, far, other_type):
        store.put(c, c.report_ids)
    found = {c.case_id for c in store.open_cases_near("310110001", "0603", 121.5201, 31.2701, 50)}
    assert found == {here.case_id, close_by.case_id}
    wide = {c.case_id for c in store.open_cases_near("310110001", "0603", 121.52, 31.27, 1200)}
    assert far.case_id in wide and other_type.case_id not in wide
    closed, _ = apply(here, Command(command_id="x", case_id=here.case_id,
                                    action=Action.SELF_DISPOSE, actor="s", role="supervisor",
                                    evidence_photos=["https://img/e.jpg"]), NOW)
    assert not closed.is_open
    store.put(closed)
    found = {c.case_id for c in store.open_cases_near("310110001", "0603", 121.5201, 31.2701, 50)}
    assert found == {close_by.case_id}


def test_index_is_rebuilt_from_the_table_after_invalidate():
    cases: dict = {}
    store = CaseStore(cases, {})
    c = case_at(121.51, 31.28)
    store.put(c, c.report_ids)
    fresh = CaseStore(cases, {})  # e.g. a new owner after a rebalance
    assert [x.case_id for x in fresh.open_cases_near("310110001", "0603", 121.51, 31.28, 50)] \
        == [c.case_id]
    assert fresh.case_for_report(c.report_ids[0]) is None  # report index lives in its own table
    store.invalidate()
    assert store.get(c.case_id) == c and store.open_count() == 1


def test_due_for_check_yields_cases_from_their_warning_time_until_closed():
    store = CaseStore({}, {}, warn_share=0.5)
    c = case_at(121.52, 31.27)  # dispose due in 3 days: warning time after 1.5 days
    early = case_at(121.53, 31.27)
    early = early.model_copy(update={"deadlines": {"dispose": NOW + timedelta(hours=2)}})
    store.put(c, c.report_ids)
    store.put(early, early.report_ids)
    due = lambda t: {e.case_id for e in store.due_for_check(t)}  # noqa: E731
    assert due(NOW) == set()
    assert due(NOW + timedelta(hours=1)) == {early.case_id}
    assert due(NOW + timedelta(hours=1, minutes=1)) == {early.case_id}  # stays due
    assert due(NOW + timedelta(days=2)) == {early.case_id, c.case_id}
    closed, _ = apply(early, Command(command_id="y", case_id=early.case_id,
                                     action=Action.SELF_DISPOSE, actor="s", role="supervisor",
                                     evidence_photos=["https://img/e.jpg"]), NOW)
    store.put(closed)
    assert due(NOW + timedelta(days=2)) == {c.case_id}
    later = c.model_copy(update={"deadlines": {"dispose": NOW + timedelta(days=30)}})
    store.put(later)  # e.g. an extension: due again only from its new warning time
    assert due(NOW + timedelta(days=2)) == set()
    assert due(NOW + timedelta(days=15, hours=1)) == {c.case_id}
