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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from grid.events import (
    CallbackEvent,
    CaseEvent,
    DispatchedEvent,
    LegalStageClosedEvent,
    PartEvent,
    parse_event,
)


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


def _each_once(events: Iterable[CaseEvent | dict[str, Any]]) -> Iterator[CaseEvent]:
    """Each event once (by event id), typed (a JSON dict is parsed)."""
    seen: set[str] = set()
    for raw in events:
        e = raw if isinstance(raw, CaseEvent) else parse_event(raw)
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        yield e


def _in(at: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or at >= start) and (end is None or at < end)


def stage_figures(events: Iterable[CaseEvent | dict[str, Any]], start: datetime | None = None,
                  end: datetime | None = None) -> list[StageFigures]:
    """Legal-process stages closed in ``[start, end)`` per stage id, on time or late, in
    the order the stages first appear (an ``event_id`` seen twice counts once)."""
    out: dict[str, StageFigures] = {}
    names: dict[str, tuple[str, str]] = {}
    for e in _each_once(events):
        opened = (e.data.legal_stage if isinstance(e, DispatchedEvent)
                  else e.data.next if isinstance(e, LegalStageClosedEvent) else None)
        if opened:
            names[opened.stage] = (opened.name_zh, opened.name_en)
        if not isinstance(e, LegalStageClosedEvent) or not _in(e.at, start, end):
            continue
        stage = e.data.stage
        f = out.setdefault(stage, StageFigures(stage, *names.get(stage, ("", ""))))
        f.closed += 1
        f.on_time += bool(e.data.on_time)
    return list(out.values())


@dataclass
class _Fold:
    """What :func:`role_figures` knows while folding: the rows, who leads each case, who
    holds each assisting work order, and the period."""

    start: datetime | None
    end: datetime | None
    out: dict[tuple[str, str | None], RoleFigures] = field(default_factory=dict)
    lead_of: dict[str, tuple[str, str | None, str | None]] = field(default_factory=dict)
    parts: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def row(self, dept: str, unit: str | None, name: str | None = None) -> RoleFigures:
        r = self.out.setdefault((dept, unit), RoleFigures(dept, unit, name))
        r.unit_name = r.unit_name or name
        return r

    def counted(self, e: CaseEvent) -> bool:
        return _in(e.at, self.start, self.end)


def _r_dispatched(f: _Fold, e: DispatchedEvent) -> None:
    d = e.data
    f.lead_of[e.case_id] = (d.department, d.unit, d.unit_name)
    for p in d.assisting or []:
        f.parts[p.work_order_id] = (p.department, p.unit)
        if f.counted(e):
            f.row(p.department, p.unit, p.unit_name).assisting += 1
    if f.counted(e):
        f.row(*f.lead_of[e.case_id]).lead += 1


def _r_part(f: _Fold, e: PartEvent) -> None:
    d = e.data
    if not f.counted(e):
        return
    r = f.row(*f.parts.get(d.work_order_id, (d.department or "", d.unit)))
    if e.type == "part_reported":
        r.parts_done += 1
    else:
        r.parts_closed_out += 1


def _r_callback(f: _Fold, e: CallbackEvent) -> None:
    if not f.counted(e) or e.case_id not in f.lead_of:
        return
    r = f.row(*f.lead_of[e.case_id])
    r.callbacks += 1
    sat = e.data.satisfaction
    setattr(r, sat, getattr(r, sat) + 1)
    r.reopened += 1 if e.data.reopened else 0


def _r_stage_closed(f: _Fold, e: LegalStageClosedEvent) -> None:
    if not f.counted(e) or e.case_id not in f.lead_of:
        return
    r = f.row(*f.lead_of[e.case_id])
    r.stages_closed += 1
    r.stages_on_time += bool(e.data.on_time)


# event type -> what it adds to the figures (each step takes the event class of its type)
_ROLE_STEPS: dict[str, Callable[[_Fold, Any], None]] = {
    "dispatched": _r_dispatched, "redispatched": _r_dispatched,
    "part_reported": _r_part, "part_closed_out": _r_part,
    "callback": _r_callback,
    "legal_stage_closed": _r_stage_closed,
}


def role_figures(events: Iterable[CaseEvent | dict[str, Any]], start: datetime | None = None,
                 end: datetime | None = None) -> list[RoleFigures]:
    """Figures per (department, unit), sorted by department then unit (see module doc)."""
    f = _Fold(start, end)
    for e in _each_once(events):
        step = _ROLE_STEPS.get(e.type)
        if step is not None:
            step(f, e)
    return [f.out[k] for k in sorted(f.out, key=lambda k: (k[0], k[1] or ""))]


__all__ = ["RoleFigures", "StageFigures", "role_figures", "stage_figures"]
