"""``grid report``: the evaluation figures (考核评价) of a district, or of the city's districts
side by side, for a period. An entry point: it reads the store and the environment
(``GRID_STORE_URL``, ``GRID_GEODATA``) and hands plain data to :mod:`grid.report`."""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import date
from typing import Any

import click


def _date(_ctx: Any, _param: Any, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from err


def _from_store(url: str | None, district: str | None, start: date, end: date) -> Any:
    from grid.report import city_evaluation_of, evaluation_of
    from store.db import connect, default_url, sqlite_path
    from store.reader import ReadStore

    url = url or default_url()
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise click.ClickException(
            f"no read store at {path}: start the engine (grid up) or point --store / "
            f"GRID_STORE_URL at one (e.g. postgresql+psycopg://grid@db:5432/grid)")
    engine = connect(url)
    try:
        rs = ReadStore(engine)
        if district is None:
            return city_evaluation_of(start, end, rs.district_evaluation)
        return evaluation_of(district, start, end, rs.evaluation)
    finally:
        engine.dispose()


@click.command()
@click.option("--district", help="district code (6 digits), e.g. 310110")
@click.option("--city", is_flag=True, help="every district side by side, ranked (instead of "
              "one district's departments and streets)")
@click.option("--from", "start", required=True, callback=_date, help="first day, YYYY-MM-DD")
@click.option("--to", "end", required=True, callback=_date, help="last day (inclusive)")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "html", "pdf"]),
              default="table", show_default=True,
              help="html/pdf: the monthly report with rankings, month-over-month change, "
              "hotspots, recurrences and trends (from the store; pdf needs chromium)")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="write to this file (required for pdf) instead of standard output")
@click.option("--recur-days", default=30, show_default=True, type=click.IntRange(1, 365),
              help="html/pdf: a problem back within this many days of a close recurred")
@click.option("--events", "events_file", type=click.Path(dir_okay=False, allow_dash=True),
              help="fold case events from a JSON-lines file ('-' = stdin) instead of reading "
              "the store")
@click.option("--store", "store_url", help="read store URL [default: GRID_STORE_URL, else the "
              "store of grid up: $GRID_HOME/data/store.db]")
def report(district: str | None, city: bool, start: date, end: date, fmt: str,
           output: str | None, recur_days: int, events_file: str | None,
           store_url: str | None) -> None:
    """Per-department and per-street evaluation figures for a period, from the read store
    (or a file of case events).

    Closure rate = closed / dispatched, on-time closure rate = closed on time / closed,
    rework rate = reworked / disposed, extension rate = extended / dispatched, over the
    cases first dispatched in the period (see docs/evaluation.md).
    """
    from grid.report import evaluate, read_jsonl, render
    from grid.taxonomy import load_taxonomy

    if end < start:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    if city == bool(district):
        raise click.UsageError("give --district CODE (one district) or --city (all districts)")
    if events_file:
        try:
            if events_file == "-":
                events = list(read_jsonl(sys.stdin.buffer))
            else:
                with open(events_file, "rb") as f:
                    events = list(read_jsonl(f))
        except (OSError, ValueError) as err:
            raise click.ClickException(f"{events_file}: {err}") from err
    names = {k: d.name_zh for k, d in load_taxonomy().departments.items()}
    with contextlib.suppress(OSError, ValueError):  # street names ($GRID_GEODATA or shipped)
        names.update({k: v for k, v in _places().items() if len(k) == 9})
    if city:
        from grid.report import city_evaluate, render_city

        ev = city_evaluate(events, start, end) if events_file else \
            _from_store(store_url, None, start, end)
        click.echo(render_city(ev, fmt, _district_names()))
        return
    if fmt in ("html", "pdf"):
        if events_file:
            raise click.UsageError("--format html/pdf reads the store (not --events)")
        _page(store_url, district, start, end, fmt, output, recur_days, names)
        return
    ev = evaluate(events, district, start, end) if events_file else \
        _from_store(store_url, district, start, end)
    click.echo(render(ev, fmt, names))


def _page(url: str | None, district: str, start: date, end: date, fmt: str,
          output: str | None, recur_days: int, names: dict[str, str]) -> None:
    """The monthly report as a page (html) or printed (pdf): streams.report_page."""
    from pathlib import Path

    from geodata.adjacency import cell_weights, district_cells, district_layer
    from grid.taxonomy import load_taxonomy
    from rules.ruleset import load_ruleset
    from store.analytics import monthly_report
    from store.db import connect, default_url, sqlite_path
    from streams.report_page import print_pdf, render_html

    if fmt == "pdf" and not output:
        raise click.UsageError("--format pdf needs --output FILE.pdf")
    url = url or default_url()
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise click.ClickException(f"no read store at {path}: start the engine (grid up) or "
                                   "point --store / GRID_STORE_URL at one")
    tax = load_taxonomy()
    names = {**names, **{k: t.name_zh for k, t in tax.types.items()},
             **{k: c.name_zh for k, c in tax.categories.items()}, **_district_names()}
    dup = load_ruleset().duplicates
    engine = connect(url)
    try:
        data = monthly_report(engine, district, start, end, names, cell_weights(district),
                              lambda t: dup.by_type.get(t, dup).distance_m, recur_days)
    finally:
        engine.dispose()
    page = render_html(data, district_cells(district), district_layer("streets", district))
    if fmt == "pdf":
        print_pdf(page, Path(output))  # type: ignore[arg-type]
        click.echo(f"{output}: the monthly report, one page per section", err=True)
    elif output:
        Path(output).write_text(page, encoding="utf-8")
    else:
        click.echo(page)


def _district_names() -> dict[str, str]:
    """District code -> name from the geodata ($GRID_GEODATA or the shipped set)."""
    try:
        return {k: v for k, v in _places().items() if len(k) == 6}
    except (OSError, ValueError):
        return {}


def _places() -> dict[str, str]:
    """Place code -> name from ``$GRID_GEODATA`` (or the shipped set)."""
    from grid.names import Names

    return Names.load(os.environ.get("GRID_GEODATA")).places
