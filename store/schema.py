"""Tables of the read store (SQLAlchemy Core). Documented for BI users in docs/store.md.

Times are stored in UTC (``timestamptz`` on PostgreSQL, ISO text on SQLite) and come back
timezone-aware in Shanghai time (+08:00), as the engine writes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)

from grid.projection import TZ


class UTCDateTime(TypeDecorator):
    """An aware datetime stored as UTC, read back in Shanghai time; naive ones are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(TZ)


metadata = MetaData()

DISPATCH_TYPES = ("dispatched", "redispatched")  # a lead work order issued
# the predicate of the partial index ix_case_events_dispatch, written the same way in the
# queries that use it (SQLite matches a partial index's predicate only as written, literals)
DISPATCH_WHERE = "type IN ('dispatched', 'redispatched')"

cases = Table(
    "cases", metadata,
    Column("case_id", String(64), primary_key=True),
    Column("seq", Integer, nullable=False, doc="last event folded"),
    Column("state", String(24), nullable=False),
    Column("is_open", Boolean, nullable=False),
    Column("stage", String(16), doc="stage worked on (file/dispatch/dispose/verify)"),
    Column("due_at", UTCDateTime, doc="deadline of the current stage"),
    Column("type_code", String(16)),
    Column("type_name", Text),
    Column("category", String(8)),
    Column("kind", String(16)),
    Column("department", String(64)),
    Column("department_name", Text),
    Column("unit", String(64), doc="the lead department's unit that acts"),
    Column("unit_name", Text),
    Column("priority", String(16), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("level", String(16), nullable=False),
    Column("handling", String(32)),
    Column("district", String(16)),
    Column("district_name", Text),
    Column("street", String(16)),
    Column("street_name", Text),
    Column("community", String(24)),
    Column("community_name", Text),
    Column("cell", String(32)),
    Column("patrol_area", String(64)),
    Column("lon", Float),
    Column("lat", Float),
    Column("source", String(24)),
    Column("description", Text, nullable=False),
    Column("address", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("filed_at", UTCDateTime),
    Column("dispatched_at", UTCDateTime, doc="first work order"),
    Column("disposed_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("closed_on_time", Boolean),
    Column("merged_at", UTCDateTime, doc="last duplicate report merged into the case"),
    Column("deadlines", JSON, nullable=False, doc="stage -> ISO deadline"),
    Column("work_order_id", String(80)),
    Column("satisfaction", String(24), doc="last 回访 callback: satisfied / basically / not"),
    Column("reopens", Integer, nullable=False, doc="reopened after a not-satisfied callback"),
    Column("dispatches", Integer, nullable=False),
    Column("reworks", Integer, nullable=False),
    Column("extensions", Integer, nullable=False),
    Column("returns", Integer, nullable=False),
    Column("report_count", Integer, nullable=False),
    Column("reporters", JSON, nullable=False),
    Column("alert", Boolean, nullable=False),
    Column("self_closed", Boolean, nullable=False),
    Column("arbitration", Boolean, nullable=False),
    Column("supervisions", Integer, nullable=False),
    Column("warnings", Integer, nullable=False),
    Column("legal_stage", String(24), doc="open stage of a staged legal process (0003)"),
    Column("legal_stages", JSON, nullable=False, default=list,
           doc="legal-process stages: stage, names, limit, opened_at, due, closed_at, on_time"),
    Column("report", JSON, doc="facts of the opening report"),
    Column("decision", JSON, doc="the routing decision: rule, explanation, deadlines"),
    Column("waiting", Boolean, nullable=False, default=False,
           doc="later events are stored but an earlier one has not arrived"),
    Index("ix_cases_created", "created_at", "case_id"),
    Index("ix_cases_district_created", "district", "created_at", "case_id"),
    Index("ix_cases_street_created", "street", "created_at", "case_id"),
    Index("ix_cases_open_due", "is_open", "due_at"),
    Index("ix_cases_department_state", "department", "state"),
    Index("ix_cases_unit_state", "unit", "state"),
    Index("ix_cases_dispatched", "dispatched_at"),
    # migration 0002: totals of the list pages' filters without reading the heap
    Index("ix_cases_type_created", "type_code", "created_at", "case_id"),
    Index("ix_cases_open_district_created", "district", "created_at", "case_id",
          postgresql_where=text("is_open IS true"), sqlite_where=text("is_open IS 1")),
    # migration 0005: a department's open cases newest first, the deadline for its filter
    Index("ix_cases_open_department_created", "department", "created_at", "case_id",
          postgresql_include=["due_at"],
          postgresql_where=text("is_open IS true"), sqlite_where=text("is_open IS 1")),
)

case_events = Table(
    "case_events", metadata,
    Column("event_id", String(96), primary_key=True),
    Column("case_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False, doc="0 for command_rejected"),
    Column("type", String(32), nullable=False),
    Column("state_from", String(24)),
    Column("state_to", String(24)),
    Column("actor", String(128)),
    Column("role", String(24)),
    Column("at", UTCDateTime, nullable=False),
    Column("reason", Text),
    Column("body", JSON, nullable=False, doc="the whole grid.case-event/1 message"),
    # migration 0004: the facts of the evaluation by unit and role (issue 18) as columns,
    # so that a quarter's figures are SQL, not a fold of a million bodies
    Column("district", String(16), doc="the event's district"),
    Column("department", String(64),
           doc="work-order events: the lead (dispatched/redispatched) or the part's department"),
    Column("unit", String(64), doc="work-order events: that department's unit"),
    Column("unit_name", Text, doc="dispatched/redispatched: the lead unit's name"),
    Column("parts", Integer, doc="dispatched/redispatched: assisting work orders opened"),
    Index("ix_case_events_case", "case_id", "seq"),
    Index("ix_case_events_type_at", "type", "at"),
    Index("ix_case_events_dispatch", "district", "at", "department", "unit", "unit_name",
          "parts", postgresql_where=text(DISPATCH_WHERE), sqlite_where=text(DISPATCH_WHERE)),
)

report_cases = Table(
    "report_cases", metadata,
    Column("report_id", String(96), primary_key=True),
    Column("case_id", String(64), nullable=False),
    Column("reporter_id", String(128)),
    Column("merged", Boolean, nullable=False, doc="merged into the case, not its opener"),
    Index("ix_report_cases_reporter", "reporter_id"),
)

work_orders = Table(
    "work_orders", metadata,
    Column("work_order_id", String(96), primary_key=True),
    Column("case_id", String(64), nullable=False),
    Column("department", String(64), nullable=False),
    Column("unit", String(64)),
    Column("role", String(16), doc="lead (主办) or assisting (协办)"),
    Column("lead_department", String(64), doc="for an assisting order: who leads"),
    Column("priority", String(16)),
    Column("tier", String(16)),
    Column("type_code", String(16)),
    Column("district", String(16)),
    Column("street", String(16)),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("due_dispose", UTCDateTime),
    Column("body", JSON, nullable=False, doc="the whole grid.work-order/1 message"),
    Index("ix_work_orders_department", "department", "issued_at"),
    Index("ix_work_orders_unit", "unit", "issued_at"),
    Index("ix_work_orders_case", "case_id"),
)

alerts = Table(
    "alerts", metadata,
    Column("alert_id", String(128), primary_key=True),
    Column("case_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("district", String(16)),
    Column("at", UTCDateTime, nullable=False),
    Column("body", JSON, nullable=False, doc="the whole grid.alert/1 message"),
    Index("ix_alerts_at", "at"),
)

offsets = Table(
    "consumed_offsets", metadata,
    Column("consumer", String(64), primary_key=True, doc="projector name (one per store)"),
    Column("topic", String(128), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False, doc="the next record to apply"),
)
