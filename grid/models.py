"""Wire and domain models (pydantic v2): report, placement, decision, case, work order,
command; the case event (a union over its types, one payload model each) is in
:mod:`grid.events` and re-exported here. Every wire model carries a ``schema`` string with
its version.

Validation that needs the taxonomy or a clock (unknown type code, timestamps in the
future) reads them from the validation context: ``Report.model_validate(data,
context={"taxonomy": t, "now": dt})``; see :func:`grid.intake.parse_report`.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

# case events (envelope, payloads per type, parse_event) live in grid.events; re-exported
from grid.events import AnyCaseEvent as AnyCaseEvent
from grid.events import CaseEvent as CaseEvent
from grid.wire import CASE_EVENT_SCHEMA as CASE_EVENT_SCHEMA
from grid.wire import CaseState as CaseState
from grid.wire import Priority as Priority
from grid.wire import Role as Role
from grid.wire import Satisfaction as Satisfaction
from grid.wire import Tier as Tier
from grid.wire import Wire as Wire

REPORT_SCHEMA: Final = "grid.report/1"
CASE_SCHEMA: Final = "grid.case/2"
CASE_SCHEMA_V1: Final = "grid.case/1"  # with the whole history (grid.lifecycle.decode_case)
WORK_ORDER_SCHEMA: Final = "grid.work-order/1"
COMMAND_SCHEMA: Final = "grid.command/1"
ALERT_SCHEMA: Final = "grid.alert/1"
HOTLINE_REPLY_SCHEMA: Final = "grid.hotline-reply/1"

MAX_DESCRIPTION = 2000
MAX_PHOTOS = 9
FUTURE_TOLERANCE = timedelta(minutes=10)
CASE_NAMESPACE = uuid.UUID("6f1c2a3e-1d0b-4c55-9a55-2b1f0d9e7a10")

Source = Literal["supervisor", "hotline_12345", "hotline_12319", "hotline_962121", "video",
                 "sensor", "citizen"]
Hotline = Literal["12345", "12319", "962121"]
MeterSide = Literal["before", "after"]
Crs = Literal["wgs84", "gcj02", "bd09"]
Kind = Literal["component", "event"]
Handling = Literal["ordinary", "key_supervision", "legal_process", "self_disposable"]
Stage = Literal["file", "dispatch", "dispose", "verify"]
# a case stage (file/dispatch/dispose/verify) or a legal-process stage (investigation, ...)
StageId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{1,15}$")]

TypeCode = Annotated[str, StringConstraints(pattern=r"^\d{4}$")]
PhotoUrl = Annotated[str, StringConstraints(min_length=1, max_length=500)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def case_id_for(report_id: str, partition_key: str) -> str:
    """Deterministic case id for the report that opens a case (idempotent ingest).

    It starts with the street code (the partition key of case state), so a command that
    names only the case id can be routed to the partition that owns the case.
    """
    return f"{partition_key}-{uuid.uuid5(CASE_NAMESPACE, report_id).hex[:12]}"


def partition_key_of(case_id: str) -> str:
    """The street (partition key) encoded in a case id."""
    return case_id.split("-", 1)[0]


class Point(Wire):
    """A reported position in the CRS the reporter's device used."""

    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    crs: Crs = "wgs84"

    @field_validator("lon", "lat", mode="before")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("must be a number, not a boolean")
        if isinstance(v, str):
            raise ValueError(f"must be a JSON number, not a string ({v[:20]!r})")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("must be a finite number (NaN and infinity are not coordinates)")
        return v


class Ticket(Wire):
    """A hotline's own ticket (工单) for a report: the case is answered back under it."""

    hotline: Hotline
    ticket_no: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]{3,39}$")]
    callback: bool = True  # the citizen wants a callback (回访) after closing


