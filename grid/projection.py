"""Read model of the case event log (grid.case-events.v1): pure, in memory.

:class:`Projection` folds :class:`~grid.models.CaseEvent` objects or their JSON dicts into one
:class:`CaseSummary` per case and keeps the aggregates the command center and the
evaluation report (考核评价) need. Input is at-least-once: an event seen twice (same
``event_id``, or a ``seq`` already applied) changes nothing; an event that arrives before
its predecessors waits until they come.

Evaluation figures (see docs/evaluation.md): for a period ``[start, end)`` the *cohort* of
a department (or street) is the cases whose first work order was issued in the period,
attributed to the department holding the case's last work order. Over the cohort:

* closure rate 结案率 = closed / dispatched
* on-time closure rate 按期结案率 = closed on time / closed
* rework rate 返工率 = cases with ≥ 1 rework / cases disposed at least once
* extension rate 延期率 = cases with ≥ 1 granted extension / dispatched

plus ``open`` (cohort cases not closed, rejected or merged) and ``overdue`` (open and past
the deadline of the stage they are working on, at ``now``). A rate is ``None`` when its
denominator is 0.
"""

from __future__ import annotations

import base64
import bisect
import builtins
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from grid.deadlines import SHANGHAI
from grid.events import (
    CallbackEvent,
    ClassifiedData,
    DecisionData,
    DispatchedEvent,
    ExtensionGrantedEvent,
    LegalStageClosedEvent,
    MergedData,
    MergedEvent,
    ReopenedEvent,
    ReportedEvent,
    SupervisedEvent,
    dump_event,
    parse_event,
)
from grid.models import CURRENT_STAGE, TERMINAL_STATES, CaseEvent

TZ = SHANGHAI  # days are Shanghai days
TERMINAL = frozenset(s.value for s in TERMINAL_STATES)  # as plain strings (SQL parameters)
TIERS = ("self", "community", "street", "district", "city")
ESCALATION_LEVELS = ("street", "district", "city")
WORK_ORDER_OPEN = frozenset({"dispatched", "accepted", "rework"})
# states in which the open legal-process stage (if any) is the stage worked on
LEGAL_STAGE_STATES = WORK_ORDER_OPEN
COUNTER_KEYS = ("reported", "filed", "self_closed", "dispatched", "closed", "overdue", "merged")
DECISION_FIELDS = ("type_code", "department", "tier", "priority", "handling", "alert", "calendar",
                   "winner", "rules", "ruleset_version", "closing_standard", "explanation",
                   "transfer", "suggestions", "legal_stages", "legal_rule")
HISTORY_FIELDS = ("event_id", "seq", "type", "state_from", "state_to", "actor", "role", "at",
                  "reason")


def _dt(v: Any) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromisoformat(v)


def _time(v: Any) -> datetime:
    """A time given as a datetime or as ISO 8601 text (a JSON document's)."""
    return v if isinstance(v, datetime) else datetime.fromisoformat(v)


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


