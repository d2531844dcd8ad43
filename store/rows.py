"""Case summaries ↔ rows of the ``cases`` table (the one mapping both ways)."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol

from grid.projection import CaseSummary

SUMMARY_FIELDS = tuple(f.name for f in fields(CaseSummary))
_summary_values = attrgetter(*SUMMARY_FIELDS)


class Names(Protocol):
    """Names people read beside codes: ``names(kind, code)`` with kind one of district,
    street, community, type, department; ``None`` when unknown."""

    def __call__(self, kind: str, code: str | None) -> str | None: ...


def no_names(kind: str, code: str | None) -> str | None:
    return None


def to_row(c: CaseSummary, names: Names = no_names, **extra: Any) -> dict[str, Any]:
    """The ``cases`` row of a summary (``extra``: report, decision, waiting)."""
    row = dict(zip(SUMMARY_FIELDS, _summary_values(c), strict=True))
    row["deadlines"] = {k: v.isoformat() for k, v in c.deadlines.items()}
    row["reporters"] = list(c.reporters)
    row.update(is_open=c.is_open, stage=c.stage, due_at=c.due(),
               type_name=names("type", c.type_code),
               department_name=names("department", c.department),
               district_name=names("district", c.district),
               street_name=names("street", c.street),
               community_name=names("community", c.community))
    row.update(extra)
    return row


def from_row(row: Any) -> CaseSummary:
    """The summary a ``cases`` row holds."""
    m = row._mapping if hasattr(row, "_mapping") else row
    kw = {k: m[k] for k in SUMMARY_FIELDS}
    kw["deadlines"] = {k: datetime.fromisoformat(v) for k, v in (m["deadlines"] or {}).items()}
    kw["reporters"] = tuple(m["reporters"] or ())
    return CaseSummary(**kw)
