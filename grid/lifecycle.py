"""The case lifecycle as a pure state machine (decider pattern).

* :func:`open_case` turns a located, decided report into the opening events.
* :func:`decide` turns (case, command, now) into events, or raises :class:`IllegalTransition`.
* :func:`evolve` folds one event into the case; :func:`replay` rebuilds a case from its events.

``apply(case, command, now) -> (case, events)`` is ``decide`` followed by ``evolve``: the
events are the only source of truth, so replaying the history gives back the same case.
The case keeps what deciding needs, not its history (``grid.case/2``, see
:class:`~grid.models.Case`): each field below is folded from the events by :func:`evolve`.

National flow: reported → filed | rejected | merged | triage; filed → dispatched → accepted →
disposed → verified → closed; a failed verification sends the case to rework; a department's
return sends it back for re-dispatch (twice or more → command-center arbitration); extensions
are requested and granted; supervision orders and warnings apply to any open state; a
self-disposable case with evidence closes itself.

Emergencies (fire, traffic accidents, gas leaks, hazardous materials) are not grid cases:
reported → transferred (to 110/119/120; terminal for the grid) and, if the command center
opens the grid's part for the aftermath, transferred → filed → dispatched (``follow_up``).

A staged legal process (违法建筑, 群租, ...) opens its first stage with the first work order;
the lead department closes each stage with ``advance_stage`` (after the decision: on to
execution, or ``next_stage: court``), each stage due its own limit after the one before;
closing the last stage disposes the case, and a ``dispose`` before (the violation remedied)
closes the open stage and disposes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from grid.events import (
    CallbackEvent,
    ClassifiedData,
    ClassifiedEvent,
    CommandRejectedData,
    CommandRejectedEvent,
    DecisionData,
    DispatchedEvent,
    ExtensionGrantedEvent,
    ExtensionRequestedEvent,
    LegalStageClosedEvent,
    LegalStageOpened,
    MergedEvent,
    PartEvent,
    ReopenedEvent,
    ReportedData,
    ReportedEvent,
    SupervisedEvent,
    WarnedEvent,
    make_event,
    payload_model,
)
from grid.models import (
    CASE_SCHEMA,
    CASE_SCHEMA_V1,
    TERMINAL_STATES,
    Action,
    Callback,
    Case,
    CaseEvent,
    CaseState,
    Command,
    Decision,
    LegalStageSpec,
    LegalStageState,
    MergedReport,
    Part,
    Placement,
    Report,
    Role,
    WorkOrder,
    case_id_for,
)

S = CaseState
LEVELS = ("street", "district", "city")
DISPOSABLE = (S.DISPATCHED, S.ACCEPTED, S.REWORK)


class IllegalTransition(ValueError):
    """A command that the case's current state does not allow."""

    def __init__(self, state: CaseState, action: Action | str, detail: str = "") -> None:
        self.state = state
        self.action = Action(action)
        msg = f"action {self.action.value!r} is not allowed in state {state.value!r}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class NotPermitted(IllegalTransition):
    """A command by an actor or role that may not act on this case."""


# action -> (roles allowed, states allowed); None = any open state
RULES: dict[Action, tuple[frozenset[Role], frozenset[CaseState] | None]] = {
    Action.FILE: (frozenset({"command_center"}), frozenset({S.REPORTED, S.TRIAGE})),
    Action.CLASSIFY: (frozenset({"command_center"}), frozenset({S.TRIAGE})),
    Action.FOLLOW_UP: (frozenset({"command_center"}), frozenset({S.TRANSFERRED})),
    Action.ADVANCE_STAGE: (frozenset({"department"}), frozenset(DISPOSABLE)),
    Action.REJECT: (frozenset({"command_center"}), frozenset({S.REPORTED, S.TRIAGE, S.FILED})),
    Action.DISPATCH: (frozenset({"command_center", "system"}), frozenset({S.FILED, S.RETURNED})),
    Action.ACCEPT: (frozenset({"department"}), frozenset({S.DISPATCHED})),
    Action.DISPOSE: (frozenset({"department"}), frozenset(DISPOSABLE)),
    Action.RETURN: (frozenset({"department"}), frozenset({S.DISPATCHED, S.ACCEPTED})),
    Action.REQUEST_EXTENSION: (frozenset({"department"}), frozenset(DISPOSABLE)),
    Action.GRANT_EXTENSION: (frozenset({"command_center"}), frozenset(DISPOSABLE)),
    Action.DENY_EXTENSION: (frozenset({"command_center"}), frozenset(DISPOSABLE)),
    Action.REPORT_PART: (frozenset({"department"}), frozenset(DISPOSABLE)),
    Action.CLOSE_OUT_PART: (frozenset({"department", "command_center"}), frozenset(DISPOSABLE)),
    Action.VERIFY: (frozenset({"supervisor"}), frozenset({S.DISPOSED})),
    Action.CLOSE: (frozenset({"command_center"}), frozenset({S.VERIFIED})),
    Action.SELF_DISPOSE: (
        frozenset({"supervisor"}),
        frozenset({S.REPORTED, S.TRIAGE, S.FILED, S.DISPATCHED}),
    ),
    Action.SUPERVISE: (frozenset({"command_center", "system"}), None),
    Action.WARN: (frozenset({"system"}), None),
    Action.MERGE: (frozenset({"system", "command_center"}), None),
    Action.CALLBACK: (frozenset({"hotline", "command_center"}), frozenset({S.CLOSED})),
}