@dataclass(slots=True)
class CaseSummary:
    """What the read model keeps of one case (no full history, no report photos)."""

    case_id: str
    state: str = "reported"
    type_code: str | None = None
    category: str | None = None
    kind: str | None = None
    department: str | None = None
    unit: str | None = None  # the lead department's unit that acts (registry)
    unit_name: str | None = None
    priority: str = "normal"
    tier: str = "street"
    level: str = "street"
    handling: str | None = None
    district: str | None = None
    street: str | None = None
    community: str | None = None
    cell: str | None = None
    patrol_area: str | None = None  # the supervisors' responsibility grid (scopes lists)
    lon: float | None = None
    lat: float | None = None
    source: str | None = None
    description: str = ""
    address: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deadlines: dict[str, datetime] = field(default_factory=dict)
    filed_at: datetime | None = None
    dispatched_at: datetime | None = None  # first work order
    disposed_at: datetime | None = None
    closed_at: datetime | None = None
    closed_on_time: bool | None = None
    merged_at: datetime | None = None  # the last duplicate report merged into it
    work_order_id: str | None = None
    satisfaction: str | None = None  # the last 回访 callback's answer (hotline cases)
    reopens: int = 0  # times a "not satisfied" callback reopened it
    dispatches: int = 0
    reworks: int = 0
    extensions: int = 0
    returns: int = 0
    report_count: int = 1
    reporters: tuple[str, ...] = ()  # reporter ids of the opening and merged reports
    alert: bool = False
    self_closed: bool = False
    arbitration: bool = False
    supervisions: int = 0
    warnings: int = 0
    seq: int = 0  # last applied event
    # staged legal process: the open stage and every stage so far (JSON-ready dicts: stage,
    # name_zh, name_en, limit, closes_when, opened_at, due, closed_at, on_time)
    legal_stage: str | None = None
    legal_stages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.state not in TERMINAL

    @property
    def stage(self) -> str | None:
        """The stage the case is working on (None when finished or verified): while a
        department works on a staged legal process, its open stage (investigation, ...)."""
        if self.legal_stage and self.state in LEGAL_STAGE_STATES:
            return self.legal_stage
        return CURRENT_STAGE.get(self.state)

    def due(self) -> datetime | None:
        stage = self.stage
        if stage and stage == self.legal_stage and stage not in self.deadlines:
            open_ = next((x for x in reversed(self.legal_stages) if x.get("stage") == stage),
                         None)
            return _dt(open_.get("due")) if open_ else None
        return self.deadlines.get(stage) if stage else None

    def lateness(self, now: datetime) -> timedelta | None:
        """How far past its current stage's deadline an open case is (None if not overdue)."""
        due = self.due()
        if due is None or not self.is_open or due > now:
            return None
        return now - due

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-ready dict (ISO timestamps); with ``now``: stage, due, overdue and lateness."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, datetime):
                d[k] = v.isoformat()
        d["deadlines"] = {k: v.isoformat() for k, v in self.deadlines.items()}
        d["stage"] = self.stage
        if now is not None:
            late = self.lateness(now)
            d["overdue"] = late is not None
            d["late_seconds"] = round(late.total_seconds()) if late is not None else 0
        return d


@dataclass(frozen=True)
class Figures:
    """Evaluation figures for one department or street over a period (see module doc)."""

    key: str
    dispatched: int = 0
    closed: int = 0
    closed_on_time: int = 0
    disposed: int = 0
    reworked: int = 0
    extended: int = 0
    open: int = 0
    overdue: int = 0

    @staticmethod
    def _rate(num: int, den: int) -> float | None:
        return round(num / den, 4) if den else None

    @property
    def closure_rate(self) -> float | None:
        return self._rate(self.closed, self.dispatched)

    @property
    def on_time_rate(self) -> float | None:
        return self._rate(self.closed_on_time, self.closed)

    @property
    def rework_rate(self) -> float | None:
        return self._rate(self.reworked, self.disposed)

    @property
    def extension_rate(self) -> float | None:
        return self._rate(self.extended, self.dispatched)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(closure_rate=self.closure_rate, on_time_rate=self.on_time_rate,
                 rework_rate=self.rework_rate, extension_rate=self.extension_rate)
        return d


# what each event type adds to the day's counters (see Projection.counters)
COUNTED: dict[str, tuple[str, ...]] = {
    "reported": ("reported",), "filed": ("filed",), "classified": ("filed",),
    "follow_up_opened": ("filed",),
    "dispatched": ("dispatched",), "redispatched": (), "closed": ("closed",),  # cases
    "self_closed": ("closed", "self_closed"), "merged": ("merged",),
}


def new_case(e: CaseEvent) -> CaseSummary:
    """The summary a ``reported`` event opens (before :func:`fold` applies the event)."""
    if not isinstance(e, ReportedEvent):
        raise TypeError(f"a case opens with a reported event, not {e.type!r}")
    d = e.data
    r, p = d.report, d.placement  # the embedded report and placement documents (JSON)
    return CaseSummary(
        case_id=e.case_id, type_code=d.type_code, category=d.category,
        kind=d.kind, district=p.get("district") or e.district,
        street=p.get("street") or e.street, community=p.get("community"),
        cell=p.get("cell"), patrol_area=p.get("patrol_area"), lon=p.get("lon"),
        lat=p.get("lat"), source=r.get("source"),
        reporters=(r["reporter_id"],) if r.get("reporter_id") else (),
        description=r.get("description", ""), address=r.get("address"),
        created_at=e.at, updated_at=e.at)


def report_facts(r: dict[str, Any]) -> dict[str, Any]:
    """What a case detail shows of its opening report (no photo URLs, only their count)."""
    return {k: r.get(k) for k in ("report_id", "reporter_id", "reported_at", "source",
                                  "self_disposed", "component_id")} | {
        "photos": len(r.get("photos") or ())}


