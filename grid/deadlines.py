"""Deadline arithmetic in Asia/Shanghai: durations, the ``24h`` and ``working`` calendars.

* ``24h``: natural time, 24/7 operation (seed 001/004: repairs accepted round the clock).
* ``working``: only working hours on working days count (configurable hours, weekends off,
  public holidays off, make-up working days 调休 on). Data in ``grid/data/calendar.yaml``.

Durations are ``"30m"``, ``"2h"``, ``"3d"``. In the working calendar a day means one
*working day* (the length of the configured working hours), hours and minutes mean working
hours and minutes: ``"3d"`` = 3 × 8 working hours with 09:00–17:00, ``"25h"`` = 25 working
hours. :func:`parse_duration` returns a :class:`Duration` (a timedelta that remembers its
unit) for that; a plain timedelta counts its ``.days`` as working days and the rest as
working time (``timedelta(minutes=4320)`` = 3 working days).

All functions take timezone-aware datetimes (any offset) and return Asia/Shanghai times.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR_FILE = Path(__file__).parent / "data" / "calendar.yaml"
MAX_DURATION = timedelta(days=366)
_SEARCH_DAYS = 3660  # never scan more than ~10 years for working time
_DURATION_RE = re.compile(r"^(\d{1,6})([mhd])$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_PERIOD_RE = re.compile(r"^(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})$")

CalendarKind = Literal["24h", "working"]

# Who works on each stage of a case, and so in which calendar its limit runs. The command
# center files and dispatches around the clock (seed 001: grid management extended from 8 to
# 24 hours) and supervisors verify around the clock too; only the department's disposal
# follows the department's working calendar. A kiosk reported on Friday at 18:00 is filed and
# dispatched that evening; the department's working days start counting on Monday.
STAGE_OWNERS = {"file": "command_center", "dispatch": "command_center",
                "dispose": "department", "verify": "supervisor"}
DEPARTMENT_STAGES = frozenset(s for s, who in STAGE_OWNERS.items() if who == "department")


def stage_calendar(stage: str, calendar: str) -> str:
    """The calendar the limit of ``stage`` runs in when the case's (disposal) calendar is
    ``calendar``: ``"24h"`` for every stage but the department's disposal."""
    return calendar if stage in DEPARTMENT_STAGES else "24h"


# --- durations -----------------------------------------------------------------------------

class Duration(timedelta):
    """A timedelta written in one unit (``m``, ``h`` or ``d``): in the working calendar
    ``"36h"`` is 36 working hours, while a plain ``timedelta(hours=36)`` is one working day
    and 12 working hours. Arithmetic on it gives plain timedeltas."""

    unit: str

    def __new__(cls, value: timedelta, unit: str) -> Duration:
        self = super().__new__(cls, value.days, value.seconds, value.microseconds)
        self.unit = unit
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return Duration, (timedelta(self.days, self.seconds, self.microseconds), self.unit)


def parse_duration(text: str) -> Duration:
    """``"30m"`` / ``"2h"`` / ``"3d"`` -> :class:`Duration` (a timedelta); anything else
    raises ``ValueError``."""
    m = _DURATION_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(
            f"duration {text!r}: write a whole number and one unit, m (minutes), "
            "h (hours) or d (days), e.g. '30m', '2h', '3d'")
    value = int(m.group(1)) * _UNITS[m.group(2)]
    if value > MAX_DURATION:
        raise ValueError(f"duration {text!r} is longer than {MAX_DURATION.days}d")
    return Duration(value, m.group(2))


def format_duration(value: timedelta) -> str:
    """The shortest ``"<n>d|h|m"`` spelling of ``value`` (whole minutes, not negative)."""
    if value < timedelta(0) or value % timedelta(minutes=1):
        raise ValueError(f"{value!r}: only whole, non-negative minutes can be written as a "
                         "duration")
    units = ("h", "m") if isinstance(value, Duration) and value.unit != "d" else ("d", "h", "m")
    for unit in units:
        if value % _UNITS[unit] == timedelta(0):
            return f"{value // _UNITS[unit]}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover


# --- calendars -----------------------------------------------------------------------------

def _aware(dt: datetime, what: str = "time") -> datetime:
    if not isinstance(dt, datetime):
        raise TypeError(f"{what}: expected a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what} {dt.isoformat()} is naive: give it a UTC offset")
    return dt


@dataclass(frozen=True)
class Calendar:
    """A deadline calendar. ``kind="24h"`` counts natural time; ``kind="working"`` counts the
    ``hours`` (minutes from midnight, ``(start, end)``) of each working day."""

    kind: CalendarKind = "24h"
    tz: ZoneInfo = SHANGHAI
    hours: tuple[tuple[int, int], ...] = ((9 * 60, 17 * 60),)
    weekend: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()  # make-up working days (调休上班)
    years: frozenset[int] = field(default=frozenset())  # years the holiday data covers
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("24h", "working"):
            raise ValueError(f"calendar kind {self.kind!r}: use '24h' or 'working'")
        if self.kind == "working":
            if not self.hours:
                raise ValueError("a working calendar needs at least one period of hours")
            last = 0
            for start, end in self.hours:
                if not (last <= start < end <= 24 * 60):
                    raise ValueError(
                        f"working hours {_hm(start)}-{_hm(end)}: periods must be within "
                        "00:00-24:00, in order, not overlapping, and end after they start")
                last = end
            if len(self.weekend) >= 7:
                raise ValueError("a working calendar needs at least one working weekday")

    # -- days and periods

    @property
    def day_length(self) -> timedelta:
        """Working time of one working day (24h for the 24h calendar)."""
        if self.kind == "24h":
            return timedelta(days=1)
        return timedelta(minutes=sum(end - start for start, end in self.hours))

    def covers(self, day: date) -> bool:
        """True when the holiday data covers ``day``'s year (24h: always)."""
        return self.kind == "24h" or day.year in self.years

    def is_working_day(self, day: date) -> bool:
        if self.kind == "24h" or day in self.workdays:
            return True
        return day.weekday() not in self.weekend and day not in self.holidays

    def periods(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working periods of ``day`` as aware UTC datetimes (empty on days off)."""
        if not self.is_working_day(day):
            return []
        midnight = datetime.combine(day, time(0), tzinfo=self.tz)
        return [((midnight + timedelta(minutes=s)).astimezone(UTC),
                 (midnight + timedelta(minutes=e)).astimezone(UTC)) for s, e in self.hours]

    def is_working_time(self, at: datetime) -> bool:
        """True when ``at`` lies inside a working period (start inclusive, end exclusive)."""
        at = _aware(at).astimezone(UTC)
        if self.kind == "24h":
            return True
        return any(s <= at < e for s, e in self.periods(at.astimezone(self.tz).date()))

    def next_working_moment(self, at: datetime) -> datetime:
        """``at`` itself in working time, else the start of the next working period."""
        at = _aware(at).astimezone(UTC)
        if self.kind == "24h":
            return at.astimezone(self.tz)
        for s, e in self._periods_from(at):
            if at < e:
                return max(s, at).astimezone(self.tz)
        raise ValueError("no working time within ten years")  # pragma: no cover

    def _periods_from(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        day = at.astimezone(self.tz).date() - timedelta(days=1)  # offsets near midnight
        for _ in range(_SEARCH_DAYS):
            yield from self.periods(day)
            day += timedelta(days=1)

    # -- arithmetic

    def working_amount(self, duration: timedelta) -> timedelta:
        """How much calendar time ``duration`` asks for: days are working days here, unless
        it is a :class:`Duration` written in hours or minutes."""
        if self.kind == "24h" or (isinstance(duration, Duration) and duration.unit != "d"):
            return timedelta(duration.days, duration.seconds, duration.microseconds)
        return duration.days * self.day_length + timedelta(
            seconds=duration.seconds, microseconds=duration.microseconds)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """``start`` + ``duration`` of calendar time (see :func:`due`)."""
        start = _aware(start, "start").astimezone(UTC)
        if duration < timedelta(0):
            raise ValueError(f"duration {duration} is negative")
        if self.kind == "24h":
            return (start + duration).astimezone(self.tz)
        left = self.working_amount(duration)
        if not left:
            return start.astimezone(self.tz)
        # Reports of one batch share their start time: remember the last answers.
        memo: dict[tuple[datetime, timedelta], datetime] = self.__dict__.setdefault("_memo", {})
        hit = memo.get((start, left))
        if hit is None:
            if len(memo) > 4096:
                memo.clear()
            hit = memo[(start, left)] = self._add_working(start, left)
        return hit

    def _add_working(self, start: datetime, left: timedelta) -> datetime:
        for s, e in self._periods_from(start):
            if e <= start:
                continue
            cur = max(s, start)
            if left <= e - cur:
                return (cur + left).astimezone(self.tz)
            left -= e - cur
        raise ValueError("no working time within ten years")  # pragma: no cover

    def between(self, a: datetime, b: datetime) -> timedelta:
        """Calendar time from ``a`` to ``b``; negative when ``b`` is before ``a``."""
        a = _aware(a).astimezone(UTC)
        b = _aware(b).astimezone(UTC)
        if self.kind == "24h":
            return b - a
        if b < a:
            return -self.between(b, a)
        total = timedelta(0)
        day = a.astimezone(self.tz).date() - timedelta(days=1)
        last = b.astimezone(self.tz).date() + timedelta(days=1)
        while day <= last:
            for s, e in self.periods(day):
                lo, hi = max(s, a), min(e, b)
                if lo < hi:
                    total += hi - lo
            day += timedelta(days=1)
        return total


def _hm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# --- loading -------------------------------------------------------------------------------

def _date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def _period(text: str, where: str) -> tuple[int, int]:
    m = _PERIOD_RE.match(str(text).strip())
    if not m:
        raise ValueError(f"{where}: {text!r} is not a period like '09:00-17:00'")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if m1 > 59 or m2 > 59 or h1 > 23 or (h2, m2) > (24, 0):
        raise ValueError(f"{where}: {text!r} is not a valid time of day")
    return h1 * 60 + m1, h2 * 60 + m2


def _year_days(spec: Mapping[str, Any], where: str) -> tuple[set[date], set[date]]:
    holidays: set[date] = set()
    for i, h in enumerate(spec.get("holidays") or []):
        w = f"{where}.holidays[{i}]"
        if not isinstance(h, Mapping):
            raise ValueError(f"{w}: expected {{name, from, to}} or {{name, date}}")
        first = _date(h.get("from", h.get("date")), w)
        last = _date(h.get("to", h.get("date", first)), w)
        if last < first:
            raise ValueError(f"{w}: 'to' {last} is before 'from' {first}")
        holidays.update(first + timedelta(days=n) for n in range((last - first).days + 1))
    workdays = {
        _date(d.get("date") if isinstance(d, Mapping) else d, f"{where}.workdays[{i}]")
        for i, d in enumerate(spec.get("workdays") or [])
    }
    return holidays, workdays


def calendar_from_dict(
    spec: Mapping[str, Any], kind: CalendarKind = "working", *,
    base: Calendar | None = None, where: str = "calendar",
) -> Calendar:
    """Build a calendar from the ``calendar.yaml`` shape, optionally on top of ``base``."""
    cal = base or Calendar(kind=kind)
    changes: dict[str, Any] = {"kind": kind, "name": spec.get("name", cal.name) or where}
    if "timezone" in spec:
        changes["tz"] = ZoneInfo(str(spec["timezone"]))
    if "hours" in spec:
        changes["hours"] = tuple(_period(p, f"{where}.hours") for p in spec["hours"] or [])
    if "weekend" in spec:
        try:
            changes["weekend"] = frozenset(_WEEKDAYS[str(d).lower()[:3]]
                                           for d in spec["weekend"] or [])
        except KeyError as e:
            raise ValueError(f"{where}.weekend: unknown day {e.args[0]!r} (mon..sun)") from None
    holidays, workdays, years = set(cal.holidays), set(cal.workdays), set(cal.years)
    for year, ys in (spec.get("years") or {}).items():
        w = f"{where}.years.{year}"
        if not isinstance(ys, Mapping):
            raise ValueError(f"{w}: expected a mapping with holidays and workdays")
        hs, ws = _year_days(ys, w)
        if ys.get("replace"):
            holidays = {d for d in holidays if d.year != int(year)}
            workdays = {d for d in workdays if d.year != int(year)}
        holidays |= hs
        workdays |= ws
        years.add(int(year))
    both = holidays & workdays
    if both:
        raise ValueError(f"{where}: {sorted(both)[0]} is both a holiday and a make-up workday")
    changes.update(holidays=frozenset(holidays), workdays=frozenset(workdays),
                   years=frozenset(years))
    return replace(cal, **changes)


def load_calendar(
    kind: CalendarKind = "working", path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Calendar:
    """The calendar of ``calendar.yaml``, then a district's file ``path``, then
    ``overrides`` (same shape) on top. Errors name the file and the entry."""
    cal = calendar_from_dict(_read(CALENDAR_FILE), kind, where=CALENDAR_FILE.name)
    if path is not None:
        cal = calendar_from_dict(_read(Path(path)), kind, base=cal, where=Path(path).name)
    if overrides:
        cal = calendar_from_dict(overrides, kind, base=cal, where="overrides")
    return cal


def _read(path: Path) -> Mapping[str, Any]:
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


@cache
def default_calendar(kind: str = "working") -> Calendar:
    """The built-in calendar of this kind (``"24h"`` or ``"working"``), cached."""
    if kind not in ("24h", "working"):
        raise ValueError(f"calendar kind {kind!r}: use '24h' or 'working'")
    return load_calendar(kind)  # type: ignore[arg-type]


def _calendar(calendar: Calendar | str) -> Calendar:
    return default_calendar(calendar) if isinstance(calendar, str) else calendar


# --- the deadline API ----------------------------------------------------------------------

def due(start: datetime, duration: timedelta, calendar: Calendar | str = "24h") -> datetime:
    """When a limit of ``duration`` started at ``start`` runs out (Asia/Shanghai).

    24h: ``start + duration``. Working: only working time counts, a start outside working
    hours counts from the next working moment, and a limit that is used up exactly at the
    end of a working period is due at that end (17:00), not the next morning."""
    return _calendar(calendar).add(start, duration)


def remaining(due: datetime, now: datetime, calendar: Calendar | str = "24h") -> timedelta:
    """Calendar time left until ``due`` (negative when overdue, in calendar time: a case
    overdue since Friday 17:00 is still 0 overdue on Sunday in the working calendar)."""
    return _calendar(calendar).between(now, due)


def is_overdue(due: datetime, now: datetime) -> bool:
    """True from the due moment on (like :meth:`grid.models.Case.overdue_stages`)."""
    return _aware(now, "now") >= _aware(due, "due")


def extend(due: datetime, extra: timedelta, calendar: Calendar | str = "24h") -> datetime:
    """An extension (延期): ``extra`` calendar time added to the old due time."""
    return _calendar(calendar).add(due, extra)


def elapsed_share(
    start: datetime, due: datetime, now: datetime, calendar: Calendar | str = "24h",
) -> float:
    """Share of the limit from ``start`` to ``due`` used at ``now``: 0 at the start, 1.0 at
    the due time, above 1 when overdue (for "warn at 80 %" and repeated supervision orders).
    It is at least 1.0 exactly when ``now >= due`` for deadlines made by :func:`due`."""
    cal = _calendar(calendar)
    total = cal.between(start, due)
    if total <= timedelta(0):
        return 1.0 if is_overdue(due, now) else 0.0
    return max(0.0, cal.between(start, now) / total)