def _event(case: Case | None, kind: str, to: CaseState, actor: str, role: Role, at: datetime,
           reason: str = "", seq_offset: int = 0, case_id: str | None = None,
           placement: Placement | None = None, **data: Any) -> CaseEvent:
    cid = case_id or (case.case_id if case else "")
    seq = (case.seq if case else 0) + 1 + seq_offset
    where = placement or (case.placement if case else None)
    return make_event(
        kind, event_id=f"{cid}:{seq}", case_id=cid, seq=seq,
        state_from=case.state if case else None, state_to=to, actor=actor, role=role, at=at,
        reason=reason, data=payload_model(kind).of(**data),
        district=where.district if where else None, street=where.street if where else None,
    )


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True)


def open_case(report: Report, placement: Placement, decision: Decision, now: datetime,
              category: str | None = None, kind: str | None = None, via: str | None = None,
              ) -> tuple[Case, list[CaseEvent]]:
    """Open a case for a new report: reported, then triage, self-closed, or filed + dispatched.
    ``via``: the principal that wrote the report to its intake channel, kept on the event."""
    cid = case_id_for(report.rid, placement.partition_key)
    reported = ReportedEvent(
        event_id=f"{cid}:1", case_id=cid, seq=1, type="reported", state_from=None,
        state_to=S.REPORTED, actor=report.reporter_id, role="supervisor" if
        report.source == "supervisor" else "system", at=now, reason=f"source {report.source}",
        data=ReportedData(report=_dump(report), placement=_dump(placement),
                          type_code=decision.type_code, category=category, kind=kind,
                          **({"via": via} if via else {})),
        district=placement.district, street=placement.street,
    )
    typed = {"report": report, "placement": placement, "decision": decision}
    case = evolve(None, reported, typed=typed)
    events: list[CaseEvent] = [reported]
    if decision.transfer is not None:
        to = ", ".join(f"{x.number} {x.name_zh} {x.name_en}" for x in decision.transfer.services)
        nxt = [_event(case, "transferred", S.TRANSFERRED, "engine", "system", now,
                      f"emergency: transferred to {to}", decision=_dump(decision),
                      services=[x.number for x in decision.transfer.services])]
    elif decision.handling == "triage":
        why = ("guessed type: a person checks it" if decision.suggestions
               else "unclassified: manual triage by the command center")
        nxt = [_event(case, "triaged", S.TRIAGE, "engine", "system", now, why,
                      decision=_dump(decision))]
    elif decision.self_closed:
        nxt = [_event(case, "self_closed", S.CLOSED, report.reporter_id, "supervisor", now,
                      "self-disposal on the spot with evidence", decision=_dump(decision),
                      evidence_photos=list(report.evidence_photos))]
    else:
        filed = _event(case, "filed", S.FILED, "engine", "system", now,
                       f"rule {decision.winner}", decision=_dump(decision))
        case = evolve(case, filed, typed=typed)
        events.append(filed)
        nxt = [_dispatch_event(case, decision.department or "command_center", "engine",
                               "system", now, "auto-dispatch")]
    for ev in nxt:
        case = evolve(case, ev, typed=typed)
    return case, events + nxt


def _dispatch_event(case: Case, department: str, actor: str, role: Role, at: datetime,
                    reason: str, unit: str | None = None, unit_name: str | None = None,
                    **data: Any) -> CaseEvent:
    """A work order to ``department`` (its ``unit``); on the first dispatch of a joint case
    also one per assisting department of the decision (``assisting`` in the data)."""
    n = case.dispatches + 1
    dec = case.decision
    if unit is None and dec is not None and department == dec.department:
        unit, unit_name = dec.unit, dec.unit_name
    parts = None
    if dec is not None and dec.assisting and not case.assisting:
        parts = [{"department": a.department, "unit": a.unit, "unit_name": a.unit_name,
                  "work_order_id": f"{case.case_id}:{n}:{a.department}"}
                 for a in dec.assisting if a.department != department]
    stage = None
    if dec is not None and dec.legal_stages and not case.legal:  # the first stage opens
        stage = _stage_opened(dec.legal_stages[0], at, dec.legal_calendar)
    return _event(case, "dispatched", S.DISPATCHED, actor, role, at, reason,
                  department=department, unit=unit, unit_name=unit_name,
                  work_order_id=f"{case.case_id}:{n}", priority=case.priority, tier=case.tier,
                  assisting=parts or None, legal_stage=stage, **data)


def _stage_opened(spec: LegalStageSpec, at: datetime, calendar: str) -> LegalStageOpened:
    """A legal stage opening at ``at``: due ``spec.limit`` later in ``calendar``."""
    from grid.deadlines import default_calendar, due, parse_duration

    return LegalStageOpened(
        stage=spec.stage, name_zh=spec.name_zh, name_en=spec.name_en, limit=spec.limit,
        closes_when=spec.closes_when, opened_at=at,
        due=due(at, parse_duration(spec.limit), default_calendar(calendar)))


