"""Duplicate detection: a report of the same type close in space and time to an open case
is merged into that case instead of opening a new one. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from geodata.coords import haversine_m
from grid.models import Case, Placement, Report
from rules.ruleset import RuleSet
from rules.timing import duration


def find_duplicate(report: Report, placement: Placement, type_code: str | None,
                   candidates: Iterable[Case], ruleset: RuleSet) -> Case | None:
    """The open case ``report`` duplicates, or ``None``.

    A candidate qualifies if it is open, has the same type code, lies within ``distance_m``
    (WGS-84, after CRS conversion) and its opening report was made within ``window`` of this
    one (either side). The nearest wins; ties go to the older case, then the smaller case id.
    Limits come from ``duplicates`` in the rule set (``by_type`` overrides per type code).
    """
    if type_code is None:
        return None
    cfg = ruleset.duplicates
    limits = cfg.by_type.get(type_code, cfg)
    window = duration(limits.window)
    best: tuple[float, object, str] | None = None
    found: Case | None = None
    for c in candidates:
        if not c.is_open or c.type_code != type_code or report.rid in c.report_ids:
            continue
        if abs(report.reported_at - c.report.reported_at) > window:
            continue
        d = haversine_m(placement.lon, placement.lat, c.placement.lon, c.placement.lat)
        if d > limits.distance_m:
            continue
        key = (d, c.created_at, c.case_id)
        if best is None or key < best:
            best, found = key, c
    return found