class Report(Wire):
    """A report (上报) from a supervisor, hotline, camera, sensor or citizen.

    ``component_code`` is a standard 16-digit object code (部件标识码, GB/T 30428.2):
    its subclass names the owner class. ``meter`` says on which side of the utility meter a
    pipe or line fault lies (seed 004: 表前 the utility, 表后 the owner). ``ticket`` is the
    hotline's own ticket: the case is answered back under it (grid.hotline-replies.v1).
    """

    schema_: Literal["grid.report/1"] = Field(REPORT_SCHEMA, alias="schema")
    report_id: uuid.UUID
    source: Source
    reporter_id: Ident
    reported_at: AwareDatetime
    location: Point
    type_code: TypeCode | None = None
    description: Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)] = ""
    photos: list[PhotoUrl] = Field(default_factory=list, max_length=MAX_PHOTOS)
    self_disposed: bool = False
    evidence_photos: list[PhotoUrl] = Field(default_factory=list, max_length=MAX_PHOTOS)
    component_id: Ident | None = None
    component_code: Annotated[str, StringConstraints(pattern=r"^\d{16}$")] | None = None
    meter: MeterSide | None = None
    address: ShortText | None = None
    ticket: Ticket | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("reported_at", mode="before")
    @classmethod
    def _iso_text(cls, v: Any) -> Any:
        if isinstance(v, int | float):  # an epoch number: seconds or milliseconds?
            raise ValueError("must be an ISO 8601 time with its UTC offset, e.g. "
                             "2026-11-21T09:30:00+08:00, not a number")
        return v

    @field_validator("self_disposed", mode="before")
    @classmethod
    def _json_bool(cls, v: Any) -> Any:
        if not isinstance(v, bool):
            raise ValueError(f"must be true or false, not {v!r}"[:80])
        return v

    @field_validator("reported_at")
    @classmethod
    def _not_in_future(cls, v: datetime, info: ValidationInfo) -> datetime:
        now = (info.context or {}).get("now")
        if now is not None and v - now > FUTURE_TOLERANCE:
            raise ValueError(
                f"is {v - now} in the future (clock tolerance {FUTURE_TOLERANCE}); "
                "send the time the problem was observed, with its UTC offset"
            )
        return v

    @field_validator("type_code")
    @classmethod
    def _known_type(cls, v: str | None, info: ValidationInfo) -> str | None:
        taxonomy = (info.context or {}).get("taxonomy")
        if v is not None and taxonomy is not None and v not in taxonomy.types:
            raise ValueError(f"unknown type code {v!r}; see `grid taxonomy` for the types")
        return v

    @field_validator("component_code")
    @classmethod
    def _component_class(cls, v: str | None, info: ValidationInfo) -> str | None:
        taxonomy = (info.context or {}).get("taxonomy")
        national = getattr(taxonomy, "national", None)
        if v is not None and national is not None and national.cls("component", v[6:8]) is None:
            raise ValueError(f"digits 7-8 ({v[6:8]}) are not a component class of GB/T 30428.2 "
                             "(01-06): an object code is district (6) + class (2) + subclass "
                             "(2) + serial (6)")
        return v

    @model_validator(mode="after")
    def _supervisor_needs_type(self) -> Report:
        if self.source == "supervisor" and self.type_code is None:
            raise ValueError("type_code is required when source is 'supervisor'")
        if self.type_code is None and not self.description.strip():
            raise ValueError("give a type_code or a description to classify")
        if self.ticket is not None and self.source != f"hotline_{self.ticket.hotline}":
            raise ValueError(f"ticket: a {self.ticket.hotline} ticket comes with source "
                             f"'hotline_{self.ticket.hotline}', not {self.source!r}")
        return self

    @property
    def rid(self) -> str:
        return str(self.report_id)


class Placement(BaseModel):
    """Where a point lies: the result of the locator (geodata)."""

    model_config = ConfigDict(frozen=True)

    lon: float  # WGS-84, after conversion
    lat: float
    crs: Crs  # the CRS the input was assumed to be in
    district: str | None = None
    district_name: str | None = None
    street: str | None = None
    community: str | None = None
    cell: str | None = None
    patrol_area: str | None = None
    zones: list[str] = Field(default_factory=list)  # zone types, e.g. "hospital", "rural"
    zone_ids: list[str] = Field(default_factory=list)
    snapped_m: float | None = None

    @property
    def partition_key(self) -> str:
        """Case state is partitioned by street code (district when no street)."""
        return self.street or self.district or "outside"


