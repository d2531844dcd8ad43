"""Scenarios of the rules layer through ``rules.decide`` (pure; placements built directly)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from grid.models import Placement, Report
from grid.taxonomy import default_taxonomy
from rules import decide, load_ruleset

REPORTS = Path(__file__).parents[1] / "fixtures" / "rules" / "reports"
CST = timezone(timedelta(hours=8))
NOW = datetime(2025, 3, 3, 10, 0, tzinfo=CST)  # a Monday morning


def report(name: str, **changes: object) -> Report:
    data = json.loads((REPORTS / name).read_text(encoding="utf-8"))
    data.update(changes)
    return Report.model_validate(data, context={"taxonomy": default_taxonomy()})


def place(*zones: str, street: str = "310110001") -> Placement:
    return Placement(lon=121.514, lat=31.299, crs="wgs84", district=street[:6], street=street,
                     community=street + "001", cell=street + "001001", zones=list(zones))


@pytest.fixture(scope="module")
def rs():
    return load_ruleset()


def test_manhole_cover_is_urgent_with_alert_and_two_hours(rs):
    d = decide(report("manhole_cover.json"), place(), NOW, rs)
    assert (d.priority, d.alert, d.handling) == ("urgent", True, "key_supervision")
    assert d.department == "roads" and not d.self_closed
    assert d.calendar == "24h"
    assert d.deadlines["dispose"] - NOW == timedelta(hours=2)
    assert "route.key-supervision" in d.rules and "deadline.key-supervision" in d.rules
    assert d.ruleset_version == rs.version and rs.version.startswith("sha256:")
    assert d.inputs["type_code"] == "0101"
    assert any("priority urgent <- route.key-supervision" in line for line in d.explanation)


def test_manhole_owner_from_component_id(rs):
    d = decide(report("water_manhole.json"), place(), NOW, rs)
    assert d.department == "water" and d.winner == "route.owner.water"
    assert d.priority == "urgent" and d.alert  # still key supervision


def test_poster_with_evidence_self_closes_without_department(rs):
    d = decide(report("poster_with_evidence.json"), place(), NOW, rs)
    assert d.self_closed and d.tier == "self" and d.department is None
    assert d.deadlines == {} and d.rules == ["self.on-the-spot"]
    assert d.handling == "self_disposable"


def test_poster_without_evidence_is_dispatched(rs):
    d = decide(report("poster_without_evidence.json"), place(), NOW, rs)
    assert not d.self_closed and d.department == "sanitation" and d.tier == "street"
    assert set(d.deadlines) == {"file", "dispatch", "dispose", "verify"}
    assert any("not self-closed" in line for line in d.explanation)


def test_self_disposal_claimed_by_a_citizen_is_not_self_closed(rs):
    d = decide(report("poster_with_evidence.json", source="citizen"), place(), NOW, rs)
    assert not d.self_closed and d.department == "sanitation"


def test_illegal_construction_goes_to_enforcement_with_legal_deadlines(rs):
    d = decide(report("illegal_construction.json"), place(), NOW, rs)
    assert d.department == "urban_enforcement" and d.handling == "legal_process"
    assert d.calendar == "working"
    assert "deadline.legal-process" in d.rules
    assert "legal proceedings" in d.closing_standard
    # 30 working days to dispose: far more than 30 natural days; verification 5 days later
    assert d.deadlines["dispose"] - NOW > timedelta(days=40)
    assert d.deadlines["verify"] > d.deadlines["dispose"]
    ordinary = decide(report("road_near_hospital.json"), place(), NOW, rs)
    assert d.deadlines["dispose"] > ordinary.deadlines["dispose"] + timedelta(days=30)


def test_rural_zone_gets_differentiated_deadlines(rs):
    urban = decide(report("rural_garbage.json"), place(), NOW, rs)
    rural = decide(report("rural_garbage.json"), place("rural"), NOW, rs)
    assert "deadline.rural" in rural.rules and "deadline.rural" not in urban.rules
    assert rural.deadlines["dispose"] - NOW == 2 * (urban.deadlines["dispose"] - NOW)


def test_rural_stalls_have_their_own_priority(rs):
    stalls = report("manhole_cover.json", type_code="0901")
    city = decide(stalls, place(), NOW, rs)
    village = decide(stalls, place("rural"), NOW, rs)
    assert (city.priority, city.alert) == ("urgent", True)
    assert (village.priority, village.alert) == ("high", False)
    assert village.deadlines["dispose"] - NOW == timedelta(days=1)


def test_near_a_hospital_priority_is_raised_and_deadlines_shortened(rs):
    plain = decide(report("road_near_hospital.json"), place(), NOW, rs)
    near = decide(report("road_near_hospital.json"), place("hospital"), NOW, rs)
    assert plain.priority == "normal" and near.priority == "high"
    assert "area.hospital" in near.rules
    assert near.deadlines["dispose"] < plain.deadlines["dispose"]


def test_raise_never_lowers_priority(rs):
    d = decide(report("manhole_cover.json"), place("hospital", "school"), NOW, rs)
    assert d.priority == "urgent"


def test_compound_corridor_clutter_goes_to_property_company_at_community_tier(rs):
    d = decide(report("corridor_clutter.json"), place("residential_compound"), NOW, rs)
    assert (d.department, d.tier) == ("property_management", "community")
    assert d.winner == "route.compound.property"
    # 3 days at most for an ordinary repair (seed 004), and the compound is a key area:
    # half the type's 3 days (issue 17: the compound rule no longer beats the halving)
    assert d.deadlines["dispose"] - NOW == timedelta(days=1, hours=12)


def test_compound_urgent_repair_on_site_within_two_hours(rs):
    lift = report("corridor_clutter.json", type_code="0505")
    d = decide(lift, place("residential_compound"), NOW, rs)
    assert (d.department, d.tier, d.priority) == ("property_management", "community", "urgent")
    assert d.deadlines["dispose"] - NOW == timedelta(hours=2)
    assert "deadline.compound.urgent" in d.rules


def test_event_period_raises_priority_only_inside_window_and_district(rs):
    r = report("road_near_hospital.json")
    during = datetime(2025, 11, 6, 10, tzinfo=CST)
    qingpu = place(street="310118001")
    assert decide(r, qingpu, during, rs).priority == "high"
    assert decide(r, qingpu, NOW, rs).priority == "normal"
    assert decide(r, place(), during, rs).priority == "normal"


def test_unclassified_report_goes_to_triage(rs):
    d = decide(report("unclassified.json"), place(), NOW, rs)
    assert d.handling == "triage" and d.department == "command_center"
    assert d.type_code is None and set(d.deadlines) == {"file"}


def test_type_code_argument_overrides_report(rs):
    d = decide(report("unclassified.json"), place(), NOW, rs, type_code="0101")
    assert d.type_code == "0101" and d.priority == "urgent"


def test_unknown_type_code_from_a_classifier_is_triaged_not_raised(rs):
    d = decide(report("unclassified.json"), place(), NOW, rs, type_code="9999")
    assert d.handling == "triage" and "unknown type code" in d.explanation[0]


def test_decision_is_deterministic_and_pure(rs):
    r, p = report("corridor_clutter.json"), place("residential_compound", "hospital")
    assert decide(r, p, NOW, rs) == decide(r, p, NOW, rs)


def test_match_conditions_are_its_fields_whatever_was_computed_before():
    """A model's iteration also yields cached properties once computed; a match's
    strength and conditions must not count them."""
    from rules.schema import Match

    m = Match(type_code=["0701"], zones=["scenic_area"])
    assert (m.specificity, m.is_modifier) == (2, True)
    assert m.compiled == (("type_code", frozenset({"0701"})),
                          ("zones", frozenset({"scenic_area"})))
    assert m.specificity == 2
    assert m.fields() == {"type_code": ["0701"], "zones": ["scenic_area"]}
    assert m == Match(type_code=["0701"], zones=["scenic_area"])
