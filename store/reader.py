"""Queries over the store: what the pages, the API, the metrics and the report read.

:class:`ReadStore` answers the same questions as the in-memory
:class:`grid.projection.Projection` (same names, same results on the same log; the
definitions of the evaluation figures are in grid/projection.py and docs/evaluation.md),
from SQL on PostgreSQL or SQLite. All methods are blocking: call them from a thread when
on an event loop.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from sqlalchemy import ARRAY, Engine, and_, any_, bindparam, case, func, or_, select, text
from sqlalchemy.sql import ColumnElement

from grid.evaluation import RoleFigures, role_figures
from grid.events import parse_event
from grid.lifecycle import replay
from grid.models import Case, CaseEvent
from grid.projection import (
    COUNTED,
    COUNTER_KEYS,
    TERMINAL,
    TIERS,
    TZ,
    WORK_ORDER_OPEN,
    CaseSummary,
    Figures,
    Projection,
    history_entry,
    new_case,
)
from grid.projection import fold as fold_event
from store import schema as S
from store.rows import from_row

C = S.cases.c
PAGE = 200  # rows per round trip when a caller filters further (scan)
# events of the unit/role figures other than the lead work orders (few: read as bodies)
FEW_ROLE_TYPES = ("part_reported", "part_closed_out", "callback", "legal_stage_closed")
TOTAL_CAP = 10_000  # a first page counts its matches up to this ("more than 10,000" beyond)


def encode_cursor(created_at: datetime, case_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at.isoformat(), case_id])).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(created_at, case_id) of an opaque cursor; ValueError when it is not one."""
    try:
        at, cid = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), str(cid)
    except Exception as err:
        raise ValueError("invalid cursor: use next_cursor from the previous page") from err


def day_range(day: date) -> tuple[datetime, datetime]:
    """A Shanghai day as [start, end) instants."""
    start = datetime.combine(day, time.min, TZ)
    return start, start + timedelta(days=1)


