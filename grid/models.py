"""Wire and domain models (pydantic v2): report, placement, decision, case, case event,
work order, command. Every wire model carries a ``schema`` string with its version.

Validation that needs the taxonomy or a clock (unknown type code, timestamps in the
future) reads them from the validation context: ``Report.model_validate(data,
context={"taxonomy": t, "now": dt})``; see :func:`grid.intake.parse_report`.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

REPORT_SCHEMA = "grid.report/1"
CASE_SCHEMA = "grid.case/1"
CASE_EVENT_SCHEMA = "grid.case-event/1"
WORK_ORDER_SCHEMA = "grid.work-order/1"
COMMAND_SCHEMA = "grid.command/1"
ALERT_SCHEMA = "grid.alert/1"

MAX_DESCRIPTION = 2000
MAX_PHOTOS = 9
FUTURE_TOLERANCE = timedelta(minutes=10)
CASE_NAMESPACE = uuid.UUID("6f1c2a3e-1d0b-4c55-9a55-2b1f0d9e7a10")

Source = Literal["supervisor", "hotline_12345", "hotline_12319", "video", "sensor", "citizen"]
Crs = Literal["wgs84", "gcj02", "bd09"]
Kind = Literal["component", "event"]
Handling = Literal["ordinary", "key_supervision", "legal_process", "self_disposable"]
Tier = Literal["self", "community", "street", "district", "city"]
Priority = Literal["normal", "high", "urgent"]
Role = Literal["supervisor", "department", "command_center", "system"]
Stage = Literal["file", "dispatch", "dispose", "verify"]

TypeCode = Annotated[str, StringConstraints(pattern=r"^\d{4}$")]
PhotoUrl = Annotated[str, StringConstraints(min_length=1, max_length=500)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Wire(BaseModel):
    """Base of all wire models: strict about unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


class Report(Wire):
    """A report (上报) from a supervisor, hotline, camera, sensor or citizen."""

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
    address: ShortText | None = None

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

    @model_validator(mode="after")
    def _supervisor_needs_type(self) -> Report:
        if self.source == "supervisor" and self.type_code is None:
            raise ValueError("type_code is required when source is 'supervisor'")
        if self.type_code is None and not self.description.strip():
            raise ValueError("give a type_code or a description to classify")
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


class Decision(BaseModel):
    """A routing decision with its explanation (rules engine output)."""

    model_config = ConfigDict(frozen=True)

    type_code: str | None
    department: str | None
    tier: Tier
    priority: Priority
    handling: Handling | Literal["triage"]
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


class CaseState(StrEnum):
    REPORTED = "reported"
    TRIAGE = "triage"  # unclassified: manual triage by the command center
    FILED = "filed"
    REJECTED = "rejected"
    MERGED = "merged"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    DISPOSED = "disposed"
    RETURNED = "returned"
    REWORK = "rework"
    VERIFIED = "verified"
    CLOSED = "closed"


TERMINAL_STATES = frozenset({CaseState.CLOSED, CaseState.REJECTED, CaseState.MERGED})


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
    # department
    ACCEPT = "accept"
    DISPOSE = "dispose"
    RETURN = "return"
    REQUEST_EXTENSION = "request_extension"
    # supervisor
    VERIFY = "verify"
    SELF_DISPOSE = "self_dispose"
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
    department: Ident | None = None  # dispatch / re-dispatch target
    type_code: TypeCode | None = None  # classify
    report_id: Ident | None = None  # merge: the duplicate report
    reporter_id: Ident | None = None  # merge: who sent the duplicate report
    fingerprint: str | None = None  # merge: the duplicate's content (report_fingerprint)
    stage: Stage | None = None  # warn / supervise: which deadline
    street: str | None = None  # partition key (co-partitioned with case state)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CaseEvent(Wire):
    """One state change of a case: the event log on grid.case-events.v1."""

    schema_: Literal["grid.case-event/1"] = Field(CASE_EVENT_SCHEMA, alias="schema")
    event_id: str  # f"{case_id}:{seq}" — idempotent key
    case_id: str
    seq: int
    type: str  # e.g. "reported", "filed", "dispatched", "merged", "supervised", "rejected_command"
    state_from: CaseState | None
    state_to: CaseState
    actor: str
    role: Role
    at: datetime
    reason: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    district: str | None = None
    street: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WorkOrder(Wire):
    """A work order (派遣单) to a department, keyed by department on grid.dispatch.v1."""

    schema_: Literal["grid.work-order/1"] = Field(WORK_ORDER_SCHEMA, alias="schema")
    work_order_id: str  # f"{case_id}:{n}" — n counts dispatches of the case
    case_id: str
    department: str
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
    kind: Literal["key_supervision", "warning", "supervision_order", "arbitration"]
    level: Tier | None = None
    priority: Priority
    at: datetime
    message: str
    district: str | None = None
    street: str | None = None
    type_code: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Case(BaseModel):
    """A case (案件): the state a report opens, changed only through :mod:`grid.lifecycle`."""

    schema_: Literal["grid.case/1"] = Field(CASE_SCHEMA, alias="schema")
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
    disposed_at: datetime | None = None
    closed_at: datetime | None = None
    closed_on_time: bool | None = None
    history: list[CaseEvent] = Field(default_factory=list)

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    @property
    def is_open(self) -> bool:
        return self.state not in TERMINAL_STATES

    @property
    def reporters(self) -> list[str]:
        """Reporter ids of the opening report and of every report merged into the case."""
        merged = [e.data.get("reporter_id") for e in self.history if e.type == "merged"]
        return [self.report.reporter_id, *(r for r in merged if r)]

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
    CASE_SCHEMA: Case,
}
