"""The leaf vocabulary of the wire models (no imports from the rest of ``grid``).

:mod:`grid.models` and :mod:`grid.events` both build on it; :mod:`grid.models` re-exports
every name, which stays the place to import them from.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

CASE_EVENT_SCHEMA: Final = "grid.case-event/1"

Tier = Literal["self", "community", "street", "district", "city"]
Priority = Literal["normal", "high", "urgent"]
Role = Literal["supervisor", "department", "command_center", "system", "hotline"]
Satisfaction = Literal["satisfied", "basically_satisfied", "not_satisfied"]


class Wire(BaseModel):
    """Base of all wire models: strict about unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
    # an emergency handed to 110/119/120: finished for the grid unless a follow-up is opened
    TRANSFERRED = "transferred"
