"""``grid route`` (decide one report without a broker) and ``grid rules check``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click


def _now(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an RFC 3339 time",
                                 param_hint="--now") from None
    if t.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset (e.g. +08:00)",
                                 param_hint="--now")
    return t


def _read_json(path: str, what: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as e:
        raise click.ClickException(f"{what} {path}: cannot read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise click.ClickException(f"{what} {path}: not valid JSON: {e}") from None


def _locator(path: str | None) -> Any:
    from geodata.locator import Locator
    from geodata.schema import LayerError

    try:
        return Locator.load(path)
    except (FileNotFoundError, LayerError) as e:
        raise click.ClickException(f"geodata: {e}") from None


def _load_rules(path: str | None) -> Any:
    from rules.ruleset import RuleSetError, load_ruleset

    try:
        return load_ruleset(path)
    except RuleSetError as e:
        raise click.ClickException(str(e)) from None


@click.command("route")
@click.option("--report", "report_path", required=True, help="Report JSON file ('-' = stdin).")
@click.option("--now", "now_text", default=None,
              help="Decision time, RFC 3339 with offset (default: the current time).")
@click.option("--rules", "rules_dir", default=None, help="Rule-set directory (default: shipped).")
@click.option("--geodata", default=None, help="Layer-set directory (default: shipped demo).")
@click.option("--placement", "placement_path", default=None,
              help="Placement JSON to use instead of locating the report (testing).")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json")
def route(report_path: str, now_text: str | None, rules_dir: str | None, geodata: str | None,
          placement_path: str | None, fmt: str) -> None:
    """Locate one report and print the routing decision with its explanation."""
    from pydantic import ValidationError

    from grid.models import Placement, Report
    from grid.service import Engine
    from grid.taxonomy import default_taxonomy

    now = _now(now_text)
    taxonomy = default_taxonomy()
    ruleset = _load_rules(rules_dir)
    try:
        report = Report.model_validate(_read_json(report_path, "report"),
                                       context={"taxonomy": taxonomy})
    except ValidationError as e:
        raise click.ClickException(f"report {report_path}: {e}") from None
    locator = None
    if placement_path:
        placement = Placement.model_validate(_read_json(placement_path, "placement"))
    else:
        from geodata.locator import OutsideCoverage

        locator = _locator(geodata)
        try:
            placement = locator.locate(report.location.lon, report.location.lat,
                                       report.location.crs)
        except OutsideCoverage as e:
            raise click.ClickException(str(e)) from None
    # the engine's own path (classify a description-only report, then decide): `grid route`
    # and the stream worker give the same decision for the same report
    located = Engine(taxonomy, locator, ruleset).decide(report, placement, now)
    d = located.decision
    out = {**d.model_dump(mode="json"), "classification": located.classification,
           "placement": placement.model_dump(mode="json")}
    if fmt == "json":
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    _echo_text(located)


def _echo_text(located: Any) -> None:
    """A located, decided report's decision as text lines (``grid route --format text``)."""
    d = located.decision
    click.echo(f"department  {d.department or '-'}  (tier {d.tier}, priority {d.priority}, "
               f"handling {d.handling})")
    if d.unit:
        click.echo(f"unit        {d.unit_name} ({d.unit})")
    for a in d.assisting:
        click.echo(f"assisting   {a.department}: {a.unit_name or '-'} ({a.unit or 'no unit'})")
    click.echo(f"self_closed {str(d.self_closed).lower()}   alert {str(d.alert).lower()}")
    if d.transfer is not None:
        click.echo("transfer    " + ", ".join(f"{x.number} {x.name_zh} {x.name_en}"
                                              for x in d.transfer.services)
                   + f"  ({d.transfer.rule}: {'; '.join(d.transfer.because)})")
    for s in d.suggestions:
        click.echo(f"suggestion  {s.type_code} {s.name_zh} ({s.name_en}) {s.score:.2f}")
    for x in d.legal_stages:
        click.echo(f"stage       {x.stage} {x.name_zh} ({x.name_en}) {x.limit}"
                   + (" — instead of the last" if x.alternative else "")
                   + f": {x.closes_when}")
    for stage, due in d.deadlines.items():
        click.echo(f"due {stage:<9}{due.isoformat()}  ({d.calendar})")
    if located.classification is not None:
        c = located.classification
        click.echo(f"classified  {c['type_code'] or '-'} (score {c['score']}, matched "
                   f"{', '.join(c['matched']) or '-'}; candidates "
                   f"{', '.join(c['candidates']) or '-'})")
    click.echo(f"winner      {d.winner}   rules {', '.join(d.rules)}")
    click.echo(f"ruleset     {d.ruleset_version}")
    for line in d.explanation:
        click.echo(f"  {line}")


@click.group("rules")
def rules_group() -> None:
    """Inspect and check rule sets."""


@rules_group.command("check")
@click.option("--rules", "rules_dir", default=None, help="Rule-set directory (default: shipped).")
@click.option("--geodata", default=None, help="Layer-set directory (default: shipped demo).")
@click.option("--format", "fmt", type=click.Choice(["text", "csv"]), default="text",
              help="csv: the effective-limits table as CSV on stdout (messages on stderr).")
def check(rules_dir: str | None, geodata: str | None, fmt: str) -> None:
    """Validate a rule set, prove every type routes in every street, check that zone, area
    and period rules only tighten limits, and print the effective limits; non-zero on errors."""
    import csv

    from geodata.schema import ZONE_TYPES
    from grid.taxonomy import default_taxonomy
    from rules.check import TABLE_COLUMNS, check_ruleset, format_table

    ruleset = _load_rules(rules_dir)
    taxonomy = default_taxonomy()
    locator = _locator(geodata)
    res = check_ruleset(ruleset, taxonomy, locator.streets(), ZONE_TYPES, locator.districts())
    n = {"routing": len(ruleset.routing), "raise": len(ruleset.raises),
         "deadline": len(ruleset.deadlines)}
    to_err = fmt == "csv"  # stdout is the table alone
    click.echo(f"rule set {ruleset.path} ({ruleset.version}): {len(ruleset.files)} files, "
               + ", ".join(f"{v} {k}" for k, v in n.items()) + " rules, "
               f"{len(ruleset.legal_processes)} legal processes, "
               f"{len(ruleset.emergency.transfers) if ruleset.emergency else 0} emergency "
               "transfers", err=to_err)
    if fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=list(TABLE_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(res.table)
    elif res.table:
        click.echo("effective limits (decided on a Monday morning; file/dispatch/verify in "
                   "24 h, dispose in the calendar shown):")
        for line in format_table(res.table):
            click.echo(f"  {line}")
    for note in res.notes:
        click.echo(f"note: {note}", err=to_err)
    for warning in res.warnings:
        click.echo(f"warning: {warning}", err=to_err)
    for e in res.errors:
        click.echo(f"error: {e}", err=True)
    click.echo(res.summary, err=to_err)
    if res.combinations:
        click.echo(f"tighten-only: {res.combinations} type x zone x area x period x time "
                   "combinations checked", err=to_err)
    if not res.ok:
        click.echo(f"FAIL: {len(res.errors)} error(s)", err=True)
        raise SystemExit(1)
    click.echo("OK: every type routes, and zone, area and period rules only tighten limits "
               "(except where they say why they relax them)", err=to_err)