def _next_stage(case: Case, wanted: str | None) -> LegalStageSpec | None:
    """The stage after the open one: the next regular stage, or after the one before the
    last ``wanted`` (the last stage or its alternative, e.g. court); None after the last."""
    dec = case.decision
    cur = case.legal_stage
    assert dec is not None and cur is not None
    regular = [x for x in dec.legal_stages if not x.alternative]
    alts = [x for x in dec.legal_stages if x.alternative]
    ids = [x.stage for x in regular]
    if cur.stage not in ids:  # an alternative stage (court) is final
        if wanted:
            raise IllegalTransition(case.state, Action.ADVANCE_STAGE,
                                    f"{cur.stage} is the last stage; no next_stage")
        return None
    i = ids.index(cur.stage)
    if i == len(ids) - 1:
        if wanted:
            raise IllegalTransition(case.state, Action.ADVANCE_STAGE,
                                    f"{cur.stage} is the last stage; no next_stage")
        return None
    choices = [regular[i + 1], *(alts if i + 1 == len(ids) - 1 else [])]
    if wanted is None:
        return choices[0]
    found = next((x for x in choices if x.stage == wanted), None)
    if found is None:
        raise IllegalTransition(case.state, Action.ADVANCE_STAGE,
                                f"next_stage {wanted!r}: after {cur.stage} comes "
                                f"{' or '.join(x.stage for x in choices)}")
    return found


def _stage_closed(case: Case, at: datetime, note: str, nxt: LegalStageSpec | None,
                  by_disposal: bool = False) -> dict[str, Any]:
    cur = case.legal_stage
    assert cur is not None and case.decision is not None
    return {"stage": cur.stage, "due": cur.due.isoformat(), "on_time": at <= cur.due,
            "note": note, "by_disposal": by_disposal or None,
            "next": _stage_opened(nxt, at, case.decision.legal_calendar) if nxt else None}


def _check(case: Case, cmd: Command) -> None:
    roles, states = RULES[cmd.action]
    if cmd.role not in roles:
        raise NotPermitted(case.state, cmd.action,
                           f"role {cmd.role!r} may not; allowed: {', '.join(sorted(roles))}")
    if case.state in TERMINAL_STATES and cmd.action is not Action.CALLBACK and not (
            case.state is S.TRANSFERRED and cmd.action is Action.FOLLOW_UP):
        raise IllegalTransition(case.state, cmd.action, "the case is finished")
    if states is not None and case.state not in states and not (
            cmd.action is Action.FOLLOW_UP and case.state is S.TRANSFERRED):
        allowed = ", ".join(sorted(s.value for s in states))
        raise IllegalTransition(case.state, cmd.action, f"allowed only in: {allowed}")
    if cmd.role != "department":
        return
    if cmd.action is Action.REPORT_PART:
        if _part_of(case, cmd.actor) is None:
            raise NotPermitted(case.state, cmd.action,
                               f"{cmd.actor!r} has no open assisting part in this case "
                               f"(open: {', '.join(p.department for p in case.open_parts)})")
    elif not is_lead(case, cmd.actor):
        raise NotPermitted(case.state, cmd.action,
                           f"department {cmd.actor!r} is not responsible "
                           f"(work order is with {case.unit or case.department!r})")


def is_lead(case: Case, actor: str) -> bool:
    """Whether ``actor`` (a department id, or a unit id) holds the lead work order. When the
    order names a unit, only that unit or the department's desk may act."""
    return actor == case.department or (case.unit is not None and actor == case.unit)


def _part_of(case: Case, actor: str) -> Part | None:
    """The open assisting part ``actor`` (department or unit id) holds, if any."""
    return next((p for p in case.open_parts if actor in (p.department, p.unit)), None)


def already_applied(case: Case, command_id: str) -> bool:
    """At-least-once delivery: a command seen before has no further effect."""
    return command_id in case.command_ids


def decide(case: Case, cmd: Command, now: datetime, *, decision: Decision | None = None,
           extend: Callable[[datetime, timedelta, str], datetime] | None = None,
           unit_name: str | None = None) -> list[CaseEvent]:
    """Events that ``cmd`` causes on ``case`` at ``now``; [] if it was already applied.

    ``decision`` is required for CLASSIFY (the rules' decision for the new type);
    ``extend(due, extra, calendar)`` adds extension time in the case's
    calendar (default: plain add); ``unit_name`` names the ``unit`` of a DISPATCH.
    Who may do what in which state is :data:`RULES`; what each action does is its handler in
    :data:`HANDLERS`.
    """
    if already_applied(case, cmd.command_id):
        return []
    if cmd.action is Action.MERGE and cmd.report_id in case.report_ids:
        return []
    _check(case, cmd)
    handler = HANDLERS.get(cmd.action)
    if handler is None:  # pragma: no cover - every Action has a handler (a unit test says so)
        raise IllegalTransition(case.state, cmd.action, "unknown action")
    return handler(_Ctx(case, cmd, cmd.at or now, dict(command_id=cmd.command_id), decision,
                        extend, unit_name))


@dataclass(frozen=True)
class _Ctx:
    """One command being decided: the case, the command, its time and the decide() options."""

    case: Case
    cmd: Command
    at: datetime
    base: dict[str, Any]  # fields every event of the command carries (its command_id)
    decision: Decision | None = None
    extend: Callable[[datetime, timedelta, str], datetime] | None = None
    unit_name: str | None = None

    def ev(self, kind: str, to: CaseState, reason: str | None = None, **d: Any) -> CaseEvent:
        """An event of this command on this case (``reason`` defaults to the command's)."""
        return _event(self.case, kind, to, self.cmd.actor, self.cmd.role, self.at,
                      self.cmd.reason if reason is None else reason, **self.base, **d)

    def fail(self, why: str) -> IllegalTransition:
        return IllegalTransition(self.case.state, self.cmd.action, why)


