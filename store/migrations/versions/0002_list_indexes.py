"""indexes for the list pages' filters and their totals: type + time range, open cases per
district, open cases per department by deadline (grid bench store, docs/BENCHMARKS.md)

With 1,000,000 cases on PostgreSQL the pages themselves took milliseconds, but the total
(``COUNT(*)`` of the same filter, on every first page) read the heap: 500-700 ms for
"type + week" (77,000 rows of the week fetched to keep 600), "department + overdue"
(a bitmap AND of 96,000 and 272,000 entries) and "district + open" (a parallel seq scan).
The partial indexes hold open cases only; their predicate is written as the reader writes
``is_open.is_(True)`` on each database, so that the planners match it.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OPEN = {"postgresql_where": sa.text("is_open IS true"), "sqlite_where": sa.text("is_open IS 1")}


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_type_created", ["type_code", "created_at", "case_id"])
        batch_op.create_index("ix_cases_open_district_created",
                              ["district", "created_at", "case_id"], **OPEN)
        batch_op.create_index("ix_cases_open_department_due", ["department", "due_at"], **OPEN)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_open_department_due")
        batch_op.drop_index("ix_cases_open_district_created")
        batch_op.drop_index("ix_cases_type_created")
