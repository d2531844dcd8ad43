"""Issue 17: zone, area and period rules only tighten; the command center's stages run 24 h;
`grid route` decides like the engine; one hawker is not gathered stalls; `grid rules check`
fails on a modifier that loosens protected limits and prints the effective limits."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from geodata.schema import ZONE_TYPES
from grid import lifecycle
from grid.classifier import Classifier, count_hint
from grid.cli import main
from grid.deadlines import stage_calendar
from grid.models import CaseState
from grid.service import Engine
from grid.taxonomy import default_taxonomy
from rules import check_deadlines, decide, load_ruleset
from rules.check import check_ruleset
from rules.schema import DeadlineRule
from tests.unit.test_rules import NOW, REPORTS, place, report

CST = timezone(timedelta(hours=8))
FRIDAY_EVENING = datetime(2025, 3, 7, 18, 0, tzinfo=CST)
BROKEN = Path(__file__).parents[1] / "fixtures" / "rules" / "broken"
STREETS = ["310110001", "310110002", "310118001"]


@pytest.fixture(scope="module")
def rs():
    return load_ruleset()


def typed(code: str, description: str = "", source: str = "supervisor"):
    return report("road_near_hospital.json", type_code=code, description=description,
                  source=source)


# --- defect 1: modifiers only tighten ------------------------------------------------------

def test_compound_does_not_lengthen_a_blocked_fire_lane(rs):
    d = decide(typed("0912"), place("residential_compound"), NOW, rs)
    assert d.department == "property_management"
    # the type's 2 h, halved for the key area; never the compound's 3 days
    assert d.deadlines["dispose"] - NOW == timedelta(hours=1)
    assert d.priority == "high"


def test_compound_does_not_lengthen_e_bike_charging_in_a_corridor(rs):
    d = decide(typed("0913"), place("residential_compound"), NOW, rs)
    assert d.deadlines["dispose"] - NOW <= timedelta(hours=4)
    assert "deadline.compound.ordinary" not in d.rules


def test_group_renting_in_a_compound_keeps_its_legal_process(rs):
    d = decide(typed("0914"), place("residential_compound"), NOW, rs)
    assert (d.handling, d.department, d.calendar) == ("legal_process", "housing", "working")
    assert d.deadlines["dispose"] - NOW > timedelta(days=30)  # 30 working days
    assert "deadline.legal-process" in d.rules and "deadline.compound.ordinary" not in d.rules


def test_compound_ordinary_repair_is_a_ceiling(rs):
    # 0404 green space: 5 working days for the type; in a compound at most 3 days (seed 004),
    # and the key area halves the type's limit (2.5 working days): the earliest wins
    d = decide(typed("0404"), place("residential_compound"), NOW, rs)
    assert d.deadlines["dispose"] - NOW <= timedelta(days=3)


def _ruleset_with(tmp_path, extra: str):
    root = tmp_path / "rs"
    shutil.copytree(load_ruleset().path, root)
    (root / "zz_extra.yaml").write_text(extra, encoding="utf-8")
    return load_ruleset(root)


LOOSE_SCHOOL = """
deadlines:
  - id: deadline.school-slow
    match: {zones: school}
    calendar: 24h
    stages: {file: 1h, dispatch: 2h, dispose: 5d, verify: +1d}
