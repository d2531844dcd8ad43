"""Weak links on a generated history with planted hot spots and recurrences
(tests/fixtures/analytics/history.py): the statistic finds exactly the planted cells, the
recurrence flags exactly the planted repeats, the trends equal a direct count."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone

import pytest

from geodata.adjacency import cell_weights
from grid import analytics as A
from grid.monthly import previous, ranked
from grid.projection import Projection
from rules.ruleset import load_ruleset
from tests.fixtures.analytics.history import DISTRICT, build, event_dicts

CST = timezone(timedelta(hours=8))
MARCH = (datetime(2026, 3, 1, tzinfo=CST), datetime(2026, 4, 1, tzinfo=CST))


@pytest.fixture(scope="module")
def history():
    return build()


@pytest.fixture(scope="module")
def facts(history) -> list[A.Fact]:
    p = Projection()
    p.apply_all(event_dicts(history))
    return [A.Fact(c.case_id, c.type_code, c.cell, c.street, c.department, c.category,
                   c.created_at, c.lon, c.lat, c.dispatched_at, c.closed_at, c.closed_on_time,
                   c.state, c.source, c.reporters[0] if c.reporters else None, c.self_closed)
            for c in p.cases.values()]


def radius(code: str) -> float:
    d = load_ruleset().duplicates
    return d.by_type.get(code, d).distance_m


def test_hotspots_are_the_planted_cells(history, facts):
    counts = Counter(f.cell for f in facts if MARCH[0] <= f.created_at < MARCH[1])
    hot, bound = A.hotspots(counts, cell_weights(DISTRICT))
    assert {h.cell for h in hot} == history.hot_cells
    assert len(history.hot_cells) == 29  # 3 cells with their queen neighbours
    assert 0 < bound < 0.05  # the FDR bound is stricter than alpha
    assert all(h.cases >= 5 and h.local_i > 0 for h in hot)


def test_no_hotspots_without_variation():
    assert A.hotspots({}, cell_weights(DISTRICT)) == ([], 0.0)


def test_recurrence_flags_exactly_the_planted_repeats(history, facts):
    got = A.recurrences(facts, 30, radius, since=MARCH[0])
    assert {r.case_id: (r.nth, r.earlier) for r in got} == history.recurred
    third = next(r for r in got if r.nth == 3)
    assert third.text == "第3次（30天内）recurred: 3rd time in 30 days"
    assert A.recurrence_counts(got, "department") == {"sanitation": 4}


def test_recurrence_window_and_radius(history, facts):
    names = history.names
    # 45+ days after the close is no recurrence within 30 days, but is within 60
    assert names["n4-b"] not in {r.case_id for r in A.recurrences(facts, 30, radius)}
    assert names["n4-b"] in {r.case_id for r in A.recurrences(facts, 60, radius)}
    # the repeat 15 m across a cell edge is only found with the duplicate radius
    assert names["r3-b"] not in {r.case_id for r in A.recurrences(facts, 30, lambda _: 10.0)}


def test_weekly_reports_equal_a_direct_count(facts):
    got = A.weekly(facts, "street", *MARCH)
    direct = Counter((f.street, A.week_of(f.created_at)) for f in facts
                     if MARCH[0] <= f.created_at < MARCH[1])
    assert {(s, w): x.reports for s, weeks in got.items() for w, x in weeks.items()
            if x.reports} == dict(direct)
    closed = Counter((f.department, A.week_of(f.dispatched_at)) for f in facts
                     if f.dispatched_at and MARCH[0] <= f.dispatched_at < MARCH[1]
                     and f.state == "closed" and f.closed_at < MARCH[1])  # as of the end
    by_dept = A.weekly(facts, "department", *MARCH)
    assert {(d, w): x.closed for d, weeks in by_dept.items() for w, x in weeks.items()
            if x.closed} == dict(closed)
    assert A.week_of(datetime(2026, 3, 1, 23, tzinfo=CST)) == date(2026, 2, 23)  # a Sunday


def test_heatmap_and_discovery_equal_a_direct_count(facts):
    grid = A.heatmap(facts, *MARCH)
    march = [f for f in facts if MARCH[0] <= f.created_at < MARCH[1]]
    assert sum(map(sum, grid)) == len(march)
    assert grid[0][8] == sum(1 for f in march if f.created_at.weekday() == 0
                             and f.created_at.hour == 8)
    sup = {d.reporter: d for d in A.discovery(facts, [("sup-1", 2.0), ("sup-1", 4.0)], *MARCH)}
    assert sup["sup-2"].reports == 29 * 5
    assert sup["sup-1"].to_dict()["mean_verify_hours"] == 3.0


def test_ranking_and_previous_period():
    now = [{"key": "a", "closure_rate": 0.5, "on_time_rate": 1.0, "rework_rate": None,
            "extension_rate": 0.0},
           {"key": "b", "closure_rate": 0.9, "on_time_rate": 0.5, "rework_rate": None,
            "extension_rate": 0.0},
           {"key": "c", "closure_rate": None, "on_time_rate": None, "rework_rate": None,
            "extension_rate": None}]
    before = [{"key": "a", "closure_rate": 0.25, "on_time_rate": 1.0, "rework_rate": None,
               "extension_rate": 0.1}]
    rows = ranked(now, before)
    assert [(r["key"], r["rank"]) for r in rows] == [("b", 1), ("a", 2), ("c", 3)]
    assert rows[1]["change_closure_rate"] == 0.25
    assert rows[1]["change_extension_rate"] == -0.1
    assert rows[0]["change_closure_rate"] is None
    assert previous(date(2026, 3, 1), date(2026, 3, 31)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert previous(date(2026, 3, 5), date(2026, 3, 11)) == (date(2026, 2, 26), date(2026, 3, 4))


def test_report_page_escapes_names_and_has_every_section(history, facts):
    from grid.monthly import SECTIONS, monthly
    from grid.report import evaluate
    from streams.report_page import TITLES, render_html

    events = event_dicts(history)
    now = evaluate(events, DISTRICT, date(2026, 3, 1), date(2026, 3, 31))
    before = evaluate(events, DISTRICT, date(2026, 2, 1), date(2026, 2, 28))
    counts = Counter(f.cell for f in facts if MARCH[0] <= f.created_at < MARCH[1])
    names = {"310110": "杨浦区", "sanitation": "环卫<script>x</script>"}
    data = monthly(now, before, facts, counts, cell_weights(DISTRICT), [], names, radius)
    page = render_html(data)
    assert [page.count(f'<section id="{s}">') for s in SECTIONS] == [1] * 6
    assert all(TITLES[s] in page for s in SECTIONS)
    assert "<script>x" not in page and "环卫&lt;script&gt;x&lt;/script&gt;" in page
    assert len(data["hotspots"]["hot"]) == 29 and len(data["recurrences"]["queue"]) == 4
    assert data["recurrences"]["queue"][0]["nth"] == 3  # most repeated first
    assert data["total_change"]["closure_rate"] == round(
        now.total.to_dict()["closure_rate"] - before.total.to_dict()["closure_rate"], 4)


def test_report_cli_refuses_pdf_without_output_and_html_from_events(tmp_path):
    from click.testing import CliRunner

    from streams.report_cli import report

    args = ["--district", DISTRICT, "--from", "2026-03-01", "--to", "2026-03-31"]
    got = CliRunner().invoke(report, [*args, "--format", "pdf", "--store",
                                      f"sqlite:///{tmp_path}/none.db"])
    assert got.exit_code == 2 and "--format pdf needs --output FILE.pdf" in got.output
    ev = tmp_path / "e.jsonl"
    ev.write_text("")
    got = CliRunner().invoke(report, [*args, "--format", "html", "--events", str(ev)])
    assert got.exit_code == 2 and "reads the store (not --events)" in got.output
