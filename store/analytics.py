"""The read store's queries for :mod:`grid.analytics` (hotspots, recurrence, trends): SQL on
PostgreSQL and SQLite; the statistics themselves are pure in grid/. Blocking."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from math import cos, radians
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select

from grid.analytics import RECUR_DAYS, Fact, Recurrence, recurrences
from store import schema as S
from store.reader import clip_instant

C = S.cases.c
COUNTED = ~C.state.in_(["rejected", "merged"])  # a valid case of its own
FACT_COLUMNS = (C.case_id, C.type_code, C.cell, C.street, C.department, C.category,
                C.created_at, C.lon, C.lat, C.dispatched_at, C.closed_at, C.closed_on_time,
                C.state, C.source)  # a Fact's fields up to its reporter


class Analytics:
    """Facts for the weak-link analyses of one store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _all(self, stmt: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(stmt).all()

    def cell_counts(self, district: str, start: datetime, end: datetime,
                    category: str | None = None, type_code: str | None = None
                    ) -> dict[str, int]:
        """Valid cases (not rejected or merged) reported in ``[start, end)`` per cell."""
        w = [C.district == district, C.cell.is_not(None), COUNTED,
             C.created_at >= clip_instant(start), C.created_at < clip_instant(end)]
        if category:
            w.append(C.category == category)
        if type_code:
            w.append(C.type_code == type_code)
        return {c: n for c, n in self._all(select(C.cell, func.count()).where(*w)
                                           .group_by(C.cell))}

    def facts(self, district: str, start: datetime, end: datetime,
              lookback: timedelta = timedelta(0)) -> list[Fact]:
        """Cases of ``district`` reported before ``end`` that were reported, first
        dispatched or closed in ``[start - lookback, end)``, with their opening reporter."""
        lo, hi = clip_instant(start - lookback), clip_instant(end)
        rc = S.report_cases.c
        opener = select(rc.reporter_id).where(rc.case_id == C.case_id,
                                              rc.merged.is_(False)).limit(1) \
            .scalar_subquery()
        stmt = select(*FACT_COLUMNS, opener.label("reporter"), C.self_closed).where(
            C.district == district, C.state != "merged", C.created_at < hi,
            or_(C.created_at >= lo, C.dispatched_at >= lo, C.closed_at >= lo))
        return [Fact(*r) for r in self._all(stmt.order_by(C.created_at, C.case_id))]

    def recurrence_of(self, case_id: str, days: int = RECUR_DAYS,
                      radius_m: Callable[[str], float] = lambda _t: 50.0) -> Recurrence | None:
        """The recurrence flag of one case, at read time: the earlier cases of its type at
        its place (same cell, or within ``radius_m(type)`` metres) closed no more than
        ``days`` before it was reported; None when there are none."""
        rows = self._all(select(*FACT_COLUMNS).where(C.case_id == case_id))
        if not rows or not rows[0].type_code:
            return None
        me = Fact(*rows[0])
        r = radius_m(me.type_code)  # type: ignore[arg-type]
        near = [C.cell == me.cell] if me.cell else []
        if me.lon is not None and me.lat is not None:  # a box around the radius, then exact
            dlat = r / 111_000 + 1e-6
            dlon = dlat / max(cos(radians(me.lat)), 0.01)
            near.append(and_(C.lon.between(me.lon - dlon, me.lon + dlon),
                             C.lat.between(me.lat - dlat, me.lat + dlat)))
        if not near:
            return None
        earlier = self._all(select(*FACT_COLUMNS).where(
            C.type_code == me.type_code, C.case_id != case_id, C.closed_at.is_not(None),
            C.closed_at >= clip_instant(me.created_at - timedelta(days=days)),
            C.closed_at <= clip_instant(me.created_at), or_(*near)))
        found = recurrences([me, *(Fact(*e) for e in earlier)], days, radius_m,
                            since=me.created_at)
        return next((x for x in found if x.case_id == case_id), None)

    def verifications(self, district: str, start: datetime, end: datetime
                      ) -> list[tuple[str, float]]:
        """(supervisor, hours from the disposal to their verification — passed or failed)
        for verifications in ``[start, end)`` of the district's cases."""
        e = S.case_events.c
        rows = self._all(select(e.case_id, e.type, e.actor, e.at).join(
            S.cases, C.case_id == e.case_id).where(
            C.district == district, e.seq > 0, e.type.in_(["disposed", "verified", "rework"]),
            e.at < clip_instant(end), or_(e.type == "disposed", and_(e.at >= clip_instant(start))))
            .order_by(e.case_id, e.seq))
        out, disposed = [], {}
        for cid, typ, actor, at in rows:
            if typ == "disposed":
                disposed[cid] = at
            elif cid in disposed and actor:
                out.append((actor, (at - disposed.pop(cid)).total_seconds() / 3600))
        return out


def monthly_report(engine: Engine, district: str, start: date, end: date,
                   names: Mapping[str, str], weights: Any, radius_m: Callable[[str], float],
                   recur_days: int = RECUR_DAYS) -> dict[str, Any]:
    """The content of the monthly report (:func:`grid.monthly.monthly`) from the store: this
    period's and the previous period's evaluation, and the weak links of this period."""
    from grid.monthly import monthly, previous
    from grid.report import evaluation_of, period
    from store.reader import ReadStore

    figures = ReadStore(engine).evaluation
    now = evaluation_of(district, start, end, figures)
    before = evaluation_of(district, *previous(start, end), figures)
    t0, t1 = period(start, end)
    a = Analytics(engine)
    return monthly(now, before, a.facts(district, t0, t1, timedelta(days=recur_days)),
                   a.cell_counts(district, t0, t1), weights, a.verifications(district, t0, t1),
                   names, radius_m, recur_days)
