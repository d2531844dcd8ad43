"""Evaluation by role and unit (考核评价, issue 18): work orders held as lead (主办) and as
assisting department (协办), and the hotline callbacks' satisfaction and reopen rates. Pure.

:func:`role_figures` folds case events (:class:`~grid.models.CaseEvent` or their JSON dicts,
in log order; an ``event_id`` seen twice counts once) into one :class:`RoleFigures` per
``(department, unit)`` — ``unit`` is ``None`` where the registry named none. Events outside
``[start, end)`` are skipped when a period is given.

* lead: lead work orders issued (dispatches and re-dispatches);
* assisting: assisting work orders issued; ``parts_done`` reported by the unit itself,
  ``parts_closed_out`` closed out by the lead or the command center;
* callbacks (回访) count for the lead holding the case when it was called back:
  satisfaction rate = (satisfied + basically satisfied) / callbacks,
  reopen rate = callbacks that reopened the case / callbacks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from grid.models import CaseEvent


@dataclass
class RoleFigures:
    department: str
    unit: str | None = None
    unit_name: str | None = None
    lead: int = 0
    assisting: int = 0
    parts_done: int = 0
    parts_closed_out: int = 0
    callbacks: int = 0
    satisfied: int = 0
    basically_satisfied: int = 0
    not_satisfied: int = 0
    reopened: int = 0

    @property
    def satisfaction_rate(self) -> float | None:
        ok = self.satisfied + self.basically_satisfied
        return round(ok / self.callbacks, 4) if self.callbacks else None

    @property
    def reopen_rate(self) -> float | None:
        return round(self.reopened / self.callbacks, 4) if self.callbacks else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "satisfaction_rate": self.satisfaction_rate,
                "reopen_rate": self.reopen_rate}


def role_figures(events: Iterable[CaseEvent | dict[str, Any]], start: datetime | None = None,
                 end: datetime | None = None) -> list[RoleFigures]:
    """Figures per (department, unit), sorted by department then unit (see module doc)."""
    out: dict[tuple[str, str | None], RoleFigures] = {}
    lead_of: dict[str, tuple[str, str | None, str | None]] = {}  # case -> its lead holder
    parts: dict[str, tuple[str, str | None]] = {}  # assisting work order -> its holder
    seen: set[str] = set()

    def row(dept: str, unit: str | None, name: str | None = None) -> RoleFigures:
        r = out.setdefault((dept, unit), RoleFigures(dept, unit, name))
        r.unit_name = r.unit_name or name
        return r

    for raw in events:
        e = raw.model_dump(mode="json") if isinstance(raw, CaseEvent) else raw
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        d, t, cid = e.get("data") or {}, e["type"], e["case_id"]
        at = e["at"] if isinstance(e["at"], datetime) else datetime.fromisoformat(e["at"])
        counted = (start is None or at >= start) and (end is None or at < end)
        if t in ("dispatched", "redispatched"):
            lead_of[cid] = (d["department"], d.get("unit"), d.get("unit_name"))
            for p in d.get("assisting") or []:
                parts[p["work_order_id"]] = (p["department"], p.get("unit"))
                if counted:
                    row(p["department"], p.get("unit"), p.get("unit_name")).assisting += 1
            if counted:
                row(*lead_of[cid]).lead += 1
        elif t in ("part_reported", "part_closed_out") and counted:
            holder = parts.get(d.get("work_order_id", ""), (d["department"], d.get("unit")))
            r = row(*holder)
            if t == "part_reported":
                r.parts_done += 1
            else:
                r.parts_closed_out += 1
        elif t == "callback" and counted and cid in lead_of:
            r = row(*lead_of[cid])
            r.callbacks += 1
            sat = d.get("satisfaction")
            if sat in ("satisfied", "basically_satisfied", "not_satisfied"):
                setattr(r, sat, getattr(r, sat) + 1)
            r.reopened += 1 if d.get("reopened") else 0
    return [out[k] for k in sorted(out, key=lambda k: (k[0], k[1] or ""))]


__all__ = ["RoleFigures", "role_figures"]