def _file(c: _Ctx) -> list[CaseEvent]:
    return [c.ev("filed", S.FILED, decision=_dump(c.decision) if c.decision else None)]


def _classify(c: _Ctx) -> list[CaseEvent]:
    if c.decision is None or c.cmd.type_code is None:
        raise c.fail("classify needs a type_code")
    filed = c.ev("classified", S.FILED, decision=_dump(c.decision), type_code=c.cmd.type_code)
    after = evolve(c.case, filed)
    dispatched = _dispatch_event(after, c.decision.department or "command_center", c.cmd.actor,
                                 c.cmd.role, c.at, "dispatch after triage", **c.base)
    return [filed, dispatched]


def _follow_up(c: _Ctx) -> list[CaseEvent]:
    case, cmd, decision = c.case, c.cmd, c.decision
    if decision is None or cmd.type_code is None:
        raise c.fail("a follow-up needs the type_code of the aftermath (e.g. 0203 for a "
                     "damaged guardrail)")
    if decision.transfer is not None or decision.handling in ("triage", "emergency"):
        raise c.fail(f"type {cmd.type_code} cannot be followed up by the grid")
    opened = c.ev("follow_up_opened", S.FILED, decision=_dump(decision),
                  type_code=cmd.type_code,
                  transferred_to=[x.number for x in case.decision.transfer.services]
                  if case.decision and case.decision.transfer else None)
    after = evolve(case, opened)
    dispatched = _dispatch_event(after, decision.department or "command_center", cmd.actor,
                                 cmd.role, c.at, "dispatch of the follow-up", **c.base)
    return [opened, dispatched]


def _advance_stage(c: _Ctx) -> list[CaseEvent]:
    case, cmd, at = c.case, c.cmd, c.at
    cur = case.legal_stage
    if cur is None:
        raise c.fail("no legal-process stage is open in this case (only legal-process cases "
                     "have stages)")
    if not cmd.evidence_photos and not cmd.reason.strip():
        raise c.fail(f"closing stage {cur.stage} ({cur.name_zh}) needs a reason or "
                     f"evidence_photos: {cur.closes_when}")
    nxt = _next_stage(case, cmd.next_stage)
    closed = c.ev("legal_stage_closed", case.state, **_stage_closed(case, at, cmd.reason, nxt),
                  evidence_photos=list(cmd.evidence_photos))
    if nxt is not None:
        return [closed]
    after = evolve(case, closed)
    if after.open_parts:
        return [closed, _event(after, "lead_disposed", after.state, cmd.actor, cmd.role, at,
                               "the last legal stage closed", **c.base,
                               evidence_photos=list(cmd.evidence_photos),
                               waiting_for=[p.department for p in after.open_parts])]
    return [closed, _event(after, "disposed", S.DISPOSED, cmd.actor, cmd.role, at,
                           "the last legal stage closed", **c.base,
                           evidence_photos=list(cmd.evidence_photos))]


def _reject(c: _Ctx) -> list[CaseEvent]:
    return [c.ev("rejected", S.REJECTED)]


def _dispatch(c: _Ctx) -> list[CaseEvent]:
    case, cmd = c.case, c.cmd
    dept = cmd.department or case.department
    if not dept:
        raise c.fail("no department to dispatch to")
    kind = "redispatched" if case.state is S.RETURNED else "dispatched"
    e = _dispatch_event(case, dept, cmd.actor, cmd.role, c.at, cmd.reason, unit=cmd.unit,
                        unit_name=c.unit_name if cmd.unit else None, **c.base)
    return [e.model_copy(update={"type": kind})]


def _accept(c: _Ctx) -> list[CaseEvent]:
    return [c.ev("accepted", S.ACCEPTED)]


def _dispose(c: _Ctx) -> list[CaseEvent]:
    cmd = c.cmd
    if not cmd.evidence_photos and not cmd.reason.strip():
        raise c.fail("disposal feedback needs evidence_photos or a reason (e.g. 'transferred "
                     "to legal proceedings')")
    pre: list[CaseEvent] = []
    if c.case.legal_stage is not None:  # remedied before the process ran out: stage closes
        pre = [c.ev("legal_stage_closed", c.case.state,
                    **_stage_closed(c.case, c.at, cmd.reason, None, by_disposal=True))]
        c = replace(c, case=evolve(c.case, pre[0]))
    if c.case.open_parts:  # a joint case waits for its assisting departments
        return [*pre, c.ev("lead_disposed", c.case.state,
                           evidence_photos=list(cmd.evidence_photos),
                           waiting_for=[p.department for p in c.case.open_parts])]
    return [*pre, c.ev("disposed", S.DISPOSED, evidence_photos=list(cmd.evidence_photos))]


def _parts(c: _Ctx) -> list[CaseEvent]:
    return _part_events(c.case, c.cmd, c.at, c.ev)


def _callback(c: _Ctx) -> list[CaseEvent]:
    return _callback_events(c.case, c.cmd, c.at, c.ev)


def _return(c: _Ctx) -> list[CaseEvent]:
    case = c.case
    if not c.cmd.reason.strip():
        raise c.fail("a return needs a reason")
    out = [c.ev("returned", S.RETURNED, department=case.department)]
    if case.returns + 1 >= 2:
        after = evolve(case, out[0])
        out.append(_event(after, "arbitration", S.RETURNED, "engine", "system", c.at,
                          f"returned {case.returns + 1} times: command-center arbitration",
                          **c.base))
    return out


