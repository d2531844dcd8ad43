"""Thin adapter to :mod:`grid.deadlines` (durations and the 24h/working calendars)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any

from grid.deadlines import Duration, default_calendar, due, elapsed_share, parse_duration


@cache
def calendar(kind: str) -> Any:
    return default_calendar(kind)


@cache
def duration(text: str) -> timedelta:
    return parse_duration(text)


def due_at(start: datetime, limit: str | timedelta, kind: str) -> datetime:
    """The time a limit (e.g. '2h', '3d') started at ``start`` runs out in calendar ``kind``."""
    span = duration(limit) if isinstance(limit, str) else limit
    return due(start, span, calendar(kind))


def share(start: datetime, deadline: datetime, now: datetime, kind: str) -> float:
    """Share of the limit from ``start`` to ``deadline`` used up at ``now`` (calendar time)."""
    return elapsed_share(start, deadline, now, calendar(kind))


def scaled(span: timedelta, factor: float, kind: str) -> timedelta:
    """``span`` × ``factor`` in calendar time: in the working calendar '3d' × 0.5 is 1.5
    working days (12 working hours with 8-hour days), not 36 hours."""
    if factor == 1:
        return span
    amount = calendar(kind).working_amount(span) * factor
    return Duration(timedelta(minutes=round(amount / timedelta(minutes=1))), "m")


@cache
def scaled_limit(text: str, factor: float, kind: str) -> timedelta:
    """The limit written ``text`` (e.g. '3d', no '+') × ``factor`` in calendar ``kind``
    (:func:`scaled`). Cached: a rule set holds a few dozen limits, and every decision
    scales each of its stages."""
    return scaled(duration(text), factor, kind)
