"""Duplicate reports: same type, within 50 m and 24 h of an open case -> merged into it."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from grid import lifecycle
from grid.models import Action, Command, Placement
from rules import decide, find_duplicate, haversine_m, load_ruleset
from tests.unit.test_rules import NOW, place, report


@pytest.fixture(scope="module")
def rs():
    return load_ruleset()


def shifted(p: Placement, metres_east: float) -> Placement:
    dlon = metres_east / (111_320 * math.cos(math.radians(p.lat)))
    return p.model_copy(update={"lon": p.lon + dlon})


def open_case(rs, name="manhole_cover.json", p=None, **changes):
    r = report(name, **changes)
    p = p or place()
    return lifecycle.open_case(r, p, decide(r, p, NOW, rs), NOW)[0]


def test_haversine_is_metric():
    assert haversine_m(121.5, 31.3, 121.5, 31.3) == 0
    one_degree_lat = haversine_m(121.5, 31.0, 121.5, 32.0)
    assert 111_000 < one_degree_lat < 111_400


def test_second_report_within_50m_and_24h_is_merged(rs):
    first = open_case(rs)
    again = report("manhole_cover_again.json")
    p = shifted(place(), 30)
    assert find_duplicate(again, p, "0101", [first], rs) is first
    merged, _ = lifecycle.apply(first, Command(
        command_id=f"merge:{again.rid}", case_id=first.case_id, action=Action.MERGE,
        actor="engine", role="system", report_id=again.rid, at=NOW), NOW)
    assert merged.report_ids == [first.report.rid, again.rid]  # the case counts its reports
    assert find_duplicate(again, p, "0101", [merged], rs) is None  # a report is not its own dup


def test_too_far_other_type_or_too_late_is_not_a_duplicate(rs):
    first = open_case(rs)
    again = report("manhole_cover_again.json")
    assert find_duplicate(again, shifted(place(), 60), "0101", [first], rs) is None
    assert find_duplicate(again, shifted(place(), 10), "0110", [first], rs) is None
    late = report("manhole_cover_again.json", reported_at="2025-03-04T10:00:00+08:00")
    assert find_duplicate(late, shifted(place(), 10), "0101", [first], rs) is None
    assert find_duplicate(again, place(), None, [first], rs) is None


def test_closed_cases_take_no_duplicates(rs):
    closed = open_case(rs, "poster_with_evidence.json")
    assert not closed.is_open
    r = report("poster_with_evidence.json", report_id="0b7f5a0e-00ff-4c55-9a55-2b1f0d9e7a10")
    assert find_duplicate(r, place(), "0701", [closed], rs) is None


def test_nearest_open_case_wins_deterministically(rs):
    base = place()
    far = open_case(rs, p=shifted(base, 40), report_id="0b7f5a0e-0101-4c55-9a55-2b1f0d9e7a10")
    near = open_case(rs, p=shifted(base, 5), report_id="0b7f5a0e-0102-4c55-9a55-2b1f0d9e7a10")
    again = report("manhole_cover_again.json")
    assert find_duplicate(again, base, "0101", [far, near], rs) is near
    assert find_duplicate(again, base, "0101", [near, far], rs) is near
    twin = near.model_copy(update={"case_id": near.case_id + "b",
                                   "created_at": near.created_at + timedelta(seconds=1)})
    assert find_duplicate(again, base, "0101", [twin, near], rs) is near  # older wins ties


def test_per_type_limits(rs):
    first = open_case(rs, "illegal_construction.json")
    later = report("illegal_construction.json", report_id="0b7f5a0e-0201-4c55-9a55-2b1f0d9e7a10",
                   reported_at="2025-03-05T09:00:00+08:00")
    assert find_duplicate(later, shifted(place(), 15), "0801", [first], rs) is first  # 72 h
    assert find_duplicate(later, shifted(place(), 30), "0801", [first], rs) is None  # 20 m
