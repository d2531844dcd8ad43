"""Case lifecycle: every transition, illegal commands, idempotency, replay (property-based)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grid.lifecycle import (
    IllegalTransition,
    NotPermitted,
    apply,
    open_case,
    rejection_event,
    replay,
    work_order_for,
)
from grid.models import TERMINAL_STATES, Action, CaseState, Command, Decision, Placement, Report

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
PLACE = Placement(lon=121.52, lat=31.27, crs="wgs84", district="310110", street="310110001",
                  community="310110001001", cell="310110001001007")


def report(type_code: str = "0101", **kw) -> Report:
    data = dict(report_id=str(uuid.uuid4()), source="supervisor", reporter_id="sup-7",
                reported_at=NOW, location={"lon": 121.52, "lat": 31.27}, type_code=type_code)
    data.update(kw)
    return Report.model_validate(data)


def decision(handling="ordinary", department="water", self_closed=False, **kw) -> Decision:
    return Decision(type_code="0101", department=None if self_closed else department,
                    tier="self" if self_closed else "street", priority="normal",
                    handling=handling, self_closed=self_closed, winner="r1",
                    deadlines={"dispose": NOW + timedelta(hours=2),
                               "verify": NOW + timedelta(hours=4)}, **kw)


def cmd(action: Action, role: str, actor: str = "water", **kw) -> Command:
    return Command(command_id=str(uuid.uuid4()), case_id="x", action=action, actor=actor,
                   role=role, **kw)


def dispatched():
    return open_case(report(), PLACE, decision(), NOW)[0]


def test_open_case_files_and_dispatches():
    case, events = open_case(report(), PLACE, decision(), NOW)
    assert [e.type for e in events] == ["reported", "filed", "dispatched"]
    assert case.state is CaseState.DISPATCHED and case.department == "water"
    assert [e.seq for e in events] == [1, 2, 3]
    wo = work_order_for(case, events[-1])
    assert wo.department == "water" and wo.work_order_id == f"{case.case_id}:1"
    assert wo.due["dispose"] == NOW + timedelta(hours=2)


def test_open_case_self_closed_and_triage():
    case, events = open_case(report("0701"), PLACE, decision("self_disposable", self_closed=True),
                             NOW)
    assert [e.type for e in events] == ["reported", "self_closed"]
    assert case.state is CaseState.CLOSED and case.tier == "self" and case.department is None
    assert case.closed_on_time is True
    triage = Decision(type_code=None, department="command_center", tier="district",
                      priority="normal", handling="triage")
    case, events = open_case(report(None, source="citizen", description="??"), PLACE, triage, NOW)
    assert case.state is CaseState.TRIAGE


def test_full_happy_path_to_closed():
    case = dispatched()
    case, ev = apply(case, cmd(Action.ACCEPT, "department"), NOW)
    assert case.state is CaseState.ACCEPTED
    case, ev = apply(case, cmd(Action.DISPOSE, "department", evidence_photos=["p://1"]),
                     NOW + timedelta(hours=1))
    assert case.state is CaseState.DISPOSED
    case, ev = apply(case, cmd(Action.VERIFY, "supervisor", "sup-7", passed=True), NOW)
    assert case.state is CaseState.VERIFIED
    case, ev = apply(case, cmd(Action.CLOSE, "command_center", "cc"), NOW + timedelta(hours=3))
    assert case.state is CaseState.CLOSED and case.closed_on_time is True
    assert [e.type for e in ev] == ["closed"] and case.recent == ev


def test_late_disposal_is_not_on_time():
    case = dispatched()
    case, _ = apply(case, cmd(Action.DISPOSE, "department", reason="fixed"),
                    NOW + timedelta(hours=5))
    case, _ = apply(case, cmd(Action.VERIFY, "supervisor", "s", passed=True), NOW)
    case, _ = apply(case, cmd(Action.CLOSE, "command_center", "cc"), NOW)
    assert case.closed_on_time is False


def test_rework_and_return_and_arbitration():
    case = dispatched()
    case, _ = apply(case, cmd(Action.DISPOSE, "department", reason="fixed"), NOW)
    case, ev = apply(case, cmd(Action.VERIFY, "supervisor", "s", passed=False), NOW)
    assert case.state is CaseState.REWORK and case.reworks == 1
    case, _ = apply(case, cmd(Action.DISPOSE, "department", reason="fixed again"), NOW)
    assert case.state is CaseState.DISPOSED

    case = dispatched()
    case, _ = apply(case, cmd(Action.RETURN, "department", reason="not ours"), NOW)
    assert case.state is CaseState.RETURNED and not case.arbitration
    case, ev = apply(case, cmd(Action.DISPATCH, "command_center", "cc", department="drainage"),
                     NOW)
    assert ev[0].type == "redispatched" and case.department == "drainage"
    case, ev = apply(case, cmd(Action.RETURN, "department", "drainage", reason="not ours"), NOW)
    assert [e.type for e in ev] == ["returned", "arbitration"] and case.arbitration


def test_extension_request_grant_deny():
    case = dispatched()
    case, _ = apply(case, cmd(Action.REQUEST_EXTENSION, "department", extension_minutes=60), NOW)
    assert case.extension_requested_minutes == 60
    case, _ = apply(case, cmd(Action.GRANT_EXTENSION, "command_center", "cc"), NOW)
    assert case.deadlines["dispose"] == NOW + timedelta(hours=3) and case.extensions == 1
    with pytest.raises(IllegalTransition, match="no extension was requested"):
        apply(case, cmd(Action.DENY_EXTENSION, "command_center", "cc"), NOW)
    case, _ = apply(case, cmd(Action.REQUEST_EXTENSION, "department", extension_minutes=30), NOW)
    case, _ = apply(case, cmd(Action.DENY_EXTENSION, "command_center", "cc"), NOW)
    assert case.extension_requested_minutes is None and case.extensions == 1


def test_supervision_ladder_and_warning_idempotent():
    case = dispatched()
    case, ev = apply(case, cmd(Action.WARN, "system", "engine", stage="dispose"), NOW)
    assert case.warned == ["dispose"]
    case, ev = apply(case, cmd(Action.WARN, "system", "engine", stage="dispose"), NOW)
    assert ev == []
    levels = []
    for _ in range(3):
        case, ev = apply(case, cmd(Action.SUPERVISE, "system", "engine", stage="dispose"), NOW)
        levels.append(case.level)
    assert levels == ["district", "city", "city"]
    assert case.state is CaseState.DISPATCHED


def test_merge_and_self_dispose():
    case = dispatched()
    other = str(uuid.uuid4())
    case, ev = apply(case, cmd(Action.MERGE, "system", "engine", report_id=other), NOW)
    assert case.report_ids[-1] == other and len(case.report_ids) == 2
    case, ev = apply(case, cmd(Action.MERGE, "system", "engine", report_id=other), NOW)
    assert ev == []
    with pytest.raises(IllegalTransition, match="cannot be self-disposed"):
        apply(case, cmd(Action.SELF_DISPOSE, "supervisor", "s", evidence_photos=["x"]), NOW)
    poster = open_case(report("0701"), PLACE, decision("self_disposable"), NOW)[0]
    with pytest.raises(IllegalTransition, match="evidence photo"):
        apply(poster, cmd(Action.SELF_DISPOSE, "supervisor", "s"), NOW)
    poster, _ = apply(poster, cmd(Action.SELF_DISPOSE, "supervisor", "s", evidence_photos=["x"]),
                      NOW)
    assert poster.state is CaseState.CLOSED and poster.tier == "self"


def test_illegal_transitions_name_state_and_action():
    case = dispatched()
    with pytest.raises(IllegalTransition) as err:
        apply(case, cmd(Action.CLOSE, "command_center", "cc"), NOW)
    assert "'close'" in str(err.value) and "'dispatched'" in str(err.value)
    with pytest.raises(NotPermitted, match="not responsible"):
        apply(case, cmd(Action.ACCEPT, "department", "gas"), NOW)
    with pytest.raises(NotPermitted, match="role 'supervisor'"):
        apply(case, cmd(Action.ACCEPT, "supervisor", "s"), NOW)
    with pytest.raises(IllegalTransition, match="evidence_photos"):
        apply(case, cmd(Action.DISPOSE, "department"), NOW)
    c = cmd(Action.CLOSE, "command_center", "cc")
    ev = rejection_event(case, c, IllegalTransition(case.state, c.action), NOW)
    assert ev.type == "command_rejected" and ev.state_to is case.state


def test_commands_are_idempotent():
    case = dispatched()
    c = cmd(Action.ACCEPT, "department")
    case, ev1 = apply(case, c, NOW)
    case2, ev2 = apply(case, c, NOW)
    assert ev1 and ev2 == [] and case2 == case


def test_reject_and_terminal():
    triage = Decision(type_code=None, department="command_center", tier="district",
                      priority="normal", handling="triage")
    case = open_case(report(None, source="citizen", description="x"), PLACE, triage, NOW)[0]
    case, _ = apply(case, cmd(Action.REJECT, "command_center", "cc", reason="not a city matter"),
                    NOW)
    assert case.state is CaseState.REJECTED
    with pytest.raises(IllegalTransition, match="finished"):
        apply(case, cmd(Action.FILE, "command_center", "cc"), NOW)


def test_classify_after_triage_dispatches():
    triage = Decision(type_code=None, department="command_center", tier="district",
                      priority="normal", handling="triage")
    case = open_case(report(None, source="citizen", description="x"), PLACE, triage, NOW)[0]
    case, ev = apply(case, cmd(Action.CLASSIFY, "command_center", "cc", type_code="0101"), NOW,
                     decision=decision())
    assert [e.type for e in ev] == ["classified", "dispatched"]
    assert case.state is CaseState.DISPATCHED and case.type_code == "0101"


# --- property-based: random command sequences -----------------------------------------

ROLE_FOR = {
    Action.FILE: ("command_center", "cc"), Action.CLASSIFY: ("command_center", "cc"),
    Action.FOLLOW_UP: ("command_center", "cc"), Action.ADVANCE_STAGE: ("department", "water"),
    Action.REJECT: ("command_center", "cc"), Action.DISPATCH: ("command_center", "cc"),
    Action.GRANT_EXTENSION: ("command_center", "cc"),
    Action.DENY_EXTENSION: ("command_center", "cc"), Action.SUPERVISE: ("system", "engine"),
    Action.CLOSE: ("command_center", "cc"), Action.ACCEPT: ("department", "water"),
    Action.DISPOSE: ("department", "water"), Action.RETURN: ("department", "water"),
    Action.REQUEST_EXTENSION: ("department", "water"), Action.VERIFY: ("supervisor", "s"),
    Action.SELF_DISPOSE: ("supervisor", "s"), Action.WARN: ("system", "engine"),
    Action.MERGE: ("system", "engine"), Action.REPORT_PART: ("department", "police"),
    Action.CLOSE_OUT_PART: ("department", "water"), Action.CALLBACK: ("hotline", "hotline"),
}

commands = st.builds(
    lambda action, passed, stage, wrong_role: (action, passed, stage, wrong_role),
    st.sampled_from(list(Action)), st.booleans(),
    st.sampled_from(["dispatch", "dispose", "verify"]), st.integers(0, 9),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=25), st.sampled_from(["ordinary", "self_disposable"]))
def test_random_sequences_stay_defined_and_replay(seq, handling):
    case, history = open_case(report(), PLACE, decision(handling), NOW)
    for i, (action, passed, stage, wrong) in enumerate(seq):
        role, actor = ROLE_FOR[action]
        if wrong == 0:
            role, actor = "supervisor", "intruder"
        c = Command(command_id=f"c{i}", case_id=case.case_id, action=action, actor=actor,
                    role=role, passed=passed, stage=stage, reason="r", evidence_photos=["e"],
                    extension_minutes=30, department="water", type_code="0101",
                    report_id=f"r{i}")
        before = case
        try:
            case, events = apply(case, c, NOW + timedelta(minutes=i), decision=decision(handling))
        except IllegalTransition:
            assert case == before
            continue
        assert case.state in set(CaseState)
        if before.state in TERMINAL_STATES:
            pytest.fail("a terminal case accepted a command")
        history += events
        assert [e.seq for e in history] == list(range(1, len(history) + 1))
        assert case.seq == len(history)
        assert set(case.command_ids) == {e.data.command_id for e in history} - {None}
    assert replay(history) == case