class Assignment(BaseModel):
    """A department and the unit of it that acts (a compound's property company, a street's
    housing office, the utility owning a component); ``unit`` is ``None`` when the registry
    names none (the department's desk dispatches)."""

    model_config = ConfigDict(frozen=True)

    department: str
    unit: str | None = None
    unit_name: str | None = None


class ServiceRef(BaseModel):
    """An emergency service a case is transferred to (110 police, 119 fire, 120 ambulance)."""

    model_config = ConfigDict(frozen=True)

    service: str  # id in the rule set, e.g. "fire"
    number: str  # "119"
    name_zh: str
    name_en: str

    @property
    def label(self) -> str:
        """'119 消防119 Fire and rescue' style: number, Chinese and English name."""
        return f"{self.name_zh} {self.name_en}"


class Transfer(BaseModel):
    """Why and to whom an emergency report was handed over (联勤联动)."""

    model_config = ConfigDict(frozen=True)

    rule: str
    services: list[ServiceRef]
    because: list[str] = Field(default_factory=list)  # the type or the cues that matched


class Suggestion(BaseModel):
    """A type the classifier suggests for a report a person must check."""

    model_config = ConfigDict(frozen=True)

    type_code: str
    name_zh: str = ""
    name_en: str = ""
    score: float
    matched: list[str] = Field(default_factory=list)


class LegalStageSpec(BaseModel):
    """One stage of a legal process as the rule table gives it (limit from the closing of
    the stage before; ``alternative``: replaces the last stage, e.g. 移送法院)."""

    model_config = ConfigDict(frozen=True)

    stage: str
    name_zh: str
    name_en: str
    limit: str
    closes_when: str
    alternative: bool = False


class Decision(BaseModel):
    """A routing decision with its explanation (rules engine output).

    ``department``/``unit`` lead (主办); ``assisting`` are the assisting departments (协办),
    each with its unit and its own work order. ``transfer``: an emergency handed to
    110/119/120 (handling ``emergency``, no work order). ``suggestions``: the classifier's
    top types for a guess a person must check (triage). ``legal_stages``/``legal_rule``/
    ``legal_calendar``: the staged legal process of a legal-process case."""

    model_config = ConfigDict(frozen=True)

    type_code: str | None
    department: str | None
    unit: str | None = None
    unit_name: str | None = None
    assisting: list[Assignment] = Field(default_factory=list)
    tier: Tier
    priority: Priority
    handling: Handling | Literal["triage", "emergency"]
    self_closed: bool = False
    alert: bool = False
    calendar: Literal["24h", "working"] = "24h"
    deadlines: dict[str, datetime] = Field(default_factory=dict)  # stage -> due time
    rules: list[str] = Field(default_factory=list)  # ids of rules that matched
    winner: str | None = None  # id of the rule that decided the routing
    ruleset_version: str = ""
    closing_standard: str = ""
    explanation: list[str] = Field(default_factory=list)  # human-readable lines
    inputs: dict[str, Any] = Field(default_factory=dict)
    transfer: Transfer | None = None
    suggestions: list[Suggestion] = Field(default_factory=list)
    legal_stages: list[LegalStageSpec] = Field(default_factory=list)
    legal_rule: str | None = None
    legal_calendar: Literal["24h", "working"] = "working"


TERMINAL_STATES = frozenset({CaseState.CLOSED, CaseState.REJECTED, CaseState.MERGED,
                             CaseState.TRANSFERRED})
# the stage (deadline) a case is working on in each open state: dispose while it is
# dispatched, verify once disposed, ... (escalation watches it; the dashboard shows it)
CURRENT_STAGE: dict[str, str] = {  # CaseState -> stage (a state is its string)
    CaseState.REPORTED: "file", CaseState.TRIAGE: "file",
    CaseState.FILED: "dispatch", CaseState.RETURNED: "dispatch",
    CaseState.DISPATCHED: "dispose", CaseState.ACCEPTED: "dispose", CaseState.REWORK: "dispose",
    CaseState.DISPOSED: "verify",
}


