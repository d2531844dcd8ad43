"""case_events: the evaluation's unit/role facts as columns (district, department, unit,
unit_name, parts) and a covering partial index over the lead work orders issued

``ReadStore.evaluation`` folded the bodies of every work-order event of the period in Python
(grid.evaluation.role_figures): ~20 s of a quarter's report with 1,000,000 cases (grid bench
store). With these columns the lead counts are one GROUP BY over the index; only the few
events with assisting parts and callbacks are read as bodies. Existing rows are filled from
their bodies.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from store.schema import DISPATCH_WHERE

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ORDER_TYPES = "('dispatched', 'redispatched', 'part_reported', 'part_closed_out')"


def upgrade() -> None:
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("district", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("department", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("unit", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("unit_name", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("parts", sa.Integer(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        def at(path: str) -> str:
            *head, last = path.split(".")
            return "body" + "".join(f"->'{k}'" for k in head) + f"->>'{last}'"
        parts = ("CASE WHEN json_typeof(body->'data'->'assisting') = 'array' "
                 "THEN json_array_length(body->'data'->'assisting') ELSE 0 END")
    else:
        def at(path: str) -> str:
            return f"json_extract(body, '$.{path}')"
        parts = ("CASE WHEN json_type(body, '$.data.assisting') = 'array' "
                 "THEN json_array_length(body, '$.data.assisting') ELSE 0 END")
    op.execute(f"UPDATE case_events SET district = {at('district')}")
    op.execute(f"UPDATE case_events SET department = {at('data.department')}, "
               f"unit = {at('data.unit')} WHERE type IN {ORDER_TYPES}")
    op.execute(f"UPDATE case_events SET unit_name = {at('data.unit_name')}, parts = {parts} "
               f"WHERE {DISPATCH_WHERE}")
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_case_events_dispatch",
            ["district", "at", "department", "unit", "unit_name", "parts"],
            postgresql_where=sa.text(DISPATCH_WHERE), sqlite_where=sa.text(DISPATCH_WHERE))


def downgrade() -> None:
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index("ix_case_events_dispatch")
        batch_op.drop_column("parts")
        batch_op.drop_column("unit_name")
        batch_op.drop_column("unit")
        batch_op.drop_column("department")
        batch_op.drop_column("district")