def decision_facts(dec: dict[str, Any]) -> dict[str, Any]:
    """What a case detail shows of a routing decision."""
    return {k: dec.get(k) for k in DECISION_FIELDS}


def decision_of(e: CaseEvent) -> dict[str, Any] | None:
    """The decision document an event carries (filed, triaged, classified, …), if any."""
    return e.data.decision if isinstance(e.data, DecisionData) else None


def merged_report(e: CaseEvent) -> MergedData | None:
    """The duplicate report a ``merged`` event adds to its case."""
    return e.data if isinstance(e, MergedEvent) else None


def history_entry(e: dict[str, Any]) -> dict[str, Any]:
    """One line of a case's history (from the event's JSON): the event without the report,
    placement and decision."""
    h = {k: e.get(k) for k in HISTORY_FIELDS}
    data = {k: v for k, v in (e.get("data") or {}).items()
            if k not in ("report", "placement", "decision")}
    if data:
        h["data"] = data
    return h


def fold(c: CaseSummary, e: CaseEvent, category_of: Any = None) -> tuple[str, ...]:
    """Apply the case's next event ``e`` (``seq == c.seq + 1``) to ``c`` in place.

    Returns the day counters the event adds to (:data:`COUNTED`). The one definition of
    what each event type does to a case summary: the in-memory projection and the SQL
    store both fold with it. A type without a step (also an unknown type, a newer writer's)
    changes only seq, state and time.
    """
    c.seq = e.seq
    c.state = e.state_to.value
    c.updated_at = e.at
    dec = decision_of(e)
    if dec is not None:
        _fold_decision(c, e, dec, category_of)
    step = _SUMMARY_FOLDS.get(e.type)
    if step is not None:
        step(c, e)
    return COUNTED.get(e.type, ())


def _fold_decision(c: CaseSummary, e: CaseEvent, dec: dict[str, Any],
                   category_of: Any) -> None:
    """The rules' decision an event carries (opened, classified, followed up): the embedded
    decision document (JSON, grid.models.Decision's form)."""
    c.department = dec.get("department")
    c.unit, c.unit_name = dec.get("unit"), dec.get("unit_name")
    c.tier, c.priority = dec.get("tier", c.tier), dec.get("priority", c.priority)
    c.handling = dec.get("handling")
    c.deadlines = {k: _time(v) for k, v in (dec.get("deadlines") or {}).items()}
    c.alert = bool(dec.get("alert"))
    typed = e.data.type_code if isinstance(e.data, ClassifiedData) else None
    c.type_code = typed or dec.get("type_code") or c.type_code
    c.level = c.tier if c.tier in ESCALATION_LEVELS else "street"
    if category_of and c.type_code and e.type == "classified":
        c.category = category_of(c.type_code) or c.category


def _s_filed(c: CaseSummary, e: CaseEvent) -> None:
    c.filed_at = c.filed_at or e.at


def _s_dispatched(c: CaseSummary, e: DispatchedEvent) -> None:
    d = e.data
    c.department = d.department
    c.unit, c.unit_name = d.unit, d.unit_name
    c.work_order_id = d.work_order_id
    c.dispatches += 1
    c.dispatched_at = c.dispatched_at or e.at
    if d.legal_stage:
        c.legal_stages = [*c.legal_stages, d.legal_stage.model_dump(mode="json")]
        c.legal_stage = d.legal_stage.stage


def _s_legal_stage_closed(c: CaseSummary, e: LegalStageClosedEvent) -> None:
    d = e.data
    stages = [dict(x) for x in c.legal_stages]
    if stages and stages[-1].get("stage") == d.stage:
        stages[-1].update(closed_at=_iso(e.at), on_time=bool(d.on_time))
    if d.next:
        stages.append(d.next.model_dump(mode="json"))
    c.legal_stages = stages
    c.legal_stage = d.next.stage if d.next else None


def _s_disposed(c: CaseSummary, e: CaseEvent) -> None:
    c.disposed_at = e.at


def _s_returned(c: CaseSummary, e: CaseEvent) -> None:
    c.returns += 1


def _s_arbitration(c: CaseSummary, e: CaseEvent) -> None:
    c.arbitration = True


def _s_rework(c: CaseSummary, e: CaseEvent) -> None:
    c.reworks += 1


