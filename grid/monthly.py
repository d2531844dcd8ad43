"""The monthly evaluation report (月度考核评价报告) as a district publishes it: the figures of
:mod:`grid.report` ranked, with the change against the previous period, and the weak links of
:mod:`grid.analytics`. Pure: evaluations and facts in, one JSON-ready dict out (rendered as
HTML/PDF by :mod:`streams.report_page`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from grid import analytics as A
from grid.report import Evaluation, period

RATES = ("closure_rate", "on_time_rate", "rework_rate", "extension_rate")
SECTIONS = ("overview", "departments", "streets", "hotspots", "recurrences", "trends")
TOP = 15  # rows of a ranked list in the printed report


def _delta(now: float | None, before: float | None) -> float | None:
    """Change in rate points (0.05 = +5.0 percentage points); None if either is missing."""
    return None if now is None or before is None else round(now - before, 4)


def ranked(now: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ranked by closure rate, then on-time rate (missing rates last), each with its
    rank and the change of every rate against ``before`` (``change_<rate>``)."""
    prev = {r["key"]: r for r in before}
    rows = sorted(now, key=lambda r: (r["closure_rate"] is None, -(r["closure_rate"] or 0),
                                      -(r["on_time_rate"] or 0), r["key"]))
    out = []
    for i, r in enumerate(rows, 1):
        p = prev.get(r["key"], {})
        out.append({**r, "rank": i, **{f"change_{k}": _delta(r[k], p.get(k)) for k in RATES}})
    return out


def monthly(now: Evaluation, before: Evaluation, facts: Sequence[A.Fact],
            counts: Mapping[str, int], weights: Any, verifications: Sequence[tuple[str, float]],
            names: Mapping[str, str], radius_m: Callable[[str], float],
            recur_days: int = A.RECUR_DAYS, alpha: float = A.ALPHA) -> dict[str, Any]:
    """The report's content. ``facts``: the district's cases around the period (including
    ``recur_days`` before it); ``counts``: valid cases per cell in the period; ``names``:
    code -> name of departments, streets, types and categories."""
    t0, t1 = period(now.start, now.end)
    data_now, data_before = now.to_dict(dict(names)), before.to_dict(dict(names))
    hot, bound = A.hotspots(counts, weights, alpha=alpha)
    rec = A.recurrences(facts, recur_days, radius_m, since=t0)
    rec = [r for r in rec if r.created_at < t1]
    def name(k: str | None) -> str:
        return names.get(k or "", k or "")

    weekly_total = A.weekly(facts, "category", t0, t1)
    return {
        "district": now.district, "district_name": name(now.district),
        "from": now.start.isoformat(), "to": now.end.isoformat(),
        "previous": {"from": before.start.isoformat(), "to": before.end.isoformat()},
        "evaluation": data_now,
        "total_before": data_before["total"],
        "total_change": {k: _delta(data_now["total"][k], data_before["total"][k])
                         for k in RATES},
        "departments": ranked(data_now["departments"], data_before["departments"]),
        "streets": ranked(data_now["streets"], data_before["streets"]),
        "hotspots": {
            "statistic": "local Moran's I (High-High), queen contiguity, "
                         f"{A.PERMUTATIONS} permutations, FDR alpha {alpha}",
            "alpha": alpha, "p_bound": bound, "cells": len(weights.id_order),
            "cases": int(sum(counts.values())),
            "hot": [{"cell": h.cell, "street": h.cell[:9], "street_name": name(h.cell[:9]),
                     "cases": h.cases, "local_i": h.local_i, "p_value": h.p_value,
                     "neighbours_mean": h.neighbours_mean} for h in hot],
            "counts": dict(counts),
        },
        "recurrences": {
            "days": recur_days,
            "queue": [{**r.to_dict(), "type_name": name(r.type_code),
                       "street_name": name(r.street), "department_name": name(r.department)}
                      for r in sorted(rec, key=lambda r: (-r.nth, r.created_at))],
            "by_department": [{"key": k, "name": name(k), "cases": n}
                              for k, n in A.recurrence_counts(rec, "department").items()],
            "by_street": [{"key": k, "name": name(k), "cases": n}
                          for k, n in A.recurrence_counts(rec, "street").items()],
        },
        "category_names": {k: name(k) for k in weekly_total},
        "trends": {
            "weekly": _weeks(weekly_total),  # per category
            "weekly_by_street": _weeks(A.weekly(facts, "street", t0, t1)),
            "weekly_by_department": _weeks(A.weekly(facts, "department", t0, t1)),
            "weekly_district": {w.isoformat(): x.to_dict() for w, x in A.weekly(
                [_as_district(f) for f in facts], "street", t0, t1).get("", {}).items()},
            "heatmap": A.heatmap(facts, t0, t1),
            "supervisors": [d.to_dict() for d in A.discovery(facts, verifications, t0, t1)],
        },
    }


def _weeks(series: dict[str, dict[Any, A.Week]]) -> dict[str, dict[str, Any]]:
    return {k: {w.isoformat(): x.to_dict() for w, x in v.items()} for k, v in series.items()}


def _as_district(f: A.Fact) -> A.Fact:
    """The fact with no street, so that weekly(…, "street") sums the whole district."""
    return replace(f, street=None)


def previous(start: date, end: date) -> tuple[date, date]:
    """The period to compare with: the previous calendar month when ``start``–``end`` is a
    whole month, else the same number of days just before."""
    if start.day == 1 and (end + timedelta(days=1)).day == 1 and start.month == end.month:
        last = start - timedelta(days=1)
        return last.replace(day=1), last
    days = (end - start).days + 1
    return start - timedelta(days=days), start - timedelta(days=1)
