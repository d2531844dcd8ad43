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


NAME_COLUMNS = ("type_name", "department_name", "district_name", "street_name",
                "community_name")
# the columns of :func:`case_values`, in its order: a summary's fields, then what is derived
CASE_COLUMNS = (*SUMMARY_FIELDS, "is_open", "stage", "due_at", *NAME_COLUMNS)
_DEADLINES, _REPORTERS, _LEGAL = (SUMMARY_FIELDS.index(k)
                                  for k in ("deadlines", "reporters", "legal_stages"))


def _same(v: Any) -> Any:
    return v


def case_values(c: CaseSummary, names: Names = no_names, dump: Any = _same) -> list[Any]:
    """The ``cases`` values of a summary in :data:`CASE_COLUMNS` order (no report, decision
    or waiting), its JSON columns (deadlines, reporters, legal stages) as ``dump`` makes
    them: as they are for SQLAlchemy's JSON type, as JSON text for a ``COPY``."""
    v = list(_summary_values(c))
    v[_DEADLINES] = dump({k: t.isoformat() for k, t in c.deadlines.items()})
    v[_REPORTERS] = dump(list(c.reporters))
    if dump is not _same:
        v[_LEGAL] = dump(v[_LEGAL])
    v += (c.is_open, c.stage, c.due(), names("type", c.type_code),
          names("department", c.department), names("district", c.district),
          names("street", c.street), names("community", c.community))
    return v


def to_row(c: CaseSummary, names: Names = no_names, **extra: Any) -> dict[str, Any]:
    """The ``cases`` row of a summary (``extra``: report, decision, waiting)."""
    row = dict(zip(CASE_COLUMNS, case_values(c, names), strict=True))
    row.update(extra)
    return row


def from_row(row: Any) -> CaseSummary:
    """The summary a ``cases`` row holds."""
    m = row._mapping if hasattr(row, "_mapping") else row
    kw = {k: m[k] for k in SUMMARY_FIELDS}
    kw["deadlines"] = {k: datetime.fromisoformat(v) for k, v in (m["deadlines"] or {}).items()}
    kw["reporters"] = tuple(m["reporters"] or ())
    return CaseSummary(**kw)
