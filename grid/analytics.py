"""Where city management is weak (数据挖掘与综合分析): hotspots, recurring problems, trends and
the discovery side per supervisor. Pure: facts in, figures out (the read store's queries are in
:mod:`store.analytics`; definitions in docs/evaluation.md).

* **Hotspots**: local Moran's I (PySAL ``esda.Moran_Local``) of the case count per unit grid
  cell on the cells' queen adjacency, conditional permutations with a fixed seed; a cell is
  hot when it is High-High (many cases, neighbours with many cases) and its pseudo p-value
  passes the false-discovery-rate bound (``esda.fdr``) at ``alpha``.
* **Recurrence**: a case whose type was reported at the same place (same cell or within the
  type's duplicate radius) in a case closed no more than ``days`` before it was created.
* **Trends**: weekly series, the hour × weekday heat map, the supervisors' discovery.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from statistics import fmean
from typing import Any

import numpy as np

from geodata.coords import haversine_m
from grid.projection import TZ

ALPHA = 0.05
PERMUTATIONS = 999
SEED = 20
RECUR_DAYS = 30
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


@dataclass(frozen=True)
class Fact:
    """What analytics needs of one case (a row of the read store's ``cases``)."""

    case_id: str
    type_code: str | None
    cell: str | None
    street: str | None
    department: str | None
    category: str | None
    created_at: datetime
    lon: float | None = None
    lat: float | None = None
    dispatched_at: datetime | None = None
    closed_at: datetime | None = None
    closed_on_time: bool | None = None
    state: str = "reported"
    source: str | None = None
    reporter: str | None = None
    self_closed: bool = False


# -- hotspots ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hotspot:
    cell: str
    cases: int
    local_i: float
    p_value: float
    neighbours_mean: float


def hotspots(counts: Mapping[str, int], weights: Any, alpha: float = ALPHA,
             permutations: int = PERMUTATIONS, seed: int = SEED) -> tuple[list[Hotspot], float]:
    """Hot cells (High-High, FDR-significant local Moran's I) of ``counts`` (cell -> cases;
    cells absent count 0) on libpysal ``weights`` over the cell layer, most cases first;
    and the p-value bound that was applied."""
    import esda

    ids = list(weights.id_order)
    y = np.array([float(counts.get(c, 0)) for c in ids])
    if y.std() == 0:
        return [], 0.0
    from libpysal.weights import lag_spatial

    m = esda.Moran_Local(y, weights, permutations=permutations, seed=seed)  # row-standardises
    bound = float(esda.fdr(m.p_sim, alpha))
    lag = lag_spatial(weights, y)
    hot = np.where((m.q == 1) & (m.p_sim <= bound))[0]
    out = [Hotspot(ids[i], int(y[i]), round(float(m.Is[i]), 4), float(m.p_sim[i]),
                   round(float(lag[i]), 3)) for i in hot]
    return sorted(out, key=lambda h: (-h.cases, h.cell)), bound


# -- recurrence --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recurrence:
    """A case that recurred: its ``nth`` occurrence within ``days`` days; ``earlier``: the
    earlier closed cases of the same type at the same place, oldest first."""

    case_id: str
    type_code: str
    street: str | None
    department: str | None
    cell: str | None
    created_at: datetime
    nth: int
    days: int
    earlier: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"第{self.nth}次（{self.days}天内）recurred: {_ordinal(self.nth)} time in " \
               f"{self.days} days"

    def to_dict(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "type_code": self.type_code, "street": self.street,
                "department": self.department, "cell": self.cell,
                "created_at": self.created_at.isoformat(), "nth": self.nth, "days": self.days,
                "earlier": list(self.earlier), "text": self.text}


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def recurrences(facts: Iterable[Fact], days: int = RECUR_DAYS,
                radius_m: Callable[[str], float] = lambda _t: 50.0,
                since: datetime | None = None) -> list[Recurrence]:
    """Cases created at or after ``since`` that recurred (see module doc), oldest first."""
    by_type: dict[str, list[Fact]] = defaultdict(list)
    for f in facts:
        if f.type_code:
            by_type[f.type_code].append(f)
    window = timedelta(days=days)
    out = []
    for code, group in by_type.items():
        r = radius_m(code)
        closed = sorted((f for f in group if f.closed_at is not None),
                        key=lambda f: f.closed_at)  # type: ignore[arg-type,return-value]
        for f in group:
            if since is not None and f.created_at < since:
                continue
            earlier = [e for e in closed if e.case_id != f.case_id
                       and f.created_at - window <= e.closed_at <= f.created_at  # type: ignore[operator]
                       and _same_place(e, f, r)]
            if earlier:
                earlier.sort(key=lambda e: (e.created_at, e.case_id))
                out.append(Recurrence(f.case_id, code, f.street, f.department, f.cell,
                                      f.created_at, len(earlier) + 1, days,
                                      tuple(e.case_id for e in earlier)))
    return sorted(out, key=lambda x: (x.created_at, x.case_id))


def _same_place(a: Fact, b: Fact, radius: float) -> bool:
    if a.cell and a.cell == b.cell:
        return True
    if None in (a.lon, a.lat, b.lon, b.lat):
        return False
    return haversine_m(a.lon, a.lat, b.lon, b.lat) <= radius  # type: ignore[arg-type]


def recurrence_counts(items: Iterable[Recurrence], key: str) -> dict[str, int]:
    """Recurred cases per ``street`` or ``department``, most first."""
    c = Counter(getattr(r, key) or "" for r in items)
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


# -- trends ------------------------------------------------------------------------------------

def week_of(t: datetime) -> date:
    """Monday of the Shanghai week of ``t``."""
    d = t.astimezone(TZ).date()
    return d - timedelta(days=d.weekday())


@dataclass
class Week:
    """One week of one street / department / category (see :func:`weekly`)."""

    reports: int = 0
    dispatched: int = 0
    closed: int = 0
    on_time: int = 0
    hours_to_close: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"reports": self.reports, "dispatched": self.dispatched, "closed": self.closed,
                "closure_rate": _rate(self.closed, self.dispatched),
                "on_time_rate": _rate(self.on_time, self.closed),
                "mean_hours_to_close": round(fmean(self.hours_to_close), 2)
                if self.hours_to_close else None}


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def weekly(facts: Iterable[Fact], by: str, start: datetime, end: datetime
           ) -> dict[str, dict[date, Week]]:
    """Per ``by`` (``street``, ``department`` or ``category``) and week: reports created in
    the week; of the cases first dispatched in the week, how many are closed before ``end``
    (closure rate) and closed on time; mean hours from report to close of the cases closed
    in the week."""
    out: dict[str, dict[date, Week]] = defaultdict(lambda: defaultdict(Week))
    for f in facts:
        k = getattr(f, by) or ""
        if start <= f.created_at < end:
            out[k][week_of(f.created_at)].reports += 1
        if f.dispatched_at and start <= f.dispatched_at < end:
            w = out[k][week_of(f.dispatched_at)]
            w.dispatched += 1
            if f.state == "closed" and f.closed_at and f.closed_at < end:
                w.closed += 1
                w.on_time += bool(f.closed_on_time)
        if f.closed_at and start <= f.closed_at < end and f.state == "closed":
            out[k][week_of(f.closed_at)].hours_to_close.append(
                (f.closed_at - f.created_at).total_seconds() / 3600)
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def heatmap(facts: Iterable[Fact], start: datetime, end: datetime) -> list[list[int]]:
    """Reports per weekday (rows, Monday first) and hour of day (columns), Shanghai time."""
    grid = [[0] * 24 for _ in range(7)]
    for f in facts:
        if start <= f.created_at < end:
            t = f.created_at.astimezone(TZ)
            grid[t.weekday()][t.hour] += 1
    return grid