def _s_callback(c: CaseSummary, e: CallbackEvent) -> None:
    c.satisfaction = e.data.satisfaction


def _s_reopened(c: CaseSummary, e: ReopenedEvent) -> None:
    """Not satisfied: back to rework, the closing undone."""
    c.reopens += 1
    c.reworks += 1
    c.closed_at = c.closed_on_time = c.disposed_at = None
    c.deadlines.update(e.data.deadlines)


def _s_extension_granted(c: CaseSummary, e: ExtensionGrantedEvent) -> None:
    c.extensions += 1
    c.deadlines.update(e.data.deadlines)


def _s_supervised(c: CaseSummary, e: SupervisedEvent) -> None:
    c.level = e.data.level
    c.supervisions += 1


def _s_warned(c: CaseSummary, e: CaseEvent) -> None:
    c.warnings += 1


def _s_merged(c: CaseSummary, e: MergedEvent) -> None:
    c.report_count += 1
    if e.data.reporter_id:
        c.reporters = (*c.reporters, e.data.reporter_id)
    c.merged_at = e.at


def _s_closed(c: CaseSummary, e: CaseEvent) -> None:
    due = c.deadlines.get("dispose")
    c.closed_at = e.at
    c.closed_on_time = due is None or (c.disposed_at or e.at) <= due
    if e.type == "self_closed":
        c.self_closed = True
        c.tier, c.department = "self", None


# event type -> what it does to a case summary beyond seq, state and time (:func:`fold`);
# each step takes the event class of its type (grid.events.EVENT_TYPES; a unit test checks)
_SUMMARY_FOLDS: dict[str, Callable[[CaseSummary, Any], None]] = {
    "filed": _s_filed, "classified": _s_filed, "follow_up_opened": _s_filed,
    "dispatched": _s_dispatched, "redispatched": _s_dispatched,
    "legal_stage_closed": _s_legal_stage_closed,
    "disposed": _s_disposed,
    "returned": _s_returned,
    "arbitration": _s_arbitration,
    "rework": _s_rework,
    "callback": _s_callback,
    "reopened": _s_reopened,
    "extension_granted": _s_extension_granted,
    "supervised": _s_supervised,
    "warned": _s_warned,
    "merged": _s_merged,
    "closed": _s_closed, "self_closed": _s_closed,
}


def _cursor(c: CaseSummary) -> str:
    raw = f"{_iso(c.created_at)}|{c.case_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _uncursor(cursor: str) -> tuple[datetime, str]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    at, cid = raw.split("|", 1)
    return datetime.fromisoformat(at), cid


