"""``grid report``: the evaluation figures (考核评价) of a district for a period."""

from __future__ import annotations

import asyncio
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


def _from_kafka(broker: str, idle: float) -> list[dict[str, Any]]:
    from streams import topics as T
    from streams.kafka_io import consume

    async def read() -> list[dict[str, Any]]:
        return [r.value async for r in consume(broker, T.CASE_EVENTS, idle=idle)
                if isinstance(r.value, dict)]

    return asyncio.run(read())


@click.command()
@click.option("--district", required=True, help="district code (6 digits), e.g. 310110")
@click.option("--from", "start", required=True, callback=_date, help="first day, YYYY-MM-DD")
@click.option("--to", "end", required=True, callback=_date, help="last day (inclusive)")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.option("--events", "events_file", type=click.Path(dir_okay=False, allow_dash=True),
              help="read case events from a JSON-lines file ('-' = stdin) instead of Kafka")
@click.option("--broker", envvar="GRID_BROKER", default="127.0.0.1:9092", show_default=True,
              help="Kafka bootstrap (GRID_BROKER) to read grid.case-events.v1 from")
@click.option("--idle", default=3.0, show_default=True,
              help="seconds without a new event that end reading the topic")
def report(district: str, start: date, end: date, fmt: str, events_file: str | None,
           broker: str, idle: float) -> None:
    """Per-department and per-street evaluation figures for a period, from the event log.

    Closure rate = closed / dispatched, on-time closure rate = closed on time / closed,
    rework rate = reworked / disposed, extension rate = extended / dispatched, over the
    cases first dispatched in the period (see docs/evaluation.md).
    """
    from grid.report import evaluate, read_jsonl, render
    from grid.taxonomy import load_taxonomy

    if end < start:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    if events_file:
        try:
            if events_file == "-":
                events = list(read_jsonl(sys.stdin.buffer))
            else:
                with open(events_file, "rb") as f:
                    events = list(read_jsonl(f))
        except (OSError, ValueError) as err:
            raise click.ClickException(f"{events_file}: {err}") from err
    else:
        events = _from_kafka(broker, idle)
    names = {k: d.name_zh for k, d in load_taxonomy().departments.items()}
    click.echo(render(evaluate(events, district, start, end), fmt, names))