class Action(StrEnum):
    """Commands on grid.commands.v1 (and the HTTP actions endpoint)."""

    # command center
    FILE = "file"
    REJECT = "reject"
    DISPATCH = "dispatch"  # also re-dispatch after a return
    GRANT_EXTENSION = "grant_extension"
    DENY_EXTENSION = "deny_extension"
    SUPERVISE = "supervise"  # supervision order (督办)
    CLOSE = "close"
    CLASSIFY = "classify"  # manual triage: set the type code
    FOLLOW_UP = "follow_up"  # after a transfer: open the grid's part (the aftermath's type)
    # department
    ACCEPT = "accept"
    DISPOSE = "dispose"
    RETURN = "return"
    REQUEST_EXTENSION = "request_extension"
    REPORT_PART = "report_part"  # an assisting department (协办) reports its part done
    CLOSE_OUT_PART = "close_out_part"  # the lead closes an assisting part out (reason)
    ADVANCE_STAGE = "advance_stage"  # legal process: close the current stage (reason/evidence)
    # supervisor
    VERIFY = "verify"
    SELF_DISPOSE = "self_dispose"
    # hotline (12345, 962121) or command center
    CALLBACK = "callback"  # 回访: the citizen's satisfaction after closing
    # system
    MERGE = "merge"  # a duplicate report merged into this case
    WARN = "warn"  # deadline warning


class Command(Wire):
    """An action on a case by a department, supervisor, the command center or the system."""

    schema_: Literal["grid.command/1"] = Field(COMMAND_SCHEMA, alias="schema")
    command_id: Ident
    case_id: Ident
    action: Action
    actor: Ident
    role: Role
    at: AwareDatetime | None = None  # filled by the engine when absent
    reason: Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)] = ""
    evidence_photos: list[PhotoUrl] = Field(default_factory=list, max_length=MAX_PHOTOS)
    passed: bool | None = None  # verify: pass or fail
    extension_minutes: int | None = Field(None, gt=0, le=60 * 24 * 90)
    department: Ident | None = None  # dispatch / re-dispatch target; close_out_part: the part
    unit: Ident | None = None  # dispatch: the unit of the department (else the registry's)
    satisfaction: Satisfaction | None = None  # callback (回访)
    type_code: TypeCode | None = None  # classify, follow_up
    report_id: Ident | None = None  # merge: the duplicate report
    reporter_id: Ident | None = None  # merge: who sent the duplicate report
    fingerprint: str | None = None  # merge: the duplicate's content (report_fingerprint)
    stage: StageId | None = None  # warn / supervise: which deadline (or legal stage)
    next_stage: StageId | None = None  # advance_stage after the decision: "court" instead
    street: str | None = None  # partition key (co-partitioned with case state)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# The actions a caller may send over HTTP (merge and warn are the engine's own).
HTTP_ACTIONS: tuple[Action, ...] = tuple(a for a in Action if a not in (Action.MERGE, Action.WARN))


def _http_action(v: Action) -> Action:
    if v not in HTTP_ACTIONS:
        raise ValueError(f"{v.value} is the engine's own action")
    return v


class ActionRequest(Wire):
    """The body of ``POST /api/v1/cases/{case_id}/actions``: a :class:`Command` without what
    the API fills in (case, actor, role, street). The one definition of the action fields:
    the API validates with it and the OpenAPI document shows its schema."""

    action: Annotated[Action, AfterValidator(_http_action),
                      WithJsonSchema({"type": "string", "enum": [a.value for a in HTTP_ACTIONS],
                                      "description": "what to do to the case"})]
    reason: Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)] = ""
    evidence_photos: list[PhotoUrl] = Field(default_factory=list, max_length=MAX_PHOTOS)
    passed: bool | None = Field(None, description="verify: pass or fail")
    extension_minutes: int | None = Field(None, gt=0, le=60 * 24 * 90,
                                          description="grant_extension / request_extension")
    department: Ident | None = Field(None, description="dispatch target; close_out_part: the "
                                     "assisting department whose part is closed out")
    unit: Ident | None = Field(None, description="dispatch: the target's registry unit")
    satisfaction: Satisfaction | None = Field(None, description="callback (回访); reason is the "
                                              "citizen's comment")
    type_code: TypeCode | None = Field(None, description="classify, follow_up")
    stage: StageId | None = Field(None, description="supervise: which deadline or legal stage")
    next_stage: StageId | None = Field(None, description="advance_stage: the stage to go to")
    command_id: Ident | None = Field(None, description="idempotency key (default: a new one)")