class Projection:
    """Cases, per-day counters and open-case aggregates folded from the event log.

    ``category_of(type_code)`` (optional) fills the category of a case re-typed by
    manual triage (``classified`` events carry only the type code).
    ``keep_detail``: how many of the newest cases keep their decision and history.
    """

    def __init__(self, category_of: Any = None, keep_detail: int = 20_000,
                 keep_alerts: int = 200) -> None:
        self.cases: dict[str, CaseSummary] = {}
        self.reports: dict[str, str] = {}  # report_id -> case_id (opening and merged reports)
        self.category_of = category_of
        self.keep_detail = keep_detail
        self.events_applied = 0
        self._rejections: set[str] = set()  # ids of command_rejected events applied
        self._pending: dict[str, dict[int, tuple[CaseEvent, dict[str, Any]]]] = {}
        self._order: list[tuple[datetime, str]] = []  # (created_at, case_id), ascending
        self._open: set[str] = set()
        self._open_counts: Counter[tuple[str, str, str]] = Counter()  # (district, street, state)
        self._days: dict[date, Counter[str]] = {}
        self._detail: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.alerts: deque[dict[str, Any]] = deque(maxlen=keep_alerts)
        self._alert_ids: set[str] = set()

    # -- folding ---------------------------------------------------------------------------

    def apply(self, event: CaseEvent | dict[str, Any]) -> bool:
        """Fold one event; False when it was applied before (or waits for earlier events).

        Events of a case are identified by their position (``seq``), so a redelivery is
        recognised without remembering every event id; only ``command_rejected`` events
        (``seq`` 0, no state change) are remembered by id.
        """
        e = dump_event(event) if isinstance(event, CaseEvent) else event
        if not e.get("event_id"):
            return False
        if int(e.get("seq", 0)) == 0:  # command_rejected: history only, never a state change
            return self._rejection(e)
        ev = event if isinstance(event, CaseEvent) else parse_event(event)
        cid, seq = ev.case_id, ev.seq
        case = self.cases.get(cid)
        if case is not None and seq <= case.seq:
            return False  # redelivered
        if (case is None and not isinstance(ev, ReportedEvent)) or (
                case is not None and seq > case.seq + 1):
            self._pending.setdefault(cid, {})[seq] = (ev, e)  # wait for the events before it
            return False
        self._fold(ev, e)
        waiting = self._pending.get(cid)
        if waiting:
            while (nxt := waiting.pop(self.cases[cid].seq + 1, None)) is not None:
                self._fold(*nxt)
            for stale in [k for k in waiting if k <= self.cases[cid].seq]:
                del waiting[stale]
        if waiting is not None and not waiting:
            self._pending.pop(cid, None)
        return True

    def _rejection(self, e: dict[str, Any]) -> bool:
        """A ``command_rejected`` event (JSON): remembered by id, kept in the history."""
        if e["event_id"] in self._rejections:
            return False
        self._rejections.add(e["event_id"])
        if e.get("case_id") in self.cases:
            self._history(e["case_id"], e)
        return True

    def apply_all(self, events: Iterable[CaseEvent | dict[str, Any]]) -> int:
        return sum(1 for e in events if self.apply(e))

    def _fold(self, ev: CaseEvent, e: dict[str, Any]) -> None:
        """Fold ``ev`` (``e``: its JSON, kept in the case's history)."""
        self.events_applied += 1
        cid = ev.case_id
        c = self.cases.get(cid)
        if c is None:
            c = self.cases[cid] = new_case(ev)
            assert isinstance(ev, ReportedEvent)
            r = ev.data.report
            if r.get("report_id"):
                self.reports[r["report_id"]] = cid
            bisect.insort(self._order, (ev.at, cid))  # = c.created_at
            self._detail_of(cid)["report"] = report_facts(r)
        else:
            self._count_open(c, -1)
        counted = fold(c, ev, self.category_of)
        dec = decision_of(ev)
        if dec is not None and cid in self._detail:
            self._detail[cid]["decision"] = decision_facts(dec)
        merged = merged_report(ev)
        if merged is not None and merged.report_id:
            self.reports[merged.report_id] = cid
        day = self._days.setdefault(ev.at.astimezone(TZ).date(), Counter())  # = updated_at
        for key in counted:
            day[key] += 1
        self._count_open(c, +1)
        self._history(cid, e)

    def _count_open(self, c: CaseSummary, sign: int) -> None:
        if c.is_open:
            self._open_counts[(c.district or "", c.street or "", c.state)] += sign
            if sign > 0:
                self._open.add(c.case_id)
            else:
                self._open.discard(c.case_id)

    def _detail_of(self, cid: str) -> dict[str, Any]:
        det = self._detail.get(cid)
        if det is None:
            det = self._detail[cid] = {"history": []}
            while len(self._detail) > self.keep_detail:
                self._detail.popitem(last=False)
        return det

    def _history(self, cid: str, e: dict[str, Any]) -> None:
        if cid not in self._detail:
            return
        self._detail[cid]["history"].append(history_entry(e))

    def apply_alert(self, alert: dict[str, Any]) -> bool:
        """Remember a recent alert (grid.alerts.v1) for the dashboard; idempotent."""
        aid = alert.get("alert_id")
        if not aid or aid in self._alert_ids:
            return False
        if len(self.alerts) == self.alerts.maxlen:
            self._alert_ids.discard(self.alerts[0].get("alert_id"))
        self._alert_ids.add(aid)
        self.alerts.append(alert)
        return True

    # -- queries ---------------------------------------------------------------------------

    def get(self, case_id: str) -> CaseSummary | None:
        return self.cases.get(case_id)

    def case_for_report(self, report_id: str) -> str | None:
        """The case a report opened or was merged into (None: not seen yet)."""
        return self.reports.get(report_id)

    def detail(self, case_id: str, now: datetime | None = None) -> dict[str, Any] | None:
        """Summary plus report facts, decision (rule, explanation) and history, if kept."""
        c = self.cases.get(case_id)
        if c is None:
            return None
        det = self._detail.get(case_id, {})
        return {**c.to_dict(now), "report": det.get("report"), "decision": det.get("decision"),
                "history": list(det.get("history", [])), "history_kept": case_id in self._detail}

    def _iter_newest(self, cursor: str | None) -> Iterator[CaseSummary]:
        end = len(self._order)
        if cursor:
            end = bisect.bisect_left(self._order, _uncursor(cursor))
        for i in range(end - 1, -1, -1):
            yield self.cases[self._order[i][1]]

    def list(self, district: str | None = None, street: str | None = None,
             state: str | Iterable[str] | None = None, overdue: bool | None = None,
             department: str | None = None, now: datetime | None = None, limit: int = 50,
             cursor: str | None = None) -> tuple[list[CaseSummary], str | None]:
        """Cases newest first, filtered; returns (page, cursor of the next page or None).

        ``state`` is a state, a list of states, or ``"open"`` (not closed/rejected/merged).
        ``overdue`` needs ``now``. ``cursor`` is the opaque string a previous call returned.
        """
        if overdue is not None and now is None:
            raise ValueError("overdue filter needs now")
        states = {state} if isinstance(state, str) else set(state) if state else None
        want_open = states is not None and "open" in states
        out: list[CaseSummary] = []
        for c in self._iter_newest(cursor):
            if (district and c.district != district) or (street and c.street != street):
                continue
            if department and c.department != department:
                continue
            if states is not None and c.state not in states and not (want_open and c.is_open):
                continue
            if overdue is not None and now is not None and (
                    c.lateness(now) is not None) != overdue:
                continue
            if len(out) == limit:
                return out, _cursor(out[-1])
            out.append(c)
        return out, None

    def open_cases(self) -> Iterator[CaseSummary]:
        return (self.cases[cid] for cid in self._open)

    def overdue(self, now: datetime, district: str | None = None) -> builtins.list[CaseSummary]:
        """Open cases past their current stage's deadline, latest first."""
        late = [(d, c) for c in self.open_cases()
                if (district is None or c.district == district)
                and (d := c.lateness(now)) is not None]
        return [c for _, c in sorted(late, key=lambda x: (-x[0].total_seconds(), x[1].case_id))]

    def counters(self, day: date, now: datetime | None = None) -> dict[str, int]:
        """Today's counters: reported (cases opened), filed, self_closed, dispatched (cases
        given their first work order; re-dispatches not counted), closed (incl.
        self-closed), merged (duplicate reports); overdue is open cases at ``now``."""
        got = self._days.get(day, Counter())
        out = {k: got.get(k, 0) for k in COUNTER_KEYS}
        out["overdue"] = len(self.overdue(now)) if now is not None else 0
        return out

    def day_cases(self, day: date, key: str, now: datetime | None = None,
                  district: str | None = None) -> builtins.list[CaseSummary]:
        """The cases behind counter ``key`` of :meth:`counters` on ``day``, newest first:
        opened, filed, first dispatched, closed or self-closed that day, overdue at
        ``now``, or (``merged``) that took in a duplicate report that day (a case once,
        however many duplicates). ValueError for another key."""
        if key == "overdue":
            if now is None:
                raise ValueError("overdue cases need now")
            return self.overdue(now, district)
        at_of: Callable[[CaseSummary], datetime | None] | None = {
                 "reported": lambda c: c.created_at, "filed": lambda c: c.filed_at,
                 "dispatched": lambda c: c.dispatched_at, "closed": lambda c: c.closed_at,
                 "self_closed": lambda c: c.closed_at if c.self_closed else None,
                 "merged": lambda c: c.merged_at}.get(key)
        if at_of is None:
            raise ValueError(f"no counter {key!r}: one of {', '.join(COUNTER_KEYS)}")
        out = []
        for c in self._iter_newest(None):
            at = at_of(c)
            if at is not None and at.astimezone(TZ).date() == day and (
                    district is None or c.district == district):
                out.append(c)
        return out

    def search(self, text: str, district: str | None = None,
               limit: int = 50) -> builtins.list[CaseSummary]:
        """Cases newest first whose case id or one of whose report ids is ``text``, or whose
        case id starts with it, or whose description or address contains it (any case)."""
        text = text.strip()
        if not text:
            return []
        exact = [cid for cid in (text, self.reports.get(text)) if cid in self.cases]
        out = [self.cases[cid] for cid in dict.fromkeys(exact)]
        low = text.lower()
        for c in self._iter_newest(None):
            if len(out) >= limit:
                break
            if district is not None and c.district != district:
                continue
            if c.case_id not in exact and (c.case_id.startswith(text)
                                           or low in c.description.lower()
                                           or (c.address and low in c.address.lower())):
                out.append(c)
        return [c for c in out if district is None or c.district == district][:limit]

    def open_by_street(self, now: datetime,
                       district: str | None = None) -> dict[str, dict[str, int]]:
        """Open cases per street and how many of them are overdue at ``now`` (every open
        case, whether dispatched or not: the street map)."""
        out: dict[str, dict[str, int]] = {}
        for c in self.open_cases():
            if not c.street or (district is not None and c.district != district):
                continue
            s = out.setdefault(c.street, {"open": 0, "overdue": 0})
            s["open"] += 1
            s["overdue"] += c.lateness(now) is not None
        return dict(sorted(out.items()))

    def open_counts(self) -> dict[tuple[str, str, str], int]:
        """Open cases per (district, street, state) — the grid_cases_open gauge."""
        return {k: v for k, v in self._open_counts.items() if v > 0}

    def tier_flow(self, day: date | None = None) -> dict[str, dict[str, int]]:
        """Cases per loop (self/community/street/district/city): total, open, closed, and
        how many were escalated by supervision orders. ``day``: cases opened that day."""
        flow = {t: {"total": 0, "open": 0, "closed": 0, "escalated": 0} for t in TIERS}
        for c in self.cases.values():
            if day is not None and (c.created_at is None
                                    or c.created_at.astimezone(TZ).date() != day):
                continue
            if c.state in ("rejected", "merged"):
                continue
            f = flow.setdefault(c.tier, {"total": 0, "open": 0, "closed": 0, "escalated": 0})
            f["total"] += 1
            f["open" if c.is_open else "closed"] += 1
            f["escalated"] += c.supervisions > 0
        return flow

    def _figures(self, key_of: Any, start: datetime, end: datetime,
                 now: datetime | None) -> dict[str, Figures]:
        acc: dict[str, Counter[str]] = {}
        for c in self.cases.values():
            if c.dispatched_at is None or not start <= c.dispatched_at < end:
                continue
            key = key_of(c)
            if key is None:
                continue
            a = acc.setdefault(key, Counter())
            a["dispatched"] += 1
            if c.state == "closed":
                a["closed"] += 1
                a["closed_on_time"] += bool(c.closed_on_time)
            a["disposed"] += c.disposed_at is not None
            a["reworked"] += c.reworks > 0
            a["extended"] += c.extensions > 0
            if c.is_open:
                a["open"] += 1
                a["overdue"] += now is not None and c.lateness(now) is not None
        return {k: Figures(key=k, **v) for k, v in sorted(acc.items())}

    def department_figures(self, start: datetime, end: datetime,
                           now: datetime | None = None,
                           district: str | None = None) -> dict[str, Figures]:
        """Figures per department for cases first dispatched in ``[start, end)``."""
        return self._figures(lambda c: (c.department or "command_center")
                             if district is None or c.district == district else None,
                             start, end, now)

    def district_figures(self, start: datetime, end: datetime,
                         now: datetime | None = None) -> dict[str, Figures]:
        """Figures per district for cases first dispatched in ``[start, end)``."""
        return self._figures(lambda c: c.district or "", start, end, now)

    def street_figures(self, start: datetime, end: datetime, now: datetime | None = None,
                       district: str | None = None) -> dict[str, Figures]:
        """Figures per street for cases first dispatched in ``[start, end)``."""
        return self._figures(lambda c: (c.street or "")
                             if district is None or c.district == district else None,
                             start, end, now)

    def work_orders(self, department: str) -> builtins.list[dict[str, Any]]:
        """Open work orders of a department (dispatched, accepted or in rework), oldest first."""
        out = []
        for c in self.open_cases():
            if c.department == department and c.state in WORK_ORDER_OPEN:
                out.append({"work_order_id": c.work_order_id, "case_id": c.case_id,
                            "department": department, "state": c.state,
                            "priority": c.priority, "type_code": c.type_code,
                            "street": c.street, "due": _iso(c.deadlines.get("dispose")),
                            "dispatched_at": _iso(c.dispatched_at)})
        return sorted(out, key=lambda w: (w["dispatched_at"] or "", w["case_id"]))
