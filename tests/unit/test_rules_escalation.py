"""Escalation ladder: warnings, supervision orders up the levels, arbitration; idempotent
when the lifecycle applies each step (the engine's real contract)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from grid import lifecycle
from grid.models import Action, CaseState, Command
from rules import check_deadlines, decide, load_ruleset
from tests.unit.test_rules import NOW, place, report


@pytest.fixture(scope="module")
def rs():
    return load_ruleset()


def open_case(rs, name="road_near_hospital.json", *zones):
    r = report(name)
    p = place(*zones)
    case, _ = lifecycle.open_case(r, p, decide(r, p, NOW, rs), NOW)
    return case


def apply(case, step, at):
    action = {"warning": Action.WARN, "supervision_order": Action.SUPERVISE}[step.kind]
    cmd = Command(command_id=f"{step.kind}:{step.key}", case_id=case.case_id, action=action,
                  actor="engine", role="system", stage=step.stage, reason=step.reason, at=at)
    return lifecycle.apply(case, cmd, at)[0]


def test_overdue_case_gets_a_supervision_order_one_level_up(rs):
    case = open_case(rs)  # road damage, 3 days to dispose, street level
    assert case.state is CaseState.DISPATCHED and case.level == "street"
    due = case.deadlines["dispose"]
    assert check_deadlines(case, due - timedelta(hours=1), rs)[0].kind == "warning"
    case = apply(case, check_deadlines(case, due - timedelta(hours=1), rs)[0], due)
    [step] = check_deadlines(case, due, rs)
    assert (step.kind, step.stage, step.level) == ("supervision_order", "dispose", "district")
    assert step.key == "dispose@district"
    case = apply(case, step, due)
    assert case.level == "district" and case.supervised == ["dispose@district"]
    assert check_deadlines(case, due + timedelta(hours=1), rs) == []  # idempotent


def test_warning_at_configured_share_once(rs):
    case = open_case(rs)
    limit = case.deadlines["dispose"] - case.created_at
    assert check_deadlines(case, NOW + limit * 0.79, rs) == []
    [w] = check_deadlines(case, NOW + limit * 0.8, rs)
    assert (w.kind, w.stage, w.level) == ("warning", "dispose", None)
    case = apply(case, w, NOW + limit * 0.8)
    assert case.warned == ["dispose"]
    assert check_deadlines(case, NOW + limit * 0.9, rs) == []


def test_still_overdue_climbs_to_city_then_stays(rs):
    case = open_case(rs)
    limit = case.deadlines["dispose"] - case.created_at
    due = case.deadlines["dispose"]
    case = apply(case, check_deadlines(case, due, rs)[0], due)
    assert check_deadlines(case, due + limit * 0.99, rs) == []  # not yet reissued
    [again] = check_deadlines(case, due + limit, rs)
    assert (again.level, again.key) == ("city", "dispose@city")
    case = apply(case, again, due + limit)
    assert case.level == "city"
    assert check_deadlines(case, due + 10 * limit, rs) == []  # at the top: no repeats


def test_only_the_current_stage_is_watched(rs):
    case = open_case(rs)
    disposed = lifecycle.apply(case, Command(
        command_id="d1", case_id=case.case_id, action=Action.DISPOSE, actor=case.department,
        role="department", reason="repaired", evidence_photos=["https://img/x.jpg"], at=NOW),
        NOW)[0]
    after_dispose_due = case.deadlines["dispose"] + timedelta(minutes=1)
    assert check_deadlines(disposed, after_dispose_due, rs) == []  # dispose done in time
    [step] = check_deadlines(disposed, case.deadlines["verify"], rs)
    assert (step.stage, step.level) == ("verify", "district")


def test_two_returns_go_to_arbitration_once(rs):
    case = open_case(rs)
    returned = case.model_copy(update={"returns": 2, "state": CaseState.RETURNED})
    steps = check_deadlines(returned, NOW + timedelta(minutes=1), rs)
    assert [s.kind for s in steps] == ["arbitration"]
    assert check_deadlines(returned.model_copy(update={"arbitration": True}),
                           NOW + timedelta(minutes=1), rs) == []
    assert check_deadlines(case.model_copy(update={"returns": 1}), NOW, rs) == []


def test_closed_cases_never_escalate(rs):
    r = report("poster_with_evidence.json")
    case, _ = lifecycle.open_case(r, place(), decide(r, place(), NOW, rs), NOW)
    assert case.state is CaseState.CLOSED
    assert check_deadlines(case, NOW + timedelta(days=30), rs) == []


def test_working_calendar_weekend_does_not_count(rs):
    case = open_case(rs, "illegal_construction.json")
    assert case.decision.calendar == "working"
    # a staged legal process: the open stage (立案调查, 5 working days) is the one watched
    assert case.legal_stage.stage == "investigation"
    due = case.legal_stage.due
    friday_evening = due - timedelta(days=(due.weekday() - 4) % 7 or 7)  # last one before
    friday_evening = friday_evening.replace(hour=18, minute=0)
    sunday = friday_evening + timedelta(days=2)
    steps = check_deadlines(case, friday_evening, rs)
    assert [s.kind for s in steps] == ["warning"]  # the last Friday before the due day
    assert check_deadlines(case, sunday, rs) == steps  # same share used on Sunday