class WorkOrder(Wire):
    """A work order (派遣单) to a department's unit, keyed by unit (department when the
    registry names none) on grid.dispatch.v1. An assisting department (协办) gets its own
    order (``role: assisting``, id ``{case_id}:{n}:{department}``) beside the lead's."""

    schema_: Literal["grid.work-order/1"] = Field(WORK_ORDER_SCHEMA, alias="schema")
    work_order_id: str  # f"{case_id}:{n}" — n counts dispatches of the case
    case_id: str
    department: str
    unit: str | None = None
    unit_name: str | None = None
    role: Literal["lead", "assisting"] = "lead"
    lead_department: str | None = None  # assisting orders: who leads
    priority: Priority
    tier: Tier
    type_code: str | None
    handling: str
    issued_at: datetime
    due: dict[str, datetime] = Field(default_factory=dict)
    lon: float
    lat: float
    district: str | None = None
    street: str | None = None
    cell: str | None = None
    description: str = ""
    address: str | None = None
    rule: str | None = None
    closing_standard: str = ""
    report_received_at: datetime | None = None  # for dispatch latency

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Alert(Wire):
    """Key-supervision alert, deadline warning or supervision order for the command center."""

    schema_: Literal["grid.alert/1"] = Field(ALERT_SCHEMA, alias="schema")
    alert_id: str
    case_id: str
    kind: Literal["key_supervision", "warning", "supervision_order", "arbitration",
                  "emergency_transfer"]
    level: Tier | None = None
    priority: Priority
    at: datetime
    message: str
    district: str | None = None
    street: str | None = None
    type_code: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Part(BaseModel):
    """An assisting department's part of a joint case (协办) and where it stands."""

    model_config = ConfigDict(frozen=True)

    department: str
    unit: str | None = None
    unit_name: str | None = None
    work_order_id: str
    status: Literal["open", "done", "closed_out"] = "open"


class LegalStageState(BaseModel):
    """Where one stage of a case's legal process stands: opened when the stage before it
    closed (the first at the work order), due ``limit`` later in the process calendar."""

    model_config = ConfigDict(frozen=True)

    stage: str
    name_zh: str = ""
    name_en: str = ""
    limit: str = ""
    closes_when: str = ""
    opened_at: datetime
    due: datetime
    closed_at: datetime | None = None
    on_time: bool | None = None
    note: str = ""  # what closed it (the department's reason)


class Callback(BaseModel):
    """A 回访: the citizen's satisfaction with a closed hotline case."""

    model_config = ConfigDict(frozen=True)

    satisfaction: Satisfaction
    comment: str = ""
    at: datetime
    reopened: bool = False


class HotlineReply(Wire):
    """One answer to a hotline about its ticket (grid.hotline-replies.v1, keyed by ticket
    number): every state change of a case reported with a ticket, and the 回访."""

    schema_: Literal["grid.hotline-reply/1"] = Field(HOTLINE_REPLY_SCHEMA, alias="schema")
    reply_id: str  # the case event id: idempotent
    hotline: Hotline
    ticket_no: str
    case_id: str
    report_id: str
    event: str  # the case event type, e.g. "dispatched", "closed", "callback", "reopened"
    status: Literal["open", "closed"]  # Open311 status
    state: CaseState
    status_zh: str  # e.g. 已派遣
    message: str  # what the hotline reads to the citizen, in Chinese
    department: str | None = None
    unit: str | None = None
    unit_name: str | None = None
    satisfaction: Satisfaction | None = None
    at: datetime

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MergedReport(BaseModel):
    """A duplicate report merged into a case: its id, who sent it and its content digest
    (``fingerprint``: None for a merge recorded before fingerprints were kept)."""

    model_config = ConfigDict(frozen=True)

    report_id: str
    reporter_id: str | None = None
    fingerprint: str | None = None