class ReadStore:
    """Read side over the store on ``engine`` (see module doc)."""

    def __init__(self, engine: Engine, keep_alerts: int = 200) -> None:
        self.engine = engine
        self.keep_alerts = keep_alerts

    def _all(self, stmt: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(stmt).all()

    def _scalar(self, stmt: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar()

    # -- one case ----------------------------------------------------------------------------

    def count(self, district: str | None = None, street: str | None = None) -> int:
        """Cases in the store (of ``district`` / ``street`` when given)."""
        return int(self._scalar(select(func.count()).select_from(S.cases)
                                .where(*_place(district, street))) or 0)

    def get(self, case_id: str) -> CaseSummary | None:
        rows = self._all(select(S.cases).where(C.case_id == case_id))
        return from_row(rows[0]) if rows else None

    def case(self, case_id: str) -> Case | None:
        """The case as the engine holds it, rebuilt from its stored events
        (:func:`grid.lifecycle.replay`; refusals, which change nothing, are left out)."""
        got = self.case_and_history(case_id)
        return got[0] if got is not None else None

    def case_and_history(self, case_id: str) -> tuple[Case, list[CaseEvent]] | None:
        """The case (as :meth:`case`) and its events in order: its history, which the
        engine's case (``grid.case/2``) does not keep."""
        e = S.case_events.c
        with self.engine.connect() as conn:
            bodies = conn.execute(select(e.body).where(e.case_id == case_id, e.seq > 0)
                                  .order_by(e.seq)).scalars().all()
        if not bodies:
            return None
        events = [parse_event(b) for b in bodies]
        return replay(events), events

    def case_for_report(self, report_id: str) -> str | None:
        """The case a report opened or was merged into (None: not seen yet)."""
        rc = S.report_cases.c
        return self._scalar(select(rc.case_id).where(rc.report_id == report_id))

    def detail(self, case_id: str, now: datetime | None = None) -> dict[str, Any] | None:
        """Summary plus report facts, decision (rule, explanation) and the full history."""
        with self.engine.connect() as conn:
            row = conn.execute(select(S.cases).where(C.case_id == case_id)).first()
            if row is None:
                return None
            e = S.case_events.c
            bodies = conn.execute(select(e.body).where(e.case_id == case_id)
                                  .order_by(e.at, e.seq)).scalars().all()
        history = [history_entry(b) for b in bodies
                   if b.get("seq", 0) == 0 or b["seq"] <= row.seq]
        return {**from_row(row).to_dict(now), "report": row.report, "decision": row.decision,
                "history": history, "history_kept": True,
                "names": {k: row._mapping[f"{k}_name"]
                          for k in ("type", "department", "district", "street", "community")}}

    # -- lists -------------------------------------------------------------------------------

    @staticmethod
    def _where(district: str | None = None, street: str | None = None,
               state: str | Iterable[str] | None = None, overdue: bool | None = None,
               department: str | None = None, now: datetime | None = None,
               type_code: str | None = None, since: datetime | None = None,
               until: datetime | None = None, scope: Any = None,
               reporter: str | None = None, unit: str | None = None,
               holder: tuple[str | None, str | None] | None = None
               ) -> list[ColumnElement[bool]]:
        """Filter clauses. ``scope``: a principal-like object with ``districts``, ``streets``
        and ``patrol_areas`` (all empty: the whole city); ``reporter``: only cases one of
        whose reports came from this reporter; ``holder``: (department, unit) — only cases on
        which that unit (else that department) holds a work order, lead or assisting."""
        if overdue is not None and now is None:
            raise ValueError("overdue filter needs now")
        w: list[ColumnElement[bool]] = []
        if scope is not None and (scope.districts or scope.streets or scope.patrol_areas):
            w.append(or_(C.district.in_(sorted(scope.districts)),
                         C.street.in_(sorted(scope.streets)),
                         C.patrol_area.in_(sorted(scope.patrol_areas))))
        if reporter is not None:
            rc = S.report_cases.c
            w.append(C.case_id.in_(select(rc.case_id).where(rc.reporter_id == reporter)))
        if district:
            w.append(C.district == district)
        if street:
            w.append(C.street == street)
        if department:
            w.append(C.department == department)
        if unit:
            w.append(C.unit == unit)
        if holder is not None:
            wo = S.work_orders.c
            dept, own = holder
            col, val = (C.unit, own) if own else (C.department, dept)
            held = wo.unit == own if own else wo.department == dept
            w.append(or_(col == val, C.case_id.in_(select(wo.case_id).where(held))))
        if type_code:
            w.append(C.type_code.in_(sorted(type_code)) if isinstance(type_code, set | list)
                     else C.type_code == type_code)
        if since:
            w.append(C.created_at >= since)
        if until:
            w.append(C.created_at < until)
        states = {state} if isinstance(state, str) else set(state) if state else None
        if states:
            named = sorted(states - {"open"})
            cond = [C.state.in_(named)] if named else []
            if "open" in states:
                cond.append(C.is_open.is_(True))
            w.append(or_(*cond))
        if overdue is True:
            w.append(and_(C.is_open.is_(True), C.due_at <= now))
        elif overdue is False:
            w.append(or_(C.is_open.is_(False), C.due_at.is_(None), C.due_at > now))
        return w

    def scan(self, cursor: str | None = None, **filters: Any) -> Iterator[CaseSummary]:
        """Matching cases newest first (created_at, case_id), from ``cursor`` on, fetched
        :data:`PAGE` at a time (for callers that filter further, e.g. by scope)."""
        where = self._where(**filters)
        after = decode_cursor(cursor) if cursor else None
        while True:
            w = list(where)
            if after is not None:
                w.append(or_(C.created_at < after[0],
                             and_(C.created_at == after[0], C.case_id < after[1])))
            rows = self._all(select(S.cases).where(*w)
                             .order_by(C.created_at.desc(), C.case_id.desc()).limit(PAGE))
            for r in rows:
                yield from_row(r)
            if len(rows) < PAGE:
                return
            after = (rows[-1].created_at, rows[-1].case_id)

    def list(self, district: str | None = None, street: str | None = None,
             state: str | Iterable[str] | None = None, overdue: bool | None = None,
             department: str | None = None, now: datetime | None = None, limit: int = 50,
             cursor: str | None = None, **more: Any) -> tuple[list[CaseSummary], str | None]:
        """Cases newest first, filtered; returns (page, cursor of the next page or None)."""
        page: list[CaseSummary] = []
        for c in self.scan(cursor, district=district, street=street, state=state,
                           overdue=overdue, department=department, now=now, **more):
            if len(page) == limit:
                return page, encode_cursor(page[-1].created_at, page[-1].case_id)
            page.append(c)
        return page, None

    def page(self, limit: int = 50, cursor: str | None = None, **filters: Any
             ) -> tuple[list[CaseSummary], str | None, int | None]:
        """One page newest first: (cases, next cursor or None, total matching — on the first
        page only, None with a cursor; counted up to ``TOTAL_CAP + 1``, so a larger result
        costs no full count). ``filters`` as :meth:`scan`."""
        where = self._where(**filters)
        w = list(where)
        if cursor:
            at, cid = decode_cursor(cursor)
            w.append(or_(C.created_at < at, and_(C.created_at == at, C.case_id < cid)))
        rows = self._all(select(S.cases).where(*w)
                         .order_by(C.created_at.desc(), C.case_id.desc()).limit(limit + 1))
        cases = [from_row(r) for r in rows[:limit]]
        nxt = encode_cursor(cases[-1].created_at, cases[-1].case_id) \
            if len(rows) > limit else None
        total = None if cursor else int(self._scalar(select(func.count()).select_from(
            select(C.case_id).where(*where).limit(TOTAL_CAP + 1).subquery())) or 0)
        return cases, nxt, total

    def report_id(self, case_id: str) -> str | None:
        """The report that opened a case."""
        rc = S.report_cases.c
        return self._scalar(select(rc.report_id).where(rc.case_id == case_id,
                                                       rc.merged.is_(False)))

    def open_cases(self, district: str | None = None,
                   street: str | None = None) -> Iterator[CaseSummary]:
        w = [C.is_open.is_(True), *_place(district, street)]
        return (from_row(r) for r in self._all(select(S.cases).where(*w)))

    def overdue(self, now: datetime, district: str | None = None,
                street: str | None = None) -> list[CaseSummary]:
        """Open cases past their current stage's deadline, latest first."""
        w = self._where(district=district, street=street, overdue=True, now=now)
        rows = self._all(select(S.cases).where(*w).order_by(C.due_at, C.case_id))
        return [from_row(r) for r in rows]

    def work_orders(self, department: str) -> list[dict[str, Any]]:
        """Open work orders of a department (dispatched, accepted or in rework), oldest first."""
        rows = self._all(select(S.cases).where(C.department == department,
                                               C.state.in_(sorted(WORK_ORDER_OPEN)))
                         .order_by(C.dispatched_at, C.case_id))
        out = []
        for r in rows:
            c = from_row(r)
            due = c.deadlines.get("dispose")
            out.append({"work_order_id": c.work_order_id, "case_id": c.case_id,
                        "department": department, "state": c.state, "priority": c.priority,
                        "type_code": c.type_code, "street": c.street,
                        "due": due.isoformat() if due else None,
                        "dispatched_at": c.dispatched_at.isoformat()
                        if c.dispatched_at else None})
        return out

    def day_cases(self, day: date, key: str, now: datetime | None = None,
                  district: str | None = None, street: str | None = None) -> list[CaseSummary]:
        """The cases behind counter ``key`` on ``day`` (as Projection.day_cases)."""
        if key == "overdue":
            if now is None:
                raise ValueError("overdue cases need now")
            return self.overdue(now, district, street)
        col = {"reported": C.created_at, "filed": C.filed_at, "dispatched": C.dispatched_at,
               "closed": C.closed_at, "self_closed": C.closed_at,
               "merged": C.merged_at}.get(key)
        if col is None:
            raise ValueError(f"no counter {key!r}: one of {', '.join(COUNTER_KEYS)}")
        start, end = day_range(day)
        w = [col >= start, col < end, *_place(district, street)]
        if key == "self_closed":
            w.append(C.self_closed.is_(True))
        rows = self._all(select(S.cases).where(*w)
                         .order_by(C.created_at.desc(), C.case_id.desc()))
        return [from_row(r) for r in rows]

    def search(self, text: str, district: str | None = None,
               limit: int = 50, street: str | None = None) -> list[CaseSummary]:
        """Cases newest first whose case id or one of whose report ids is ``text``, or whose
        case id starts with it, or whose description or address contains it (any case)."""
        text = text.strip()
        if not text:
            return []
        exact = [cid for cid in (text, self.case_for_report(text)) if cid]
        scope = _place(district, street)
        first = self._all(select(S.cases).where(C.case_id.in_(exact), *scope)) if exact else []
        by_id = {r.case_id: from_row(r) for r in first}
        out = [by_id[cid] for cid in dict.fromkeys(exact) if cid in by_id]
        like = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_") + "%"
        rows = self._all(select(S.cases).where(
            *scope, C.case_id.notin_(exact) if exact else C.case_id.is_not(None),
            or_(C.case_id.startswith(text, autoescape=True),
                func.lower(C.description).like(like, escape="\\"),
                func.lower(C.address).like(like, escape="\\")))
            .order_by(C.created_at.desc(), C.case_id.desc()).limit(limit))
        out += [from_row(r) for r in rows]
        return out[:limit]

    # -- aggregates --------------------------------------------------------------------------

    def counters(self, day: date, now: datetime | None = None, district: str | None = None,
                 street: str | None = None) -> dict[str, int]:
        """The day's counters (as :meth:`grid.projection.Projection.counters`), of the cases
        of ``district`` / ``street`` when given (None: the whole city)."""
        start, end = day_range(day)
        e = S.case_events.c
        w = [e.at >= start, e.at < end, e.seq > 0, e.type.in_(sorted(COUNTED))]
        if district or street:
            w.append(e.case_id.in_(select(C.case_id).where(*_place(district, street))))
        rows = self._all(select(e.type, func.count()).where(*w).group_by(e.type))
        got: Counter[str] = Counter()
        for t, n in rows:
            for key in COUNTED[t]:
                got[key] += n
        out = {k: got.get(k, 0) for k in COUNTER_KEYS}
        out["overdue"] = self.overdue_count(now, district, street) if now is not None else 0
        return out

    def overdue_count(self, now: datetime, district: str | None = None,
                      street: str | None = None) -> int:
        w = self._where(district=district, street=street, overdue=True, now=now)
        return int(self._scalar(select(func.count()).select_from(S.cases).where(*w)) or 0)

    def open_counts(self) -> dict[tuple[str, str, str], int]:
        """Open cases per (district, street, state) — the grid_cases_open gauge."""
        rows = self._all(select(C.district, C.street, C.state, func.count())
                         .where(C.is_open.is_(True)).group_by(C.district, C.street, C.state))
        return {(d or "", s or "", st): n for d, s, st, n in rows}

    def overdue_counts(self, now: datetime) -> dict[tuple[str, str], int]:
        """Overdue open cases per (district, street)."""
        rows = self._all(select(C.district, C.street, func.count())
                         .where(*self._where(overdue=True, now=now))
                         .group_by(C.district, C.street))
        return {(d or "", s or ""): n for d, s, n in rows}

    def open_by_street(self, now: datetime,
                       district: str | None = None) -> dict[str, dict[str, int]]:
        """Open cases per street and how many of them are overdue at ``now``."""
        return self._open_by(C.street, now, _place(district, None))

    def open_by_district(self, now: datetime) -> dict[str, dict[str, int]]:
        """Open cases per district and how many of them are overdue at ``now`` (the city
        map)."""
        return self._open_by(C.district, now, [])

    def open_by_community(self, now: datetime, street: str) -> dict[str, dict[str, int]]:
        """Open and overdue cases per community of ``street`` (the street map)."""
        return self._open_by(C.community, now, _place(None, street))

    def open_by_cell(self, district: str | None = None,
                     street: str | None = None) -> dict[str, int]:
        """Open cases per cell (of ``district`` / ``street``)."""
        rows = self._all(select(C.cell, func.count())
                         .where(C.is_open.is_(True), C.cell.is_not(None),
                                *_place(district, street)).group_by(C.cell))
        return {k: n for k, n in rows}

    def marked(self, now: datetime, district: str | None = None, street: str | None = None,
               limit: int = 800) -> list[CaseSummary]:
        """Open cases that the map marks — urgent or overdue at ``now`` — with a position,
        overdue first, then urgent, oldest deadline first; at most ``limit``."""
        late = and_(C.due_at.is_not(None), C.due_at <= now)
        rows = self._all(select(S.cases).where(
            C.is_open.is_(True), C.lon.is_not(None), or_(C.priority == "urgent", late),
            *_place(district, street))
            .order_by(case((late, 0), else_=1), case((C.priority == "urgent", 0), else_=1),
                      C.due_at, C.case_id).limit(limit))
        return [from_row(r) for r in rows]

    def _open_by(self, key: Any, now: datetime, w: list[Any]) -> dict[str, dict[str, int]]:
        late = and_(C.due_at.is_not(None), C.due_at <= now)
        rows = self._all(select(key, func.count(), func.sum(case((late, 1), else_=0)))
                         .where(C.is_open.is_(True), key.is_not(None), *w)
                         .group_by(key).order_by(key))
        return {k: {"open": n, "overdue": int(o or 0)} for k, n, o in rows}

    def tier_flow(self, day: date | None = None, district: str | None = None,
                  street: str | None = None) -> dict[str, dict[str, int]]:
        """Cases per loop: total, open, closed, escalated (see Projection.tier_flow), of
        ``district`` / ``street`` when given."""
        w = [C.state.notin_(["rejected", "merged"]), *_place(district, street)]
        if day is not None:
            start, end = day_range(day)
            w += [C.created_at >= start, C.created_at < end]
        rows = self._all(select(
            C.tier, func.count(), func.sum(case((C.is_open.is_(True), 1), else_=0)),
            func.sum(case((C.supervisions > 0, 1), else_=0))).where(*w).group_by(C.tier))
        flow = {t: {"total": 0, "open": 0, "closed": 0, "escalated": 0} for t in TIERS}
        for tier, total, open_, esc in rows:
            flow[tier] = {"total": total, "open": int(open_ or 0),
                          "closed": total - int(open_ or 0), "escalated": int(esc or 0)}
        return flow

    def _figures(self, key: Any, start: datetime, end: datetime, now: datetime | None,
                 district: str | None, more: list[Any] | None = None) -> dict[str, Figures]:
        def n(cond: Any) -> Any:
            return func.sum(case((cond, 1), else_=0))

        lo, hi = clip_instant(start), clip_instant(end)
        w = [C.dispatched_at.is_not(None), C.dispatched_at >= lo, C.dispatched_at < hi]
        if district:
            w.append(C.district == district)
        w += more or []
        closed = C.state == "closed"
        late = and_(C.is_open.is_(True), C.due_at <= now) if now is not None else None
        cols = [key.label("k"), func.count(), n(closed), n(and_(closed, C.closed_on_time)),
                n(C.disposed_at.is_not(None)), n(C.reworks > 0), n(C.extensions > 0),
                n(C.is_open.is_(True)), n(late) if late is not None else func.sum(0)]
        rows = self._all(select(*cols).where(*w).group_by(key))
        out = {}
        for k, disp, cl, ot, dis, rw, ext, op, od in rows:
            out[k] = Figures(key=k, dispatched=disp, closed=int(cl or 0),
                             closed_on_time=int(ot or 0), disposed=int(dis or 0),
                             reworked=int(rw or 0), extended=int(ext or 0), open=int(op or 0),
                             overdue=int(od or 0))
        return dict(sorted(out.items()))

    def department_figures(self, start: datetime, end: datetime, now: datetime | None = None,
                           district: str | None = None, street: str | None = None
                           ) -> dict[str, Figures]:
        """Figures per department for cases first dispatched in ``[start, end)`` (of
        ``district`` / ``street``)."""
        return self._figures(func.coalesce(C.department, "command_center"), start, end, now,
                             district, _place(None, street))

    def street_figures(self, start: datetime, end: datetime, now: datetime | None = None,
                       district: str | None = None) -> dict[str, Figures]:
        """Figures per street for cases first dispatched in ``[start, end)``."""
        return self._figures(func.coalesce(C.street, ""), start, end, now, district)

    def district_figures(self, start: datetime, end: datetime,
                         now: datetime | None = None) -> dict[str, Figures]:
        """Figures per district for cases first dispatched in ``[start, end)``, live (the
        city's dashboard; :meth:`district_evaluation` is the same as of a period's end)."""
        return self._figures(func.coalesce(C.district, ""), start, end, now, None)

    def evaluation(self, start: datetime, end: datetime, district: str | None = None
                   ) -> tuple[dict[str, Figures], dict[str, Figures], int, list[Any]]:
        """(per department, per street, events applied, per unit and role) as of ``end`` for
        the cases first dispatched in ``[start, end)`` — the figures of
        :func:`grid.report.evaluate`; the unit rows are :func:`grid.evaluation.role_figures`
        over the district's work-order and callback events.

        A case not updated since ``end`` is counted from its row, in SQL; a case changed
        after ``end`` is folded again from its events before ``end`` (the one fold), so a
        closed period's report never changes.
        """
        depts, p = self._as_of(func.coalesce(C.department, "command_center"), start, end,
                               district)
        streets, _ = self._as_of(func.coalesce(C.street, ""), start, end, district,
                                 fold=False)  # p holds the changed cases already
        if p is not None:
            depts = _add(depts, p.department_figures(start, end, now=end, district=district))
            streets = _add(streets, p.street_figures(start, end, now=end, district=district))
        e = S.case_events.c
        n = int(self._scalar(select(func.count()).select_from(S.case_events)
                             .where(e.at < end)) or 0)
        return depts, streets, n, self._role_figures(start, end, district)

    def district_evaluation(self, start: datetime, end: datetime) -> dict[str, Figures]:
        """Figures per district as of ``end`` (the same definitions: a city compares its
        districts)."""
        got, p = self._as_of(func.coalesce(C.district, ""), start, end, None)
        return _add(got, p.district_figures(start, end, now=end)) if p is not None else got

    def _as_of(self, key: Any, start: datetime, end: datetime, district: str | None,
               fold: bool = True) -> tuple[dict[str, Figures], Projection | None]:
        """Figures per ``key`` of the unchanged cohort cases (SQL), and a projection folded
        from the events before ``end`` of the cases changed since (None: there are none,
        or not ``fold``)."""
        figures = self._figures(key, start, end, end, district, [C.updated_at < end])
        if not fold:
            return figures, None
        w = [C.dispatched_at >= clip_instant(start), C.dispatched_at < clip_instant(end),
             C.updated_at >= end]
        if district:
            w.append(C.district == district)
        changed = [r[0] for r in self._all(select(C.case_id).where(*w))]
        if not changed:
            return figures, None
        # the fold of Projection.apply without its indexes, counters and history: only the
        # case summaries are read
        p = Projection(keep_detail=0)
        cases = p.cases
        e = S.case_events.c
        pg = self.engine.dialect.name == "postgresql"
        for ids in [changed] if pg else _chunks(changed):  # PostgreSQL: one array parameter
            of = e.case_id == any_(bindparam(None, ids, type_=ARRAY(e.case_id.type))) if pg \
                else e.case_id.in_(ids)
            for (body,) in self._all(select(e.body).where(of, e.at < end, e.seq > 0)
                                     .order_by(e.case_id, e.seq)):
                c = cases.get(cid := body["case_id"])
                if c is None:
                    if body.get("type") != "reported":
                        continue  # waits for its case's first event (as Projection.apply)
                    ev = parse_event(body)
                    c = cases[cid] = new_case(ev)
                elif int(body["seq"]) != c.seq + 1:
                    continue  # after a gap
                else:
                    ev = parse_event(body)
                fold_event(c, ev, p.category_of)
        return figures, p

    def _role_figures(self, start: datetime, end: datetime,
                      district: str | None) -> list[RoleFigures]:
        """:func:`grid.evaluation.role_figures` of the work-order, callback and legal-stage
        events of ``district`` in ``[start, end)``, in SQL where the events are many.

        Lead work orders (dispatched/redispatched: ~one per case) are one GROUP BY over the
        covering index ``ix_case_events_dispatch``. Everything else is folded from bodies,
        which are few: the dispatches in the period that opened assisting parts, and the
        part, callback and stage events of the period with every dispatch of their cases
        before ``end`` (who held the part, who led at the callback). Their fold's lead
        counts are replaced by the SQL ones.
        """
        e = S.case_events.c
        lo, hi = clip_instant(start), clip_instant(end)
        place = [e.district == district] if district else []
        # the partial index's own predicate (literals), so that SQLite uses it too
        disp = [text(S.DISPATCH_WHERE), e.at >= lo, e.at < hi, *place]
        leads = self._all(select(e.department, e.unit, func.max(e.unit_name), func.count(),
                                 func.sum(case((e.parts > 0, 1), else_=0)))
                          .where(*disp).group_by(e.department, e.unit))
        bodies: list[dict[str, Any]] = []
        if any(p for *_, p in leads):
            bodies += [r[0] for r in self._all(select(e.body).where(*disp, e.parts > 0))]
        few = select(e.case_id).where(e.type.in_(FEW_ROLE_TYPES), e.at >= lo, e.at < hi,
                                      *place).distinct().scalar_subquery()
        bodies += [r[0] for r in self._all(select(e.body).where(
            e.case_id.in_(few), e.type.in_(S.DISPATCH_TYPES + FEW_ROLE_TYPES), e.at < hi))]
        bodies.sort(key=lambda b: (datetime.fromisoformat(b["at"]), b.get("seq") or 0))
        out = {(r.department, r.unit): r for r in role_figures(bodies, start, end)}
        for r in out.values():
            r.lead = 0
        for dept, unit, name, n, _ in leads:
            if dept is None:
                continue  # not a work order (role_figures would refuse it)
            r = out.setdefault((dept, unit), RoleFigures(dept, unit, name))
            r.lead, r.unit_name = n, r.unit_name or name
        return [out[k] for k in sorted(out, key=lambda k: (k[0], k[1] or ""))]

    def stored_offsets(self, consumer: str) -> dict[tuple[str, int], int]:
        """How far projector group ``consumer`` has stored each partition (next offset)."""
        o = S.offsets.c
        rows = self._all(select(o.topic, o.partition, o.next_offset)
                         .where(o.consumer == consumer))
        return {(t, p): n for t, p, n in rows}

    # -- alerts ------------------------------------------------------------------------------

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """The newest alerts, oldest first (as the projection's bounded deque)."""
        return self.recent_alerts(self.keep_alerts)

    def recent_alerts(self, n: int = 50, district: str | None = None,
                      street: str | None = None) -> list[dict[str, Any]]:
        """The ``n`` newest alerts (of ``district`` and those without one; of ``street``
        only, when given), oldest first."""
        a = S.alerts.c
        district = district or (street[:6] if street else None)
        w = [or_(a.district == district, a.district.is_(None))] if district else []
        if street:  # alerts carry their street in the body only
            w = [a.case_id.in_(select(C.case_id).where(C.street == street))]
        rows = self._all(select(a.body).where(*w).order_by(a.at.desc(), a.alert_id.desc())
                         .limit(n))
        return [r[0] for r in reversed(rows)]


def _place(district: str | None, street: str | None) -> list[ColumnElement[bool]]:
    """Clauses keeping the cases of ``district`` and ``street`` (either may be None)."""
    return ([C.district == district] if district else []) + \
        ([C.street == street] if street else [])


def _chunks(items: list[Any], n: int = 500) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _add(a: dict[str, Figures], b: dict[str, Figures]) -> dict[str, Figures]:
    """Figures of two disjoint sets of cases, per key."""
    out = dict(a)
    for k, f in b.items():
        g = out.get(k)
        out[k] = f if g is None else Figures(key=k, **{
            n: getattr(f, n) + getattr(g, n) for n in (
                "dispatched", "closed", "closed_on_time", "disposed", "reworked", "extended",
                "open", "overdue")})
    return dict(sorted(out.items()))


def clip_instant(t: datetime) -> datetime:
    """datetime.min/max (open periods) as instants every database can compare."""
    lo, hi = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)
    return min(max(t, lo), hi)


__all__ = ["TERMINAL", "ReadStore", "decode_cursor", "encode_cursor"]
