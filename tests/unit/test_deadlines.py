"""Deadline arithmetic: durations, 24h and working calendars, holidays, 调休, time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grid.deadlines import (
    SHANGHAI,
    Calendar,
    default_calendar,
    due,
    elapsed_share,
    extend,
    format_duration,
    is_overdue,
    load_calendar,
    parse_duration,
    remaining,
)

W = default_calendar("working")
H24 = default_calendar("24h")


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


# --- durations ---------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)), ("3d", timedelta(days=3)),
    ("0m", timedelta(0)), ("90m", timedelta(minutes=90)), ("366d", timedelta(days=366)),
])
def test_parse_duration(text: str, value: timedelta) -> None:
    assert parse_duration(text) == value


@pytest.mark.parametrize("bad", [
    "", "3", "d", "3 d", " 3d", "3d ", "3D", "1.5h", "-2h", "2h30m", "3w", "1y", "2 hours",
    "P3D", "367d", "9999999d", None, 3,
])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "text"), [
    (timedelta(days=3), "3d"), (timedelta(hours=2), "2h"), (timedelta(minutes=30), "30m"),
    (timedelta(hours=25), "25h"), (timedelta(minutes=61), "61m"), (timedelta(0), "0d"),
])
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


@pytest.mark.parametrize("bad", [timedelta(seconds=30), timedelta(minutes=-5)])
def test_format_duration_rejects(bad: timedelta) -> None:
    with pytest.raises(ValueError):
        format_duration(bad)


@given(st.integers(min_value=0, max_value=366 * 24 * 60))
def test_duration_round_trip(minutes: int) -> None:
    value = timedelta(minutes=minutes)
    assert parse_duration(format_duration(value)) == value


# --- calendar data -------------------------------------------------------------------------

def test_calendar_file_covers_three_years() -> None:
    assert W.kind == "working" and W.tz == SHANGHAI
    assert W.day_length == timedelta(hours=8)
    assert {2025, 2026, 2027} <= W.years
    assert W.covers(date(2026, 5, 1)) and not W.covers(date(2031, 5, 1))


@pytest.mark.parametrize(("day", "working"), [
    (date(2026, 10, 1), False),  # National Day
    (date(2026, 10, 7), False),  # last day of the National Day week (a Wednesday)
    (date(2026, 10, 8), True),   # Thursday after
    (date(2026, 10, 10), True),  # make-up Saturday
    (date(2026, 9, 20), True),   # make-up Sunday
    (date(2026, 2, 17), False),  # Spring Festival (正月初一)
    (date(2026, 2, 14), True),   # make-up Saturday before Spring Festival
    (date(2026, 2, 28), True),   # make-up Saturday after
    (date(2026, 1, 4), True),    # make-up Sunday after New Year
    (date(2025, 1, 28), False),  # 2025 除夕
    (date(2025, 2, 8), True),    # 2025 make-up Saturday
    (date(2025, 10, 8), False),  # 2025 National Day + Mid-Autumn, 8 days
    (date(2026, 5, 2), False),   # ordinary Saturday inside Labour Day
    (date(2026, 3, 7), False),   # ordinary Saturday
    (date(2026, 3, 9), True),    # ordinary Monday
    (date(2027, 2, 8), False),   # projected 2027 Spring Festival
])
def test_working_days(day: date, working: bool) -> None:
    assert W.is_working_day(day) is working
    assert H24.is_working_day(day)


# --- 24h calendar --------------------------------------------------------------------------

def test_seed_004_urgent_repair_on_site_within_two_hours() -> None:
    # a report at 23:10 on a Saturday night of the National Day week: 24/7, crosses midnight
    start = sh(2026, 10, 3, 23, 10)
    assert due(start, parse_duration("2h"), H24) == sh(2026, 10, 4, 1, 10)


def test_seed_004_ordinary_repair_within_three_days() -> None:
    start = sh(2026, 3, 6, 16, 0)  # Friday afternoon
    assert due(start, parse_duration("3d"), H24) == sh(2026, 3, 9, 16, 0)  # natural days
    assert due(start, parse_duration("3d"), W) == sh(2026, 3, 11, 16, 0)  # working days


def test_24h_converts_other_offsets_to_shanghai() -> None:
    start = datetime(2026, 3, 6, 23, 30, tzinfo=UTC)  # = Saturday 07:30 in Shanghai
    result = due(start, timedelta(hours=2), "24h")
    assert result == sh(2026, 3, 7, 9, 30)
    assert result.tzinfo == SHANGHAI and result.utcoffset() == timedelta(hours=8)


def test_naive_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="naive"):
        due(datetime(2026, 3, 6, 9, 0), timedelta(hours=1), W)


def test_negative_duration_is_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        due(sh(2026, 3, 6, 9), timedelta(hours=-1), W)


# --- working calendar ----------------------------------------------------------------------

@pytest.mark.parametrize(("start", "limit", "expected"), [
    # inside one day
    (sh(2026, 3, 9, 10, 0), "2h", sh(2026, 3, 9, 12, 0)),
    # used up exactly at closing time: due 17:00, not next morning
    (sh(2026, 3, 9, 15, 0), "2h", sh(2026, 3, 9, 17, 0)),
    # overnight carry
    (sh(2026, 3, 9, 16, 0), "2h", sh(2026, 3, 10, 10, 0)),
    # crossing a weekend: Friday 16:00 + 2h -> Monday 10:00
    (sh(2026, 3, 6, 16, 0), "2h", sh(2026, 3, 9, 10, 0)),
    # start outside hours: before opening, after closing, at midnight, on a Sunday
    (sh(2026, 3, 9, 6, 30), "30m", sh(2026, 3, 9, 9, 30)),
    (sh(2026, 3, 9, 19, 0), "1h", sh(2026, 3, 10, 10, 0)),
    (sh(2026, 3, 10, 0, 0), "1h", sh(2026, 3, 10, 10, 0)),
    (sh(2026, 3, 8, 12, 0), "1d", sh(2026, 3, 9, 17, 0)),
    # 1d from closing time is the next day's closing time
    (sh(2026, 3, 9, 17, 0), "1d", sh(2026, 3, 10, 17, 0)),
    # 2026 National Day week (Oct 1-7) plus the make-up Saturday Oct 10
    (sh(2026, 9, 30, 15, 0), "3d", sh(2026, 10, 10, 15, 0)),
    (sh(2026, 9, 30, 16, 0), "2h", sh(2026, 10, 8, 10, 0)),
    # make-up Sunday Sep 20 before National Day counts
    (sh(2026, 9, 18, 16, 0), "2h", sh(2026, 9, 20, 10, 0)),
    # Spring Festival 2026: Friday Feb 13 -> make-up Saturday Feb 14 -> after the break Feb 24
    (sh(2026, 2, 13, 16, 0), "2h", sh(2026, 2, 14, 10, 0)),
    (sh(2026, 2, 14, 16, 0), "2h", sh(2026, 2, 24, 10, 0)),
    # the 8-day 2025 National Day + Mid-Autumn break, ending with make-up Saturday Oct 11
    (sh(2025, 9, 30, 9, 0), "2d", sh(2025, 10, 9, 17, 0)),
    (sh(2025, 10, 10, 9, 0), "2d", sh(2025, 10, 11, 17, 0)),
    # zero duration: due at the start
    (sh(2026, 3, 8, 12, 0), "0m", sh(2026, 3, 8, 12, 0)),
])
def test_working_due(start: datetime, limit: str, expected: datetime) -> None:
    assert due(start, parse_duration(limit), W) == expected


def test_working_utc_input_uses_shanghai_hours() -> None:
    # 01:00 UTC on a Monday is 09:00 in Shanghai: working time starts at once
    start = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)
    assert due(start, timedelta(hours=1), W) == sh(2026, 3, 9, 10, 0)
    # 23:00 UTC Sunday = 07:00 Monday in Shanghai; -05:00 offsets work as well
    assert due(datetime(2026, 3, 8, 23, 0, tzinfo=UTC), timedelta(hours=1), W) == sh(
        2026, 3, 9, 10, 0)
    ny = timezone(timedelta(hours=-5))
    assert due(datetime(2026, 3, 8, 20, 0, tzinfo=ny), timedelta(hours=1), W) == sh(
        2026, 3, 9, 10, 0)


def test_written_hours_are_working_hours_plain_days_are_working_days() -> None:
    start = sh(2026, 3, 9, 9, 0)  # Monday
    assert due(start, parse_duration("1d"), W) == sh(2026, 3, 9, 17, 0)
    assert due(start, parse_duration("24h"), W) == sh(2026, 3, 11, 17, 0)  # 24 working hours
    assert due(start, parse_duration("1440m"), W) == sh(2026, 3, 11, 17, 0)
    # a plain timedelta (e.g. extension minutes) counts whole days as working days
    assert due(start, timedelta(minutes=4320), W) == due(start, parse_duration("3d"), W)
    assert due(start, timedelta(days=1, hours=2), W) == sh(2026, 3, 10, 11, 0)
    # in the 24h calendar the spelling does not matter
    assert due(start, parse_duration("24h"), H24) == due(start, parse_duration("1d"), H24)


def test_duration_pickles_and_formats_in_its_unit() -> None:
    import pickle

    d = parse_duration("36h")
    assert pickle.loads(pickle.dumps(d)).unit == "h" and pickle.loads(pickle.dumps(d)) == d
    assert format_duration(d) == "36h" and format_duration(parse_duration("48h")) == "48h"
    assert format_duration(timedelta(hours=48)) == "2d"
    assert type(d + timedelta(0)) is timedelta


def test_hours_and_days_in_working_calendar() -> None:
    start = sh(2026, 3, 9, 9, 0)
    assert due(start, parse_duration("10h"), W) == sh(2026, 3, 10, 11, 0)
    assert due(start, parse_duration("1d"), W) < due(start, parse_duration("10h"), W)
    assert W.working_amount(parse_duration("36h")) == timedelta(hours=36)
    assert W.working_amount(timedelta(hours=36)) == timedelta(hours=20)  # 1 day + 12h


def test_lunch_break_override() -> None:
    cal = load_calendar("working", overrides={"hours": ["09:00-11:30", "13:30-17:30"]})
    assert cal.day_length == timedelta(hours=6, minutes=30)
    assert due(sh(2026, 3, 9, 11, 0), timedelta(hours=1), cal) == sh(2026, 3, 9, 14, 0)
    assert not cal.is_working_time(sh(2026, 3, 9, 12, 0))
    assert cal.holidays == W.holidays  # the holiday list is kept


def test_district_file_adds_holidays_and_workdays(tmp_path) -> None:
    path = tmp_path / "district.yaml"
    path.write_text(
        "name: 浦东新区\n"
        "hours: ['08:30-16:30']\n"
        "years:\n"
        "  2026:\n"
        "    holidays: [{name: district event, from: 2026-03-10, to: 2026-03-11}]\n"
        "    workdays: [{date: 2026-03-14, name: swap}]\n",
        encoding="utf-8")
    cal = load_calendar("working", path=path)
    assert cal.name == "浦东新区"
    assert not cal.is_working_day(date(2026, 3, 10))
    assert cal.is_working_day(date(2026, 3, 14))  # a Saturday
    assert not cal.is_working_day(date(2026, 10, 1))  # national holidays still there
    # Monday 16:00-16:30, then the district holiday, then Thursday from 08:30
    assert due(sh(2026, 3, 9, 16, 0), timedelta(hours=1), cal) == sh(2026, 3, 12, 9, 0)


def test_year_replace_drops_projected_dates() -> None:
    cal = load_calendar("working", overrides={"years": {2027: {
        "replace": True, "holidays": [{"name": "x", "date": "2027-02-15"}]}}})
    assert cal.is_working_day(date(2027, 2, 8))  # projected holiday gone
    assert not cal.is_working_day(date(2027, 2, 15))
    assert not cal.is_working_day(date(2026, 10, 1))  # other years untouched


@pytest.mark.parametrize(("overrides", "message"), [
    ({"hours": ["17:00-09:00"]}, "end after"),
    ({"hours": ["09:00-12:00", "11:00-17:00"]}, "overlapping"),
    ({"hours": ["9-17"]}, "period like"),
    ({"hours": ["09:00-25:00"]}, "time of day"),
    ({"hours": []}, "at least one period"),
    ({"weekend": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}, "working weekday"),
    ({"weekend": ["caturday"]}, "unknown day"),
    ({"years": {2026: {"workdays": ["2026-10-01"]}}}, "both a holiday"),
    ({"years": {2026: {"holidays": [{"from": "2026-03-05", "to": "2026-03-01"}]}}},
     "before 'from'"),
    ({"years": {2026: {"holidays": [{"date": "2026-02-30"}]}}}, "not a date"),
])
def test_bad_calendar_config(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_calendar("working", overrides=overrides)


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind"):
        default_calendar("weekly")


# --- remaining, overdue, extension, share ------------------------------------------------

def test_remaining_and_overdue_24h() -> None:
    d = sh(2026, 10, 1, 12, 0)
    assert remaining(d, sh(2026, 10, 1, 10, 0), H24) == timedelta(hours=2)
    assert remaining(d, sh(2026, 10, 1, 13, 0), H24) == timedelta(hours=-1)
    assert not is_overdue(d, sh(2026, 10, 1, 11, 59))
    assert is_overdue(d, d)  # due at the due moment, like Case.overdue_stages
    assert is_overdue(d, datetime(2026, 10, 1, 4, 0, 1, tzinfo=UTC))


def test_remaining_working_skips_nights_and_holidays() -> None:
    d = sh(2026, 10, 8, 10, 0)  # due the Thursday after the National Day week
    assert remaining(d, sh(2026, 9, 30, 16, 0), W) == timedelta(hours=2)
    assert remaining(d, sh(2026, 10, 8, 12, 0), W) == timedelta(hours=-2)
    # overdue since Friday 17:00: over the weekend no more working time passes
    fri = sh(2026, 3, 6, 17, 0)
    assert remaining(fri, sh(2026, 3, 8, 12, 0), W) == timedelta(0)
    assert is_overdue(fri, sh(2026, 3, 8, 12, 0))
    assert remaining(fri, sh(2026, 3, 9, 10, 0), W) == timedelta(hours=-1)


def test_extend() -> None:
    old = sh(2026, 9, 30, 16, 0)
    assert extend(old, parse_duration("2d"), W) == sh(2026, 10, 9, 16, 0)
    assert extend(old, parse_duration("2d"), H24) == sh(2026, 10, 2, 16, 0)


def test_elapsed_share_for_warnings() -> None:
    start = sh(2026, 3, 6, 15, 0)  # Friday
    d = due(start, parse_duration("1d"), W)  # Monday 15:00
    assert d == sh(2026, 3, 9, 15, 0)
    assert elapsed_share(start, d, start, W) == 0.0
    assert elapsed_share(start, d, sh(2026, 3, 7, 12, 0), W) == 0.25  # weekend: still 2h/8h
    assert elapsed_share(start, d, sh(2026, 3, 9, 13, 24), W) == pytest.approx(0.8)
    assert elapsed_share(start, d, d, W) == 1.0
    assert elapsed_share(start, d, sh(2026, 3, 10, 9, 0), W) == 1.25  # overdue: above 1
    assert elapsed_share(start, d, sh(2026, 3, 1, 9, 0), W) == 0.0  # before the start
    # 24h: 80 % of a 2-hour urgent repair limit after 96 minutes
    s = sh(2026, 10, 1, 23, 0)
    assert elapsed_share(s, due(s, timedelta(hours=2), H24), s + timedelta(minutes=96),
                         H24) == pytest.approx(0.8)


def test_zero_length_limit_share() -> None:
    t = sh(2026, 3, 7, 12, 0)
    assert elapsed_share(t, t, t - timedelta(minutes=1), W) == 0.0
    assert elapsed_share(t, t, t, W) == 1.0


def test_custom_calendar_object() -> None:
    cal = Calendar(kind="working", hours=((0, 24 * 60),), weekend=frozenset())
    start = sh(2026, 10, 1, 20, 0)
    assert due(start, timedelta(hours=5), cal) == sh(2026, 10, 2, 1, 0)
    assert due(start, timedelta(days=1), cal) == due(start, timedelta(days=1), H24)


# --- properties ----------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2024, 12, 1), max_value=datetime(2028, 1, 31),
                        timezones=st.sampled_from([SHANGHAI, UTC, timezone(timedelta(hours=-7))]))
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)).map(
    lambda d: d - d % timedelta(minutes=1))


@settings(max_examples=200, deadline=None)
@given(instants, durations)
def test_24h_due_is_start_plus_duration(start: datetime, limit: timedelta) -> None:
    result = due(start, limit, H24)
    assert result == start + limit and result.tzinfo == SHANGHAI


@settings(max_examples=200, deadline=None)
@given(instants, durations, durations)
def test_working_due_is_monotone_and_consistent(
    start: datetime, a: timedelta, b: timedelta,
) -> None:
    # monotone in the working time asked for (days are working days, hours working hours,
    # so '10h' asks for more than '1d' here; see test_hours_and_days_in_working_calendar)
    short, long = sorted((a, b), key=W.working_amount)
    d1, d2 = due(start, short, W), due(start, long, W)
    assert d1 <= d2 and d1 >= start and d1.tzinfo == SHANGHAI
    # the working time between start and due is exactly the working amount asked for
    assert W.between(start, d2) == W.working_amount(long)
    if long > timedelta(0):
        # the due time is never in the middle of a night or holiday
        assert W.is_working_time(d2 - timedelta(microseconds=1))
        # share >= 1 exactly from the due time on; remaining <= 0 exactly when overdue
        for now in (d2 - timedelta(minutes=1), d2, d2 + timedelta(hours=30)):
            assert (elapsed_share(start, d2, now, W) >= 1.0) is is_overdue(d2, now)
            assert (remaining(d2, now, W) <= timedelta(0)) is is_overdue(d2, now)


@settings(max_examples=100, deadline=None)
@given(instants, durations, durations)
def test_extend_adds_up(start: datetime, a: timedelta, b: timedelta) -> None:
    first = due(start, a, W)
    assert W.between(start, extend(first, b, W)) == W.working_amount(a) + W.working_amount(b)


@settings(max_examples=150, deadline=None)
@given(instants, st.sampled_from("mhd"), st.integers(0, 366), st.integers(0, 366))
def test_due_is_monotone_in_a_written_limit(start: datetime, unit: str, n: int, k: int) -> None:
    for cal in (W, H24):
        a, b = (parse_duration(f"{x}{unit}") for x in sorted((n, k)))
        assert due(start, a, cal) <= due(start, b, cal)
