"""The answer bodies of the HTTP API as pydantic models: the OpenAPI document's component
schemas beside the wire models (:mod:`grid.models`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from grid.models import CaseEvent, CaseState


class FieldError(BaseModel):
    """One bad field of a request: its dotted path and what is wrong in words."""

    field: str
    message: str


class Error(BaseModel):
    """An error answer: ``error`` in words, ``errors`` one per bad field (422), and the
    details the status names (``reason``, ``state``/``action`` for a refused action,
    ``limit`` for 413, ``report_id``)."""

    model_config = ConfigDict(extra="allow")

    error: str
    reason: str | None = None
    errors: list[FieldError] = Field(default_factory=list)
    state: str | None = Field(None, description="409: the case's state")
    action: str | None = Field(None, description="409: the refused action")
    report_id: str | None = None
    limit: int | None = Field(None, description="413: the body limit in bytes")


class ReportAccepted(BaseModel):
    """A report produced to grid.reports.v1; follow it at ``report_url``."""

    report_id: str
    status: Literal["accepted"]
    report_url: str
    open311_url: str


class ReportCase(BaseModel):
    """The case a report became (opened by it, or merged into it)."""

    report_id: str
    case_id: str
    case_url: str
    state: CaseState
    merged: bool


class ActionResult(BaseModel):
    """What the engine made of an action: ``applied`` with its events (200), or ``accepted``
    when it has not answered within the wait (202)."""

    command_id: str
    case_id: str
    action: str
    case_url: str
    status: Literal["applied", "accepted"]
    state: CaseState | None = Field(None, description="applied: the state after the action")
    events: list[CaseEvent] = Field(default_factory=list, description="applied: its events")
    state_before: CaseState | None = Field(None, description="accepted: the state it was sent in")
    note: str | None = None


class Page(BaseModel):
    """A keyset page of case summaries (work orders: with ``work_order_id``), newest first."""

    items: list[dict[str, Any]]
    count: int
    total: int | None = Field(None, description="on the first page, counted up to 10,000")
    total_capped: bool = False
    next_cursor: str | None = None


class Open311Error(BaseModel):
    code: int
    description: str


class Open311Errors(RootModel[list[Open311Error]]):
    """GeoReport v2 errors: ``[{code, description}]`` (XML: ``<errors><error>``)."""