@dataclass
class Discovery:
    """One supervisor's discovery (应发现尽发现)."""

    reporter: str
    reports: int = 0
    valid: int = 0
    self_disposed: int = 0
    verify_hours: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"reporter": self.reporter, "reports": self.reports,
                "valid_rate": _rate(self.valid, self.reports),
                "self_disposal_share": _rate(self.self_disposed, self.reports),
                "verifications": len(self.verify_hours),
                "mean_verify_hours": round(fmean(self.verify_hours), 2)
                if self.verify_hours else None}


def discovery(facts: Iterable[Fact], verifications: Sequence[tuple[str, float]],
              start: datetime, end: datetime) -> list[Discovery]:
    """Per supervisor: cases opened by their reports in the period, the valid ones (not
    rejected), the self-disposed ones; ``verifications``: (supervisor, hours from disposal to
    their verification). Most reports first."""
    out: dict[str, Discovery] = {}
    for f in facts:
        if f.source != "supervisor" or not f.reporter or not start <= f.created_at < end:
            continue
        d = out.setdefault(f.reporter, Discovery(f.reporter))
        d.reports += 1
        d.valid += f.state != "rejected"
        d.self_disposed += f.self_closed
    for who, hours in verifications:
        out.setdefault(who, Discovery(who)).verify_hours.append(hours)
    return sorted(out.values(), key=lambda d: (-d.reports, d.reporter))
