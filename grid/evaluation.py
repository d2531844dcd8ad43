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
  reopen rate = callbacks that reopened the case / callbacks;
* legal-process stages (依法查处: 立案调查, 告知, 决定, 执行 / 移送法院) count for the lead
  holding the case when the stage closed, each stage on time or late on its own:
  stage on-time rate = stages closed by their due time / stages closed.

:func:`stage_figures` gives the same stage counts per stage (investigation, notice, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
    stages_closed: int = 0  # legal-process stages closed while this unit led the case
    stages_on_time: int = 0

    @property
    def satisfaction_rate(self) -> float | None:
        ok = self.satisfied + self.basically_satisfied
        return round(ok / self.callbacks, 4) if self.callbacks else None

    @property
    def reopen_rate(self) -> float | None:
        return round(self.reopened / self.callbacks, 4) if self.callbacks else None

    @property
    def stage_on_time_rate(self) -> float | None:
        return round(self.stages_on_time / self.stages_closed, 4) if self.stages_closed \
            else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "satisfaction_rate": self.satisfaction_rate,
                "reopen_rate": self.reopen_rate, "stage_on_time_rate": self.stage_on_time_rate}


@dataclass
class StageFigures:
    """Legal-process stages of one kind (e.g. notice 告知) closed in a period."""

    stage: str
    name_zh: str = ""
    name_en: str = ""
    closed: int = 0
    on_time: int = 0

    @property
    def late(self) -> int:
        return self.closed - self.on_time

    @property
    def on_time_rate(self) -> float | None:
        return round(self.on_time / self.closed, 4) if self.closed else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "late": self.late, "on_time_rate": self.on_time_rate}


def _dict(raw: CaseEvent | dict[str, Any]) -> dict[str, Any]:
    return raw.model_dump(mode="json") if isinstance(raw, CaseEvent) else raw


def _at(e: dict[str, Any]) -> datetime:
    return e["at"] if isinstance(e["at"], datetime) else datetime.fromisoformat(e["at"])


def stage_figures(events: Iterable[CaseEvent | dict[str, Any]], start: datetime | None = None,
                  end: datetime | None = None) -> list[StageFigures]:
    """Legal-process stages closed in ``[start, end)`` per stage id, on time or late, in
    the order the stages first appear (an ``event_id`` seen twice counts once)."""
    out: dict[str, StageFigures] = {}
    names: dict[str, tuple[str, str]] = {}
    seen: set[str] = set()
    for raw in events:
        e = _dict(raw)
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        d = e.get("data") or {}
        for opened in (d.get("legal_stage"), d.get("next")):
            if opened:
                names[opened["stage"]] = (opened.get("name_zh", ""), opened.get("name_en", ""))
        if e["type"] != "legal_stage_closed":
            continue
        at = _at(e)
        if (start is not None and at < start) or (end is not None and at >= end):
            continue
        f = out.setdefault(d["stage"], StageFigures(d["stage"], *names.get(d["stage"],
                                                                          ("", ""))))
        f.closed += 1
        f.on_time += bool(d.get("on_time"))
    return list(out.values())



def _each_once(events: Iterable[CaseEvent | dict[str, Any]]
               ) -> Iterator[tuple[dict[str, Any], datetime]]:
    """Each event once (by event id) as a JSON dict, with its time."""
    seen: set[str] = set()
    for raw in events:
        e = raw.model_dump(mode="json") if isinstance(raw, CaseEvent) else raw
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        yield e, e["at"] if isinstance(e["at"], datetime) else datetime.fromisoformat(e["at"])

def role_figures(events: Iterable[CaseEvent | dict[str, Any]], start: datetime | None = None,
                 end: datetime | None = None) -> list[RoleFigures]:
    """Figures per (department, unit), sorted by department then unit (see module doc)."""
    out: dict[tuple[str, str | None], RoleFigures] = {}
    lead_of: dict[str, tuple[str, str | None, str | None]] = {}  # case -> its lead holder
    parts: dict[str, tuple[str, str | None]] = {}  # assisting work order -> its holder

    def row(dept: str, unit: str | None, name: str | None = None) -> RoleFigures:
        r = out.setdefault((dept, unit), RoleFigures(dept, unit, name))
        r.unit_name = r.unit_name or name
        return r

    for e, at in _each_once(events):
        d, t, cid = e.get("data") or {}, e["type"], e["case_id"]
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
        elif t == "legal_stage_closed" and counted and cid in lead_of:
            r = row(*lead_of[cid])
            r.stages_closed += 1
            r.stages_on_time += bool(d.get("on_time"))
    return [out[k] for k in sorted(out, key=lambda k: (k[0], k[1] or ""))]


__all__ = ["RoleFigures", "StageFigures", "role_figures", "stage_figures"]