def _request_extension(c: _Ctx) -> list[CaseEvent]:
    if not c.cmd.extension_minutes:
        raise c.fail("extension_minutes is required")
    return [c.ev("extension_requested", c.case.state, minutes=c.cmd.extension_minutes)]


def _deny_extension(c: _Ctx) -> list[CaseEvent]:
    if c.case.extension_requested_minutes is None:
        raise c.fail("no extension was requested")
    return [c.ev("extension_denied", c.case.state)]


def _grant_extension(c: _Ctx) -> list[CaseEvent]:
    case = c.case
    minutes = c.cmd.extension_minutes or case.extension_requested_minutes
    if not minutes:
        raise c.fail("no extension requested or given")
    calendar = case.decision.calendar if case.decision else "24h"
    add = c.extend or (lambda due, extra, _cal: due + extra)
    new = {k: add(v, timedelta(minutes=minutes), calendar).isoformat()
           for k, v in case.deadlines.items() if k in ("dispose", "verify")}
    return [c.ev("extension_granted", case.state, minutes=minutes, deadlines=new)]


def _verify(c: _Ctx) -> list[CaseEvent]:
    if c.cmd.passed is None:
        raise c.fail("verify needs passed: true or false")
    photos = list(c.cmd.evidence_photos) or None  # the supervisor's photo, as evidence
    if c.cmd.passed:
        return [c.ev("verified", S.VERIFIED, evidence_photos=photos)]
    return [c.ev("rework", S.REWORK, department=c.case.department, evidence_photos=photos)]


def _close(c: _Ctx) -> list[CaseEvent]:
    return [c.ev("closed", S.CLOSED)]


def _self_dispose(c: _Ctx) -> list[CaseEvent]:
    handling = c.case.decision.handling if c.case.decision else None
    if handling not in (None, "self_disposable", "triage"):
        raise c.fail(f"{handling} cases cannot be self-disposed")
    if not c.cmd.evidence_photos:
        raise c.fail("self-disposal needs at least one evidence photo")
    return [c.ev("self_closed", S.CLOSED, evidence_photos=list(c.cmd.evidence_photos))]


def _supervise(c: _Ctx) -> list[CaseEvent]:
    case = c.case
    idx = LEVELS.index(case.level) if case.level in LEVELS else 0
    level = LEVELS[min(idx + 1, len(LEVELS) - 1)]
    key = f"{c.cmd.stage or 'dispose'}@{level}"
    if key in case.supervised:
        return []
    return [c.ev("supervised", case.state, level=level, key=key, stage=c.cmd.stage)]


def _warn(c: _Ctx) -> list[CaseEvent]:
    if c.cmd.stage in c.case.warned:
        return []
    return [c.ev("warned", c.case.state, stage=c.cmd.stage)]


def _merge(c: _Ctx) -> list[CaseEvent]:
    return [c.ev("merged", c.case.state, report_id=c.cmd.report_id,
                 reporter_id=c.cmd.reporter_id, fingerprint=c.cmd.fingerprint)]


# What each action does (who may do it, and in which states, is RULES).
HANDLERS: dict[Action, Callable[[_Ctx], list[CaseEvent]]] = {
    Action.FILE: _file,
    Action.CLASSIFY: _classify,
    Action.FOLLOW_UP: _follow_up,
    Action.ADVANCE_STAGE: _advance_stage,
    Action.REJECT: _reject,
    Action.DISPATCH: _dispatch,
    Action.ACCEPT: _accept,
    Action.DISPOSE: _dispose,
    Action.REPORT_PART: _parts,
    Action.CLOSE_OUT_PART: _parts,
    Action.CALLBACK: _callback,
    Action.RETURN: _return,
    Action.REQUEST_EXTENSION: _request_extension,
    Action.GRANT_EXTENSION: _grant_extension,
    Action.DENY_EXTENSION: _deny_extension,
    Action.VERIFY: _verify,
    Action.CLOSE: _close,
    Action.SELF_DISPOSE: _self_dispose,
    Action.SUPERVISE: _supervise,
    Action.WARN: _warn,
    Action.MERGE: _merge,
}


def _part_events(case: Case, cmd: Command, at: datetime, ev: Callable[..., CaseEvent],
                 ) -> list[CaseEvent]:
    """An assisting department reports its part (evidence or a reason), or the lead / the
    command center closes a part out with a reason; the last part of a case whose lead has
    disposed disposes the case."""
    if cmd.action is Action.REPORT_PART:
        part = _part_of(case, cmd.actor)
        if not cmd.evidence_photos and not cmd.reason.strip():
            raise IllegalTransition(case.state, cmd.action,
                                    "a part needs evidence_photos or a reason")
        kind = "part_reported"
    else:
        part = _part_of(case, cmd.department or "")
        if part is None:
            raise IllegalTransition(case.state, cmd.action, "name the open assisting part "
                                    f"in department (open: "
                                    f"{', '.join(p.department for p in case.open_parts)})")
        if not cmd.reason.strip():
            raise IllegalTransition(case.state, cmd.action, "closing a part out needs a reason")
        kind = "part_closed_out"
    assert part is not None
    out = [ev(kind, case.state, department=part.department, unit=part.unit,
              work_order_id=part.work_order_id, evidence_photos=list(cmd.evidence_photos))]
    after = evolve(case, out[0])
    if after.lead_disposed and not after.open_parts:
        out.append(_event(after, "disposed", S.DISPOSED, "engine", "system", at,
                          "the lead and every assisting department are done",
                          command_id=cmd.command_id))
    return out


