"""grid report: figures of the fixture event log (tests/fixtures/events/district.jsonl, made by
make_events.py) against values counted by hand from the scenario table in that script."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from grid.cli import main
from grid.report import evaluate, period, read_jsonl, render

LOG = Path(__file__).parent.parent / "fixtures" / "events" / "district.jsonl"
MARCH = (date(2026, 3, 1), date(2026, 3, 31))


@pytest.fixture(scope="module")
def events() -> list[dict]:
    with LOG.open("rb") as f:
        return list(read_jsonl(f))


def test_fixture_log_has_the_designed_cases(events):
    cases = {e["data"]["report"]["description"] for e in events if e["type"] == "reported"}
    assert cases == {f"fixture {n}" for n in
                     ("A1", "A2", "A3", "A4", "B1", "B2", "B3", "B4", "C1", "D1", "E1")}
    ids = [e["event_id"] for e in events]
    assert len(ids) - len(set(ids)) == 1  # one redelivered event


def test_department_figures_match_hand_counts(events):
    ev = evaluate(events, "310110", *MARCH)
    # sanitation cohort: A1 A2 A3 A4 E1 (D1 is another district)
    s = ev.departments["sanitation"]
    assert (s.dispatched, s.closed, s.closed_on_time, s.disposed) == (5, 3, 2, 4)
    assert (s.reworked, s.extended, s.open, s.overdue) == (1, 1, 2, 1)
    assert s.closure_rate == 0.6  # 3 / 5
    assert s.on_time_rate == round(2 / 3, 4)
    assert s.rework_rate == 0.25  # A3 / (A1 A2 A3 E1)
    assert s.extension_rate == 0.2  # A4 / 5
    # roads cohort: B1 B2 (B3 before, B4 after the period)
    r = ev.departments["roads"]
    assert (r.dispatched, r.closed, r.closed_on_time, r.disposed) == (2, 1, 1, 1)
    assert (r.reworked, r.extended, r.open, r.overdue) == (0, 0, 1, 0)
    assert (r.closure_rate, r.on_time_rate, r.rework_rate, r.extension_rate) == (
        0.5, 1.0, 0.0, 0.0)
    assert set(ev.departments) == {"sanitation", "roads"}  # C1 self-closed: no dispatch
    t = ev.total
    assert (t.dispatched, t.closed, t.closed_on_time, t.open, t.overdue) == (7, 4, 3, 3, 1)
    assert t.closure_rate == round(4 / 7, 4)


def test_street_figures_match_hand_counts(events):
    ev = evaluate(events, "310110", *MARCH)
    a = ev.streets["310110001"]  # A1 A2 B1 E1
    assert (a.dispatched, a.closed, a.closed_on_time, a.open, a.overdue) == (4, 3, 2, 1, 0)
    assert a.on_time_rate == round(2 / 3, 4)
    b = ev.streets["310110002"]  # A3 A4 B2
    assert (b.dispatched, b.closed, b.reworked, b.extended, b.open, b.overdue) == (
        3, 1, 1, 1, 2, 1)
    assert b.rework_rate == 1.0  # A3 is the only disposed case and it was reworked
    assert set(ev.streets) == {"310110001", "310110002"}


def test_other_district_and_other_period(events):
    d = evaluate(events, "310105", *MARCH)
    assert d.departments["sanitation"].dispatched == 1
    assert d.departments["sanitation"].closure_rate == 1.0
    april = evaluate(events, "310110", date(2026, 4, 1), date(2026, 4, 30))
    assert april.departments["roads"].dispatched == 1  # B4
    assert "sanitation" not in april.departments
    feb = evaluate(events, "310110", date(2026, 2, 1), date(2026, 2, 28))
    # B3 as of 28 Feb: disposed, not yet closed (closed 1 March)
    assert (feb.total.dispatched, feb.total.closed, feb.total.open) == (1, 0, 1)


def test_figures_as_of_period_end_ignore_later_events(events):
    # E1 closes on 2 April: open in the March report, closed in a report to 2 April
    march = evaluate(events, "310110", *MARCH)
    longer = evaluate(events, "310110", date(2026, 3, 1), date(2026, 4, 2))
    assert march.departments["sanitation"].closed == 3
    assert longer.departments["sanitation"].closed == 4


def test_period_is_inclusive_shanghai_days():
    start, end = period(date(2026, 3, 1), date(2026, 3, 31))
    assert start.isoformat() == "2026-03-01T00:00:00+08:00"
    assert end.isoformat() == "2026-04-01T00:00:00+08:00"
    with pytest.raises(ValueError):
        period(date(2026, 3, 2), date(2026, 3, 1))


def test_cli_csv_and_json():
    run = CliRunner().invoke(main, ["report", "--district", "310110", "--from", "2026-03-01",
                                    "--to", "2026-03-31", "--events", str(LOG),
                                    "--format", "csv"])
    assert run.exit_code == 0, run.output
    rows = {(r["scope"], r["key"]): r for r in csv.DictReader(io.StringIO(run.output))}
    assert rows[("department", "sanitation")]["closure_rate"] == "0.6"
    assert rows[("district", "310110")]["dispatched"] == "7"
    run = CliRunner().invoke(main, ["report", "--district", "310110", "--from", "2026-03-01",
                                    "--to", "2026-03-31", "--events", str(LOG),
                                    "--format", "json"])
    data = json.loads(run.output)
    assert {d["key"]: d["extension_rate"] for d in data["departments"]} == {
        "roads": 0.0, "sanitation": 0.2}


def test_cli_table_and_errors(tmp_path):
    run = CliRunner().invoke(main, ["report", "--district", "310110", "--from", "2026-03-01",
                                    "--to", "2026-03-31", "--events", str(LOG)])
    assert run.exit_code == 0
    assert "sanitation" in run.output and "60.0%" in run.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"event_id": "x"\n')
    run = CliRunner().invoke(main, ["report", "--district", "310110", "--from", "2026-03-01",
                                    "--to", "2026-03-31", "--events", str(bad)])
    assert run.exit_code != 0 and "line 1" in run.output
    run = CliRunner().invoke(main, ["report", "--district", "310110", "--from", "2026-03-31",
                                    "--to", "2026-03-01", "--events", str(LOG)])
    assert run.exit_code != 0


def test_render_rejects_unknown_format(events):
    with pytest.raises(ValueError):
        render(evaluate(events, "310110", *MARCH), "xml")