class Case(BaseModel):
    """A case (案件): the state a report opens, changed only through :mod:`grid.lifecycle`.

    ``grid.case/2`` is what the decider needs, not the case's history (that is
    ``grid.case-events.v1``, and the read store keeps it): the fields below are folded from
    the events by :func:`grid.lifecycle.evolve`, so the snapshot does not grow with the
    number of events. ``recent`` holds the events of the case's latest input (report or
    command), for re-emitting them when that input is delivered again; there a
    ``reported`` event's ``report`` and ``placement`` and the ``decision`` that is the
    case's own are ``{}`` (kept once, in the case; :func:`grid.lifecycle.redelivered` puts
    them back). A ``grid.case/1`` record (with ``history``) is read with
    :func:`grid.lifecycle.decode_case`: the new fields derived by replaying its history.
    """

    schema_: Literal["grid.case/2"] = Field(CASE_SCHEMA, alias="schema")
    case_id: str
    state: CaseState
    report: Report
    report_ids: list[str]  # the opening report first, then merged duplicates
    placement: Placement
    type_code: str | None
    category: str | None = None
    kind: Kind | None = None
    decision: Decision | None = None
    department: str | None = None
    unit: str | None = None  # the lead department's unit (registry), if any
    unit_name: str | None = None  # its name, as the last dispatch gave it
    assisting: list[Part] = Field(default_factory=list)  # 协办 parts of a joint case
    lead_disposed: bool = False  # the lead reported its disposal while parts were open
    callbacks: list[Callback] = Field(default_factory=list)  # 回访 after closing
    called_back: bool = False  # a callback since the last 'closed' (one per closing)
    reopens: int = 0  # times a "not satisfied" callback reopened the case
    legal: list[LegalStageState] = Field(default_factory=list)  # legal-process stages so far
    tier: Tier = "street"
    priority: Priority = "normal"
    level: Tier = "street"  # escalation level (street -> district -> city)
    deadlines: dict[str, datetime] = Field(default_factory=dict)
    warned: list[str] = Field(default_factory=list)  # stages already warned
    supervised: list[str] = Field(default_factory=list)  # stages with a supervision order
    dispatches: int = 0
    returns: int = 0
    reworks: int = 0
    extensions: int = 0
    extension_requested_minutes: int | None = None
    arbitration: bool = False
    created_at: datetime
    updated_at: datetime
    follow_up_at: datetime | None = None  # the last follow-up of a transferred emergency
    disposed_at: datetime | None = None
    closed_at: datetime | None = None
    closed_on_time: bool | None = None
    seq: int = 0  # seq of the case's last event (the next one is seq + 1)
    reason: str = ""  # the reason of the last event that was not a warning
    merged: list[MergedReport] = Field(default_factory=list)  # duplicates merged, in order
    command_ids: list[str] = Field(default_factory=list)  # commands applied (idempotency)
    recent: list[AnyCaseEvent] = Field(default_factory=list)  # the latest input's events

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    @property
    def is_open(self) -> bool:
        return self.state not in TERMINAL_STATES

    @property
    def legal_stage(self) -> LegalStageState | None:
        """The legal-process stage the department is working on (None: none open)."""
        last = self.legal[-1] if self.legal else None
        return last if last is not None and last.closed_at is None else None

    @property
    def open_parts(self) -> list[Part]:
        """Assisting parts not yet reported done or closed out."""
        return [p for p in self.assisting if p.status == "open"]

    @property
    def reporters(self) -> list[str]:
        """Reporter ids of the opening report and of every report merged into the case."""
        return [self.report.reporter_id, *(m.reporter_id for m in self.merged if m.reporter_id)]

    def overdue_stages(self, now: datetime) -> list[str]:
        """Stages whose deadline has passed while the case is still open."""
        if not self.is_open:
            return []
        return [s for s, due in self.deadlines.items() if due <= now]


WIRE_MODELS: dict[str, type[BaseModel]] = {
    REPORT_SCHEMA: Report,
    COMMAND_SCHEMA: Command,
    CASE_EVENT_SCHEMA: CaseEvent,
    WORK_ORDER_SCHEMA: WorkOrder,
    ALERT_SCHEMA: Alert,
    HOTLINE_REPLY_SCHEMA: HotlineReply,
    CASE_SCHEMA: Case,
}