def _callback_events(case: Case, cmd: Command, at: datetime, ev: Callable[..., CaseEvent],
                     ) -> list[CaseEvent]:
    """回访: record the citizen's satisfaction once per closing; "not satisfied" within the
    callback window reopens the case for rework (at most ``max_reopens`` times)."""
    from grid.hotline import config

    cfg = config()
    if case.report.ticket is None:
        raise IllegalTransition(case.state, cmd.action, "not a hotline case (no ticket)")
    if cmd.satisfaction is None:
        raise IllegalTransition(case.state, cmd.action, "callback needs satisfaction: "
                                "satisfied, basically_satisfied or not_satisfied")
    closed = case.closed_at or case.updated_at
    if case.called_back:
        raise IllegalTransition(case.state, cmd.action, "the citizen was already called back "
                                "after this closing")
    late = at - closed > cfg.callback_window
    if late:
        raise IllegalTransition(case.state, cmd.action, f"the callback window "
                                f"({cfg.callback_window}) after closing has passed")
    reopen = cmd.satisfaction == "not_satisfied" and case.reopens < cfg.max_reopens
    note = ("" if reopen or cmd.satisfaction != "not_satisfied"
            else f"not reopened: reopened {case.reopens} time(s) already (limit "
                 f"{cfg.max_reopens})")
    out = [ev("callback", S.CLOSED, satisfaction=cmd.satisfaction, comment=cmd.reason,
              reopened=reopen, note=note or None)]
    if reopen:
        after = evolve(case, out[0])
        out.append(_event(after, "reopened", S.REWORK, cmd.actor, cmd.role, at,
                          "citizen not satisfied: reopened for review and rework",
                          command_id=cmd.command_id, department=case.department,
                          deadlines=_reopen_deadlines(case, at)))
    return out


def _reopen_deadlines(case: Case, at: datetime) -> dict[str, str]:
    """New disposal and verification deadlines: the original spans, counted from ``at``."""
    dec = case.decision
    due = dec.deadlines if dec else {}
    out: dict[str, str] = {}
    if "dispose" in due:
        out["dispose"] = (at + (due["dispose"] - case.created_at)).isoformat()
        if "verify" in due:
            out["verify"] = (at + (due["verify"] - case.created_at)).isoformat()
    return out


def evolve(case: Case | None, e: CaseEvent, *, typed: dict[str, Any] | None = None) -> Case:
    """Fold one event into the case (the only way a case changes).

    ``typed`` may hold the already-validated ``report``, ``placement`` and ``decision`` that
    the event carries as JSON (saves re-validating them when a case is opened; replay
    validates them from the event, and yields the same case). An event of a type without a
    fold (also :class:`~grid.events.UnknownEvent`) changes only what every event changes:
    state, time, ``seq``, ``reason``, ``command_ids`` and ``recent``."""
    typed = typed or {}
    if isinstance(e, ReportedEvent):
        d = e.data
        report = typed.get("report") or d.parsed_report()
        return Case(
            case_id=e.case_id, state=S.REPORTED, report=report, report_ids=[report.rid],
            placement=typed.get("placement") or d.parsed_placement(),
            type_code=d.type_code, category=d.category,
            kind=d.kind, created_at=e.at, updated_at=e.at, seq=1, reason=e.reason,
            recent=[e.model_copy(update={"data": d.model_copy(update=_OWN_REPORT)})],
        )
    assert case is not None, "the first event of a case must be 'reported'"
    cid = e.data.command_id
    u: dict[str, Any] = {"state": e.state_to, "updated_at": e.at, "seq": case.seq + 1}
    # the latest input's events: one input's events share its command id (none: the opening)
    same = bool(case.recent) and case.recent[-1].data.command_id == cid
    new_decision = isinstance(e.data, DecisionData) and bool(e.data.decision)
    u["recent"] = [*((_with_decision(case) if new_decision else case.recent) if same else ()),
                   _kept(e)]
    if cid is not None and cid not in case.command_ids:
        u["command_ids"] = [*case.command_ids, cid]
    if e.type != "warned":
        u["reason"] = e.reason
    if isinstance(e.data, DecisionData) and e.data.decision is not None:
        dec: Decision = typed.get("decision") or Decision.model_validate(e.data.decision)
        u.update(decision=dec, department=dec.department, tier=dec.tier, priority=dec.priority,
                 deadlines=dict(dec.deadlines), type_code=dec.type_code or case.type_code,
                 level=dec.tier if dec.tier in LEVELS else "street")
        if isinstance(e.data, ClassifiedData) and e.data.type_code is not None:
            u["type_code"] = e.data.type_code
    fold = _FOLDS.get(e.type)
    if fold is not None:
        fold(case, e, u)
    return case.model_copy(update=u)


# How each event type changes a case, beyond what every event changes: a fold adds the
# changed fields to ``u`` (the update :func:`evolve` applies). Types without one change no
# other field. Each fold takes the event class of its type (grid.events.EVENT_TYPES; a unit
# test checks the annotations against it).
_Fold = Callable[[Case, Any, dict[str, Any]], None]


def _f_dispatched(case: Case, e: DispatchedEvent, u: dict[str, Any]) -> None:
    d = e.data
    u.update(department=d.department, unit=d.unit, unit_name=d.unit_name,
             dispatches=case.dispatches + 1)
    if d.assisting:
        u["assisting"] = [Part(department=p.department, unit=p.unit, unit_name=p.unit_name,
                               work_order_id=p.work_order_id) for p in d.assisting]
    if d.legal_stage:
        u["legal"] = [*case.legal, _stage_state(d.legal_stage)]


