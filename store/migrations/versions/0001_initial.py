"""initial schema: cases, case_events, report_cases, work_orders, alerts, consumed_offsets

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

import store.schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("district", sa.String(length=16), nullable=True),
        sa.Column("at", store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_at", ["at"], unique=False)

    op.create_table(
        "case_events",
        sa.Column("event_id", sa.String(length=96), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("state_from", sa.String(length=24), nullable=True),
        sa.Column("state_to", sa.String(length=24), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("role", sa.String(length=24), nullable=True),
        sa.Column("at", store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.create_index("ix_case_events_case", ["case_id", "seq"], unique=False)
        batch_op.create_index("ix_case_events_type_at", ["type", "at"], unique=False)

    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=True),
        sa.Column("due_at", store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("type_code", sa.String(length=16), nullable=True),
        sa.Column("type_name", sa.Text(), nullable=True),
        sa.Column("category", sa.String(length=8), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("department", sa.String(length=64), nullable=True),
        sa.Column("department_name", sa.Text(), nullable=True),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("unit_name", sa.Text(), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("handling", sa.String(length=32), nullable=True),
        sa.Column("district", sa.String(length=16), nullable=True),
        sa.Column("district_name", sa.Text(), nullable=True),
        sa.Column("street", sa.String(length=16), nullable=True),
        sa.Column("street_name", sa.Text(), nullable=True),
        sa.Column("community", sa.String(length=24), nullable=True),
        sa.Column("community_name", sa.Text(), nullable=True),
        sa.Column("cell", sa.String(length=32), nullable=True),
        sa.Column("patrol_area", sa.String(length=64), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=24), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("created_at", store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("filed_at", store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("disposed_at", store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_on_time", sa.Boolean(), nullable=True),
        sa.Column("merged_at", store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deadlines", sa.JSON(), nullable=False),
        sa.Column("work_order_id", sa.String(length=80), nullable=True),
        sa.Column("satisfaction", sa.String(length=24), nullable=True),
        sa.Column("reopens", sa.Integer(), nullable=False),
        sa.Column("dispatches", sa.Integer(), nullable=False),
        sa.Column("reworks", sa.Integer(), nullable=False),
        sa.Column("extensions", sa.Integer(), nullable=False),
        sa.Column("returns", sa.Integer(), nullable=False),
        sa.Column("report_count", sa.Integer(), nullable=False),
        sa.Column("reporters", sa.JSON(), nullable=False),
        sa.Column("alert", sa.Boolean(), nullable=False),
        sa.Column("self_closed", sa.Boolean(), nullable=False),
        sa.Column("arbitration", sa.Boolean(), nullable=False),
        sa.Column("supervisions", sa.Integer(), nullable=False),
        sa.Column("warnings", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("decision", sa.JSON(), nullable=True),
        sa.Column("waiting", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_created", ["created_at", "case_id"], unique=False)
        batch_op.create_index("ix_cases_department_state", ["department", "state"], unique=False)
        batch_op.create_index("ix_cases_dispatched", ["dispatched_at"], unique=False)
        batch_op.create_index(
            "ix_cases_district_created", ["district", "created_at", "case_id"], unique=False
        )
        batch_op.create_index("ix_cases_open_due", ["is_open", "due_at"], unique=False)
        batch_op.create_index(
            "ix_cases_street_created", ["street", "created_at", "case_id"], unique=False
        )
        batch_op.create_index("ix_cases_unit_state", ["unit", "state"], unique=False)

    op.create_table(
        "consumed_offsets",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=128), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition"),
    )
    op.create_table(
        "report_cases",
        sa.Column("report_id", sa.String(length=96), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("reporter_id", sa.String(length=128), nullable=True),
        sa.Column("merged", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("report_id"),
    )
    with op.batch_alter_table("report_cases", schema=None) as batch_op:
        batch_op.create_index("ix_report_cases_reporter", ["reporter_id"], unique=False)

    op.create_table(
        "work_orders",
        sa.Column("work_order_id", sa.String(length=96), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("lead_department", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=True),
        sa.Column("tier", sa.String(length=16), nullable=True),
        sa.Column("type_code", sa.String(length=16), nullable=True),
        sa.Column("district", sa.String(length=16), nullable=True),
        sa.Column("street", sa.String(length=16), nullable=True),
        sa.Column("issued_at", store.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_dispose", store.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("work_order_id"),
    )
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.create_index("ix_work_orders_case", ["case_id"], unique=False)
        batch_op.create_index(
            "ix_work_orders_department", ["department", "issued_at"], unique=False
        )
        batch_op.create_index("ix_work_orders_unit", ["unit", "issued_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_work_orders_unit")
        batch_op.drop_index("ix_work_orders_department")
        batch_op.drop_index("ix_work_orders_case")

    op.drop_table("work_orders")
    with op.batch_alter_table("report_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_report_cases_reporter")

    op.drop_table("report_cases")
    op.drop_table("consumed_offsets")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_unit_state")
        batch_op.drop_index("ix_cases_street_created")
        batch_op.drop_index("ix_cases_open_due")
        batch_op.drop_index("ix_cases_district_created")
        batch_op.drop_index("ix_cases_dispatched")
        batch_op.drop_index("ix_cases_department_state")
        batch_op.drop_index("ix_cases_created")

    op.drop_table("cases")
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index("ix_case_events_type_at")
        batch_op.drop_index("ix_case_events_case")

    op.drop_table("case_events")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_at")

    op.drop_table("alerts")
