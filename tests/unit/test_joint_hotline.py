"""Joint handling (主办/协办) and the hotline loop (replies, 回访, reopen) — issue 18."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from grid import auth
from grid.lifecycle import replay
from grid.models import Action, CaseState, Command, Report
from grid.service import Engine

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
S = CaseState


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def _open(engine: Engine, type_code: str, **kw):
    data = dict(report_id=str(uuid.uuid4()), source="supervisor", reporter_id="sup-7",
                reported_at=NOW, location={"lon": 121.514, "lat": 31.299}, type_code=type_code)
    r = Report.model_validate({**data, **kw})
    place = engine.locator.locate(121.514, 31.299)
    fx = engine.on_located(engine.decide(r, place, NOW), None, [], NOW)
    _EVENTS[fx.case.case_id] = list(fx.events)
    return fx


def _do(engine: Engine, case, action: Action, actor: str, role: str, at=NOW, **kw):
    c = Command(command_id=str(uuid.uuid4()), case_id=case.case_id, action=action,
                actor=actor, role=role, **kw)
    fx = engine.on_command(c, case, at)
    _EVENTS[case.case_id] += [e for e in fx.events if e.seq > 0]
    return fx


_EVENTS: dict[str, list] = {}  # case id -> every event of the case (the case keeps no history)


def _history(case) -> list:
    return list(_EVENTS[case.case_id])


# --- lead and assisting departments (群租) ----------------------------------------------------


def test_group_renting_has_lead_housing_office_and_two_assisting_work_orders(engine):
    fx = _open(engine, "0914", description="群租")
    case, street = fx.case, fx.case.placement.street
    d = case.decision
    assert (d.department, d.unit) == ("housing", f"{street}.housing")
    assert [(a.department, a.unit) for a in d.assisting] == [
        ("public_security", f"{street}.public_security"),
        ("urban_enforcement", f"{street}.urban_enforcement")]
    assert "assisting public_security, urban_enforcement <- route.joint.group-renting" \
        in d.explanation
    orders = {(w.department, w.role, w.unit, w.lead_department) for w in fx.work_orders}
    assert orders == {("housing", "lead", f"{street}.housing", None),
                      ("public_security", "assisting", f"{street}.public_security", "housing"),
                      ("urban_enforcement", "assisting", f"{street}.urban_enforcement",
                       "housing")}
    assert len({w.work_order_id for w in fx.work_orders}) == 3
    assert auth.holders_of(case) >= {"housing", "public_security", f"{street}.urban_enforcement"}


def test_joint_case_is_disposed_only_when_lead_and_every_assisting_part_are_done(engine):
    case = _open(engine, "0914", description="群租").case
    street = case.placement.street
    fx = _do(engine, case, Action.DISPOSE, f"{street}.housing", "department",
             evidence_photos=["a.jpg"])
    # 群租 is a staged legal process: disposing early (remedied) closes the open stage
    assert [e.type for e in fx.events] == ["legal_stage_closed", "lead_disposed"]
    assert fx.case.state is S.DISPATCHED and fx.case.lead_disposed
    assert fx.events[1].data.waiting_for == ["public_security", "urban_enforcement"]
    # the housing office may not report the police's part
    no = _do(engine, fx.case, Action.REPORT_PART, "housing", "department", reason="x")
    assert no.events[0].type == "command_rejected"
    assert "has no open assisting part" in no.events[0].reason
    fx = _do(engine, fx.case, Action.REPORT_PART, f"{street}.public_security", "department",
             reason="居住人员已登记清退")
    assert [e.type for e in fx.events] == ["part_reported"]
    assert fx.case.state is S.DISPATCHED
    assert [p.status for p in fx.case.assisting] == ["done", "open"]
    fx = _do(engine, fx.case, Action.REPORT_PART, "urban_enforcement", "department",
             evidence_photos=["b.jpg"])
    assert [e.type for e in fx.events] == ["part_reported", "disposed"]
    assert fx.case.state is S.DISPOSED
    fx = _do(engine, fx.case, Action.VERIFY, "sup-7", "supervisor", passed=True)
    fx = _do(engine, fx.case, Action.CLOSE, "cc", "command_center")
    assert fx.case.state is S.CLOSED
    assert replay(_history(fx.case)) == fx.case


def test_lead_closes_an_assisting_part_out_with_a_reason(engine):
    case = _open(engine, "0914", description="群租").case
    fx = _do(engine, case, Action.REPORT_PART, "public_security", "department", reason="done")
    no = _do(engine, fx.case, Action.CLOSE_OUT_PART, "housing", "department",
             department="urban_enforcement")
    assert "closing a part out needs a reason" in no.events[0].reason
    fx = _do(engine, fx.case, Action.CLOSE_OUT_PART, "housing", "department",
             department="urban_enforcement", reason="无需执法：已自行整改")
    assert [e.type for e in fx.events] == ["part_closed_out"]
    assert fx.case.state is S.DISPATCHED  # the lead has not disposed yet
    fx = _do(engine, fx.case, Action.DISPOSE, "housing", "department", evidence_photos=["a"])
    assert [e.type for e in fx.events] == ["legal_stage_closed", "disposed"]
    assert fx.case.state is S.DISPOSED
    assert [p.status for p in fx.case.assisting] == ["done", "closed_out"]


# --- the 12345 loop -------------------------------------------------------------------------

TICKET = {"hotline": "12345", "ticket_no": "SH12345-20261123-0007"}


def _hotline_case(engine: Engine):
    return _open(engine, "0604", source="hotline_12345", reporter_id="hotline-12345",
                 description="占用公共部位", ticket=TICKET)


def _close(engine: Engine, case, at=NOW):
    fx = _do(engine, case, Action.DISPOSE, case.department, "department", at,
             evidence_photos=["x"])
    replies = list(fx.replies)
    for action, actor, role, kw in ((Action.VERIFY, "sup-7", "supervisor", {"passed": True}),
                                    (Action.CLOSE, "cc", "command_center", {})):
        fx = _do(engine, fx.case, action, actor, role, at, **kw)
        replies += fx.replies
    return fx.case, replies


def test_report_ticket_is_schema_checked():
    base = dict(report_id=str(uuid.uuid4()), reporter_id="h", reported_at=NOW,
                location={"lon": 121.5, "lat": 31.3}, description="x")
    r = Report.model_validate({**base, "source": "hotline_962121",
                               "ticket": {"hotline": "962121", "ticket_no": "F-2026-0001"}})
    assert r.ticket.callback is True
    with pytest.raises(ValidationError, match="comes with source 'hotline_12345'"):
        Report.model_validate({**base, "source": "citizen", "ticket": TICKET})
    with pytest.raises(ValidationError, match="ticket_no"):
        Report.model_validate({**base, "source": "hotline_12345",
                               "ticket": {"hotline": "12345", "ticket_no": "no spaces!"}})


def test_hotline_case_sends_a_reply_on_each_change(engine):
    fx = _hotline_case(engine)
    assert [r.event for r in fx.replies] == ["filed", "dispatched"]
    r = fx.replies[-1]
    assert (r.hotline, r.ticket_no, r.status, r.status_zh) == (
        "12345", "SH12345-20261123-0007", "open", "已派遣")
    assert r.reply_id == fx.events[-1].event_id and r.department == fx.case.department
    assert r.message.startswith("工单SH12345-20261123-0007：已派遣，承办：")
    case, replies = _close(engine, fx.case)
    assert [(r.event, r.status) for r in replies] == [
        ("disposed", "open"), ("verified", "open"), ("closed", "closed")]
    # a case without a ticket answers nobody
    assert _open(engine, "0604", description="占用公共部位").replies == []


def test_callback_records_satisfaction_once(engine):
    case, _ = _close(engine, _hotline_case(engine).case)
    later = NOW + timedelta(days=1)
    fx = _do(engine, case, Action.CALLBACK, "hotline-12345", "hotline", later,
             satisfaction="satisfied", reason="处理及时")
    assert [e.type for e in fx.events] == ["callback"]
    assert fx.case.state is S.CLOSED and fx.case.callbacks[0].satisfaction == "satisfied"
    assert fx.replies[0].message.endswith("回访：满意（处理及时）")
    again = _do(engine, fx.case, Action.CALLBACK, "hotline-12345", "hotline", later,
                satisfaction="not_satisfied")
    assert "already called back" in again.events[0].reason


def test_not_satisfied_reopens_for_rework_once_within_the_window(engine):
    case, _ = _close(engine, _hotline_case(engine).case)
    at = NOW + timedelta(days=2)
    fx = _do(engine, case, Action.CALLBACK, "hotline-12345", "hotline", at,
             satisfaction="not_satisfied", reason="杂物又堆回来了")
    assert [e.type for e in fx.events] == ["callback", "reopened"]
    case = fx.case
    assert case.state is S.REWORK and case.reopens == 1 and case.closed_at is None
    span = case.decision.deadlines["dispose"] - case.created_at
    assert case.deadlines["dispose"] == at + span
    assert [r.event for r in fx.replies] == ["callback", "reopened"]
    assert fx.replies[-1].message.endswith("市民不满意，案件重新处置")
    assert replay(_history(case)) == case
    # fixed again, closed again; a second "not satisfied" is recorded but cannot reopen
    case, _ = _close(engine, case, at)
    fx = _do(engine, case, Action.CALLBACK, "hotline-12345", "hotline", at + timedelta(days=1),
             satisfaction="not_satisfied")
    assert [e.type for e in fx.events] == ["callback"] and fx.case.state is S.CLOSED
    assert "limit 1" in fx.events[0].data.note


def test_callback_outside_the_window_or_without_ticket_is_refused(engine):
    case, _ = _close(engine, _hotline_case(engine).case)
    late = _do(engine, case, Action.CALLBACK, "hotline-12345", "hotline",
               NOW + timedelta(days=8), satisfaction="not_satisfied")
    assert "callback window (7 days, 0:00:00) after closing has passed" in late.events[0].reason
    plain, _ = _close(engine, _open(engine, "0604", description="占用公共部位").case)
    no = _do(engine, plain, Action.CALLBACK, "cc", "command_center", NOW,
             satisfaction="satisfied")
    assert "not a hotline case" in no.events[0].reason


def test_only_the_reporting_hotline_may_call_back():
    hotline = auth.Principal(name="hotline-12345", role="integration", source="hotline_12345")
    assert hotline.command_role == "hotline"
    auth.check_action(hotline, Action.CALLBACK, None, None)  # before the case is loaded
    with pytest.raises(auth.Forbidden, match="calls back only the cases it reported"):
        auth.check_action(hotline, Action.CALLBACK, object(), None, (), ["someone-else"])
    with pytest.raises(auth.Forbidden, match="may not 'close'"):
        auth.check_action(hotline, Action.CLOSE, None, None)


# --- evaluation by role and unit --------------------------------------------------------------


def test_evaluation_counts_both_roles_and_the_callbacks_per_unit(engine):
    from grid.evaluation import role_figures

    joint = _open(engine, "0914", description="群租").case
    street = joint.placement.street
    fx = _do(engine, joint, Action.REPORT_PART, "public_security", "department", reason="ok")
    fx = _do(engine, fx.case, Action.CLOSE_OUT_PART, "housing", "department",
             department="urban_enforcement", reason="无需执法")
    events = _history(fx.case)
    for satisfaction in ("not_satisfied", "satisfied"):
        case, _ = _close(engine, _hotline_case(engine).case)
        cb = _do(engine, case, Action.CALLBACK, "hotline-12345", "hotline",
                 NOW + timedelta(hours=1), satisfaction=satisfaction)
        events += _history(cb.case)
    rows = {(r.department, r.unit): r for r in role_figures(events + events)}  # counted once
    housing = rows[("housing", f"{street}.housing")]
    assert (housing.lead, housing.assisting) == (1, 0)
    police = rows[("public_security", f"{street}.public_security")]
    assert (police.lead, police.assisting, police.parts_done) == (0, 1, 1)
    enforcement = rows[("urban_enforcement", f"{street}.urban_enforcement")]
    assert (enforcement.assisting, enforcement.parts_closed_out) == (1, 1)
    pm = [r for r in rows.values() if r.callbacks]
    assert len(pm) == 1  # both hotline cases are with the same lead
    assert (pm[0].callbacks, pm[0].satisfied, pm[0].not_satisfied, pm[0].reopened) == (2, 1, 1, 1)
    assert (pm[0].satisfaction_rate, pm[0].reopen_rate) == (0.5, 0.5)
    assert pm[0].to_dict()["reopen_rate"] == 0.5
    later = role_figures(events, start=NOW + timedelta(minutes=30))  # only the callbacks
    assert [(r.lead, r.assisting, r.callbacks) for r in later] == [(0, 0, 2)]


def test_open311_status_names_the_ticket_and_the_callback(engine):
    from grid.open311 import request_status

    case, _ = _close(engine, _hotline_case(engine).case)
    fx = _do(engine, case, Action.CALLBACK, "hotline-12345", "hotline", NOW,
             satisfaction="not_satisfied")
    row = request_status(fx.case.report.rid, fx.case, engine.taxonomy)
    assert row["status"] == "open"
    assert row["status_notes"].startswith("12345 ticket SH12345-20261123-0007: reopened after "
                                          "the citizen's callback (not satisfied); ")
    closed = request_status(case.report.rid, case, engine.taxonomy)
    assert case.unit is None  # outside every compound: no property company named
    assert closed["agency_responsible"] == "物业服务企业"  # so the department, by name
    assert closed["status"] == "closed"
    assert closed["status_notes"] == ("12345 ticket SH12345-20261123-0007: closed: fixed and "
                                      "verified")


def test_a_supervision_order_on_a_joint_case_names_the_assisting_departments_still_open(engine):
    case = _open(engine, "0914", description="群租").case
    fx = _do(engine, case, Action.REPORT_PART, "public_security", "department", reason="ok")
    fx = _do(engine, fx.case, Action.SUPERVISE, "engine", "system", stage="dispose")
    alert = fx.alerts[0]
    assert alert.kind == "supervision_order"
    assert alert.message.startswith("supervision order 督办: dispose overdue, escalated to "
                                    "district, waiting for assisting 协办 城管执法 ")


def test_grid_report_shows_roles_and_satisfaction_per_unit(engine):
    from datetime import date

    from grid.report import evaluate, render

    joint = _open(engine, "0914", description="群租").case
    street = joint.placement.street
    fx = _do(engine, joint, Action.REPORT_PART, "public_security", "department", reason="ok")
    case, _ = _close(engine, _hotline_case(engine).case)
    cb = _do(engine, case, Action.CALLBACK, "hotline-12345", "hotline", NOW,
             satisfaction="basically_satisfied")
    events = [e.model_dump(mode="json", by_alias=True)
              for e in (*_history(fx.case), *_history(cb.case))]
    ev = evaluate(events, "310110", date(2026, 11, 23), date(2026, 11, 23))
    units = {(u.department, u.unit): u for u in ev.units}
    assert units[("public_security", f"{street}.public_security")].parts_done == 1
    assert units[("housing", f"{street}.housing")].lead == 1
    text = render(ev)
    head = text.index("单位 unit")
    assert "满意率 satisfied" in text[head:] and "100.0%" in text[head:]
    police = next(line for line in text[head:].splitlines()
                  if line.startswith(f"public_security 杨浦区街镇{street[-2:]}派出所"))
    assert police.split()[2:6] == ["0", "1", "1", "0"]  # lead, assist, parts, callbacks
    assert render(ev, "json").count('"satisfaction_rate"') == len(ev.units)


def test_the_hotline_example_is_a_joint_case_in_a_compound(engine):
    from pathlib import Path

    from grid.intake import parse_report

    raw = (Path(__file__).parents[2] / "examples" / "hotline_group_renting.json").read_bytes()
    r = parse_report(raw, taxonomy=engine.taxonomy, now=NOW)
    assert isinstance(r, Report) and r.ticket.ticket_no == "SH12345-20261121-0042"
    place = engine.locator.locate(r.location.lon, r.location.lat)
    fx = engine.on_located(engine.decide(r, place, NOW), None, [], NOW)
    assert place.zone_ids == ["310110-Z0001"]
    assert [(w.unit_name, w.role) for w in fx.work_orders] == [
        ("杨浦区街镇08房管办事处", "lead"), ("杨浦区街镇08派出所", "assisting"),
        ("杨浦区街镇08城管执法中队", "assisting")]
    assert fx.replies[-1].message == ("工单SH12345-20261121-0042：已派遣，"
                                      "承办：杨浦区街镇08房管办事处")
    from grid.open311 import request_status

    row = request_status(r.rid, fx.case, engine.taxonomy)
    assert row["agency_responsible"] == "杨浦区街镇08房管办事处"  # the unit, by name