def _stage_state(s: LegalStageOpened) -> LegalStageState:
    return LegalStageState(stage=s.stage, name_zh=s.name_zh, name_en=s.name_en, limit=s.limit,
                           closes_when=s.closes_when, opened_at=s.opened_at, due=s.due)


def _f_legal_stage_closed(case: Case, e: LegalStageClosedEvent, u: dict[str, Any]) -> None:
    d = e.data
    legal = list(case.legal)
    if legal and legal[-1].stage == d.stage:
        legal[-1] = legal[-1].model_copy(update={
            "closed_at": e.at, "on_time": bool(d.on_time), "note": d.note})
    if d.next:
        legal.append(_stage_state(d.next))
    u["legal"] = legal


def _f_part(case: Case, e: PartEvent, u: dict[str, Any]) -> None:
    status = "done" if e.type == "part_reported" else "closed_out"
    u["assisting"] = [p.model_copy(update={"status": status})
                      if p.work_order_id == e.data.work_order_id else p
                      for p in case.assisting]


def _f_callback(case: Case, e: CallbackEvent, u: dict[str, Any]) -> None:
    d = e.data
    u["callbacks"] = [*case.callbacks, Callback(
        satisfaction=d.satisfaction, comment=d.comment, at=e.at, reopened=d.reopened)]
    u["called_back"] = True


def _f_reopened(case: Case, e: ReopenedEvent, u: dict[str, Any]) -> None:
    u.update(reopens=case.reopens + 1, reworks=case.reworks + 1, lead_disposed=False,
             closed_at=None, closed_on_time=None, disposed_at=None,
             deadlines={**case.deadlines, **e.data.deadlines}, warned=[], supervised=[])


def _f_extension_requested(case: Case, e: ExtensionRequestedEvent, u: dict[str, Any]) -> None:
    u.update(extension_requested_minutes=e.data.minutes)


def _f_extension_granted(case: Case, e: ExtensionGrantedEvent, u: dict[str, Any]) -> None:
    u.update(deadlines={**case.deadlines, **e.data.deadlines}, extensions=case.extensions + 1,
             extension_requested_minutes=None)


def _f_supervised(case: Case, e: SupervisedEvent, u: dict[str, Any]) -> None:
    u.update(level=e.data.level, supervised=[*case.supervised, e.data.key])


def _f_warned(case: Case, e: WarnedEvent, u: dict[str, Any]) -> None:
    u.update(warned=[*case.warned, e.data.stage])


def _f_merged(case: Case, e: MergedEvent, u: dict[str, Any]) -> None:
    d = e.data
    u.update(report_ids=[*case.report_ids, d.report_id], merged=[*case.merged, MergedReport(
        report_id=d.report_id, reporter_id=d.reporter_id, fingerprint=d.fingerprint)])


def _f_closed(case: Case, e: CaseEvent, u: dict[str, Any]) -> None:
    due = case.deadlines.get("dispose") or u.get("deadlines", {}).get("dispose")
    done = case.disposed_at or e.at
    u.update(closed_at=e.at, closed_on_time=due is None or done <= due, called_back=False)
    if e.type == "self_closed":
        u.update(tier="self", department=None)


def _f_follow_up(case: Case, e: ClassifiedEvent, u: dict[str, Any]) -> None:
    u.update(follow_up_at=e.at)


_FOLDS: dict[str, _Fold] = {
    "dispatched": _f_dispatched,
    "redispatched": _f_dispatched,
    "legal_stage_closed": _f_legal_stage_closed,
    "disposed": lambda case, e, u: u.update(disposed_at=e.at, lead_disposed=True),
    "lead_disposed": lambda case, e, u: u.update(lead_disposed=True),
    "part_reported": _f_part,
    "part_closed_out": _f_part,
    "callback": _f_callback,
    "reopened": _f_reopened,
    "returned": lambda case, e, u: u.update(returns=case.returns + 1),
    "arbitration": lambda case, e, u: u.update(arbitration=True),
    "rework": lambda case, e, u: u.update(reworks=case.reworks + 1, lead_disposed=False),
    "extension_requested": _f_extension_requested,
    "extension_granted": _f_extension_granted,
    "extension_denied": lambda case, e, u: u.update(extension_requested_minutes=None),
    "supervised": _f_supervised,
    "warned": _f_warned,
    "merged": _f_merged,
    "follow_up_opened": _f_follow_up,
    "closed": _f_closed,
    "self_closed": _f_closed,
}


def apply(case: Case, cmd: Command, now: datetime, **kw: Any) -> tuple[Case, list[CaseEvent]]:
    """Decide and fold: the new case and the events the command produced."""
    events = decide(case, cmd, now, **kw)
    for e in events:
        case = evolve(case, e)
    return case, events


def replay(events: Iterable[CaseEvent]) -> Case:
    """Rebuild a case from its event history."""
    case: Case | None = None
    for e in events:
        case = evolve(case, e)
    if case is None:
        raise ValueError("no events to replay")
    return case


# What a grid.case/1 record (with the whole history) lacks of grid.case/2: derived by replay.
DERIVED = ("unit_name", "called_back", "follow_up_at", "seq", "reason", "merged", "command_ids",
           "recent")