"""


def test_a_modifier_without_relaxes_cannot_lengthen_limits(tmp_path, rs):
    loose = _ruleset_with(tmp_path, LOOSE_SCHOOL)
    for code in ("0101", "0912", "0201"):
        a = decide(typed(code), place("school"), NOW, rs)
        b = decide(typed(code), place("school"), NOW, loose)
        assert a.deadlines == b.deadlines, code
    res = check_ruleset(loose, default_taxonomy(), STREETS, ZONE_TYPES)
    assert any(e.startswith("loosens: zz_extra.yaml: deadline.school-slow would lengthen "
                            "limits of deadlines.yaml: deadline.key-supervision")
               for e in res.errors)


def test_a_modifier_with_relaxes_may_lengthen_them(tmp_path):
    relaxed = _ruleset_with(tmp_path, LOOSE_SCHOOL.replace(
        "calendar: 24h", "relaxes: a test reason that is long enough\n    calendar: 24h"))
    d = decide(typed("0101"), place("school"), NOW, relaxed)
    assert d.deadlines["dispose"] - NOW == timedelta(days=5)
    # other modifiers still tighten on top: a road at a school is halved (high priority)
    road = decide(typed("0201"), place("school"), NOW, relaxed)
    assert road.deadlines["dispose"] - NOW == timedelta(days=1, hours=12)
    assert any("a test reason" in line for line in d.explanation)
    res = check_ruleset(relaxed, default_taxonomy(), STREETS, ZONE_TYPES)
    assert not any("loosens" in e for e in res.errors)
    assert any("deadline.school-slow relaxes" in n for n in res.notes)


def test_relaxes_is_only_for_zone_area_or_period_rules():
    with pytest.raises(ValidationError, match="only a zone, area or period rule"):
        DeadlineRule.model_validate({"id": "x", "match": {"handling": "ordinary"},
                                     "relaxes": "because we say so", "from_type": True})


def test_rural_differentiation_relaxes_visibly_but_not_safety_or_key_supervision(rs):
    garbage = decide(typed("0605"), place("rural"), NOW, rs)
    assert garbage.deadlines["dispose"] - NOW == timedelta(days=2)  # 1 day doubled
    assert any("差别化监管" in line for line in garbage.explanation)
    manhole = decide(typed("0101"), place("rural"), NOW, rs)
    assert manhole.deadlines["dispose"] - NOW == timedelta(hours=2)
    fire_lane = decide(typed("0912"), place("rural"), NOW, rs)
    assert fire_lane.deadlines["dispose"] - NOW == timedelta(hours=2)


# --- defect 2: the command center works 24 h -----------------------------------------------

def test_working_calendar_type_is_filed_and_dispatched_the_same_evening(rs):
    kiosk = report("road_near_hospital.json", type_code="0112",
                   reported_at="2025-03-07T17:55:00+08:00")
    d = decide(kiosk, place(), FRIDAY_EVENING, rs)
    assert d.calendar == "working"
    assert d.deadlines["file"] == FRIDAY_EVENING + timedelta(minutes=5)
    assert d.deadlines["dispatch"] == FRIDAY_EVENING + timedelta(hours=1)
    # the department's 3 working days start on Monday 09:00: Wednesday 17:00
    assert d.deadlines["dispose"] == datetime(2025, 3, 12, 17, 0, tzinfo=CST)
    assert d.deadlines["verify"] == datetime(2025, 3, 13, 17, 0, tzinfo=CST)


def test_only_disposal_follows_the_working_calendar():
    assert [stage_calendar(s, "working") for s in ("file", "dispatch", "dispose", "verify")] \
        == ["24h", "24h", "working", "24h"]


def test_dispatch_stage_of_a_working_type_is_warned_in_the_evening(rs):
    kiosk = report("road_near_hospital.json", type_code="0112",
                   reported_at="2025-03-07T17:55:00+08:00")
    d = decide(kiosk, place(), FRIDAY_EVENING, rs)
    case, _ = lifecycle.open_case(kiosk, place(), d, FRIDAY_EVENING)
    case = case.model_copy(update={"state": CaseState.FILED})  # waiting for dispatch
    [step] = check_deadlines(case, FRIDAY_EVENING + timedelta(minutes=48), rs)  # 80 %
    assert (step.kind, step.stage) == ("warning", "dispatch")
    [order] = check_deadlines(case, FRIDAY_EVENING + timedelta(hours=1), rs)
    assert (order.kind, order.stage) == ("supervision_order", "dispatch")


# --- defect 3: one code path for `grid route` and the engine --------------------------------

def test_grid_route_classifies_a_hotline_description_like_the_engine(tmp_path, rs):
    data = json.loads((REPORTS / "unclassified.json").read_text(encoding="utf-8"))
    data.update(source="hotline_12345", description="小区门口路灯不亮了，晚上很黑")
    path = tmp_path / "hotline.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    placement = tmp_path / "placement.json"
    placement.write_text(place().model_dump_json(), encoding="utf-8")
    res = CliRunner().invoke(main, ["route", "--report", str(path), "--now", NOW.isoformat(),
                                    "--placement", str(placement)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    engine = Engine(default_taxonomy(), None, rs).decide(report("unclassified.json", **{
        "source": "hotline_12345", "description": data["description"]}), place(), NOW)
    assert out["handling"] != "triage" and out["type_code"] == engine.decision.type_code
    assert out["department"] == engine.decision.department
    assert out["classification"]["type_code"] == engine.classification["type_code"]


# --- defect 4: one hawker is not gathered stalls ---------------------------------------------

@pytest.mark.parametrize(("text", "count"), [
    ("一个小贩在路口卖水果", "single"),
    ("一名流动摊贩推车卖烤红薯", "single"),
    ("a single vendor selling fruit at the gate", "single"),
    ("路口聚集了多个摊贩，占道严重", "gathered"),
    ("一个路口有好几个摊位", "gathered"),
    ("hawkers blocking the pavement", "gathered"),
    ("有人摆摊", None),
])
def test_count_hint_tells_one_from_many(text, count):
    assert count_hint(text, "0901") == count
    assert count_hint(text, "0101") is None  # only types with count cues
    assert Classifier().classify(text, 1)[0].count == count if count else True


def test_single_vendor_is_an_ordinary_street_order_case(rs):
    d = decide(typed("0901", "一个小贩在路口卖水果"), place(), NOW, rs)
    assert (d.handling, d.priority, d.alert, d.tier) == ("ordinary", "normal", False, "street")
    assert d.department == "urban_enforcement"
    assert "handling.single-vendor" in d.rules and d.inputs["count"] == "single"


@pytest.mark.parametrize("text", ["路口聚集了多个摊贩", ""])
def test_gathered_or_unspecified_stalls_stay_key_supervision(rs, text):
    d = decide(typed("0901", text), place(), NOW, rs)
    assert (d.handling, d.priority, d.alert) == ("key_supervision", "urgent", True)


def test_hotline_single_vendor_through_the_engine(rs):
    r = report("unclassified.json", source="hotline_12345", description="一个流动摊贩在门口摆摊")
    located = Engine(default_taxonomy(), None, rs).decide(r, place(), NOW)
    assert located.decision.type_code == "0901"
    assert located.decision.handling == "ordinary" and not located.decision.alert


# --- grid rules check: tighten-only and the effective limits ---------------------------------

def test_loosening_fixture_fails_naming_the_rule_pairs():
    res = check_ruleset(load_ruleset(BROKEN / "loosening"), default_taxonomy(), STREETS,
                        ZONE_TYPES)
    assert any("deadline.compound.ordinary would lengthen limits of rules.yaml: deadline.type"
               in e and "0912" in e and "0913" in e for e in res.errors), res.errors
    assert any("deadline.rural would lengthen limits of rules.yaml: deadline.key-supervision"
               in e for e in res.errors)
    assert any("deadline.compound.ordinary would change the legal procedure" in w
               for w in res.warnings)


def test_shipped_rules_pass_the_tighten_only_check(rs):
    res = check_ruleset(rs, default_taxonomy(), STREETS, ZONE_TYPES)
    assert res.errors == [] and res.combinations > 10_000
    row = next(r for r in res.table if r["type"] == "0912" and r["zone"] == "residential_compound")
    assert (row["dispose"], row["priority"]) == ("1h", "high")
    legal = next(r for r in res.table if r["type"] == "0914" and r["zone"] == "-")
    assert (legal["dispose"], legal["calendar"]) == ("30d", "working")


def test_rules_check_cli_fails_on_loosening_and_prints_csv():
    bad = CliRunner().invoke(main, ["rules", "check", "--rules", str(BROKEN / "loosening")])
    assert bad.exit_code == 1 and "loosens: rules.yaml: deadline.compound.ordinary" in bad.output
    assert "FAIL" in bad.output
    ok = CliRunner().invoke(main, ["rules", "check", "--format", "csv"])
    assert ok.exit_code == 0, ok.output
    rows = list(csv.DictReader(io.StringIO(ok.stdout)))
    assert rows and set(rows[0]) >= {"type", "zone", "file", "dispatch", "dispose", "verify"}
    assert {r["zone"] for r in rows} >= {"-", "rural", "residential_compound"}