def decode_case(raw: bytes | str) -> Case:
    """A case from its JSON (the changelog value): ``grid.case/2``, or a ``grid.case/1``
    record (with the whole ``history``) read as /2 — the stored fields as they are, the new
    ones derived by replaying the history through :func:`evolve` (the folds that keep them
    from then on), the history dropped. So a running deployment's case state survives the
    upgrade; the next write of the case stores /2."""
    try:
        return Case.model_validate_json(raw)
    except ValidationError:
        data = json.loads(raw)
        if not (isinstance(data, dict) and data.get("schema") == CASE_SCHEMA_V1):
            raise
    from grid.events import parse_event

    history = data.pop("history", None) or []
    data["schema"] = CASE_SCHEMA
    case = Case.model_validate(data)
    if not history:
        return case
    derived = replay(parse_event(e) for e in history)
    return case.model_copy(update={k: getattr(derived, k) for k in DERIVED})


def redelivered(case: Case, *, command_id: str | None = None,
                report_id: str | None = None) -> list[CaseEvent]:
    """The events a command (``command_id``) or a report (``report_id``: the opening one or a
    merged duplicate) caused, as they were published, if it was the case's latest input
    (``recent``); [] for an older one (its output went out before a later input of the case
    was handled)."""
    recent = case.recent
    if command_id is not None:
        found = [e for e in recent if e.data.command_id == command_id]
    elif report_id == case.report.rid:
        found = list(recent) if recent and recent[0].type == "reported" else []
    else:
        found = [e for e in recent if isinstance(e, MergedEvent)
                 and e.data.report_id == report_id]
    return [_restored(case, e) for e in found]


# In ``Case.recent`` the report, placement and decision the case holds itself are {}.
_OWN_REPORT: dict[str, Any] = {"report": {}, "placement": {}}
_OWN_DECISION: dict[str, Any] = {"decision": {}}


def _kept(e: CaseEvent) -> CaseEvent:
    """``e`` as ``recent`` keeps it: a decision it carries is the case's own (after folding
    it) and is left out."""
    d = e.data
    if isinstance(d, DecisionData) and d.decision:
        return e.model_copy(update={"data": d.model_copy(update=_OWN_DECISION)})
    return e


def _with_decision(case: Case) -> list[CaseEvent]:
    """``case.recent`` with a left-out decision put back (a new one is about to come)."""
    if case.decision is None:
        return list(case.recent)
    return [e.model_copy(update={"data": e.data.model_copy(
        update={"decision": _dump(case.decision)})})
        if isinstance(e.data, DecisionData) and e.data.decision == {} else e
        for e in case.recent]


def _restored(case: Case, e: CaseEvent) -> CaseEvent:
    """An event of ``case.recent`` with the case's own report, placement, decision back."""
    d = e.data
    if isinstance(d, ReportedData) and d.report == {}:
        return e.model_copy(update={"data": d.model_copy(update={
            "report": _dump(case.report), "placement": _dump(case.placement)})})
    if isinstance(d, DecisionData) and d.decision == {} and case.decision is not None:
        return e.model_copy(update={"data": d.model_copy(update={
            "decision": _dump(case.decision)})})
    return e


def rejection_event(case: Case, cmd: Command, error: Exception, now: datetime) -> CaseEvent:
    """A 'command_rejected' event for the event log; it does not change the case."""
    return CommandRejectedEvent(
        event_id=f"{case.case_id}:rejected:{cmd.command_id}", case_id=case.case_id, seq=0,
        type="command_rejected", state_from=case.state, state_to=case.state, actor=cmd.actor,
        role=cmd.role, at=now, reason=str(error),
        data=CommandRejectedData(
            command_id=cmd.command_id, action=cmd.action.value,
            refused="forbidden" if isinstance(error, NotPermitted) else "conflict"),
        district=case.placement.district, street=case.placement.street,
    )


def work_orders_for(case: Case, e: CaseEvent) -> list[WorkOrder]:
    """The work orders a 'dispatched'/'redispatched' event issues: the lead's, then one per
    assisting department it opens."""
    lead = work_order_for(case, e)
    out = [lead]
    for part in _dispatched(e).data.assisting or []:
        out.append(lead.model_copy(update={
            "work_order_id": part.work_order_id, "department": part.department,
            "unit": part.unit, "unit_name": part.unit_name, "role": "assisting",
            "lead_department": lead.department}))
    return out


def _dispatched(e: CaseEvent) -> DispatchedEvent:
    if not isinstance(e, DispatchedEvent):
        raise TypeError(f"a work order comes from a dispatched event, not {e.type!r}")
    return e


def work_order_for(case: Case, e: CaseEvent) -> WorkOrder:
    """The lead work order a 'dispatched'/'redispatched' event issues to its department."""
    p = case.placement
    dec = case.decision
    d = _dispatched(e).data
    return WorkOrder(
        work_order_id=d.work_order_id, case_id=case.case_id,
        department=d.department, unit=d.unit,
        unit_name=d.unit_name, priority=case.priority, tier=case.tier,
        type_code=case.type_code, handling=dec.handling if dec else "ordinary", issued_at=e.at,
        due={k: v for k, v in case.deadlines.items() if k in ("dispose", "verify")},
        lon=p.lon, lat=p.lat, district=p.district, street=p.street, cell=p.cell,
        description=case.report.description, address=case.report.address,
        rule=dec.winner if dec else None, closing_standard=dec.closing_standard if dec else "",
        report_received_at=case.created_at,
    )
