"""``grid bench``: engine vs raw aiokafka baseline, dispatch latency, recovery; subcommands
for single parts (``recovery``, ``spatial``). Add a subcommand with ``@bench.command()``."""

from __future__ import annotations

import json
import sys

import click


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--reports", default=20_000, show_default=True,
              help="reports for the throughput runs")
@click.option("--rate", default=1000.0, show_default=True,
              help="offered load for the latency run (reports/s)")
@click.option("--duration", default=10.0, show_default=True,
              help="seconds of offered load for the latency run")
@click.option("--geodata", envvar="GRID_GEODATA",
              help="layer directory, e.g. ~/.cache/grid/geodata/city (default: Yangpu demo)")
@click.option("--embedded", type=click.Choice(["kafka", "tansu"]), default="kafka",
              show_default=True, help="embedded broker started afresh for each phase")
@click.option("--kafka-config", multiple=True, metavar="KEY=VALUE",
              help="a setting for the embedded Kafka broker (repeatable)")
@click.option("--broker", help="kafka://HOST:PORT for all phases instead of an embedded broker")
@click.option("--partitions", default=8, show_default=True)
@click.option("--recovery-events", default=1_000_000, show_default=True,
              help="case events for the recovery measurement (0 = skip)")
@click.option("--phases", default="baseline,baseline_txn,passthrough,engine",
              show_default=True, help="which processes to measure (comma-separated; also "
              "baseline_pipelined: the transactional baseline with polling not waiting for "
              "the commits; baseline_one_txn: its intake hop at-least-once, only the case hop "
              "transactional; engine_projector: the worker with the read store's projector "
              "inside, as grid up runs it — 'engine' runs it without, as compose does; "
              "engine_2: two such workers sharing the partitions)")
@click.pass_context
def bench(ctx: click.Context, as_json: bool, reports: int, rate: float, duration: float,
          geodata: str | None, embedded: str, kafka_config: tuple[str, ...],
          broker: str | None, partitions: int, recovery_events: int, phases: str) -> None:
    """Benchmark the engine against a raw aiokafka consume→parse→produce loop on the same
    broker and message mix; dispatch latency at a fixed offered load; recovery time."""
    if ctx.invoked_subcommand is not None:
        return
    from bench.run import run

    def log(msg: str) -> None:
        click.echo(msg, err=True)

    res = run(reports=reports, rate=rate, duration=duration, geodata=geodata, broker=broker,
              partitions=partitions, recovery_events=recovery_events, embedded=embedded,
              kafka_config=dict(kv.split("=", 1) for kv in kafka_config),
              phases=tuple(p.strip() for p in phases.split(",") if p.strip()), log=log)
    if as_json:
        click.echo(json.dumps(res, ensure_ascii=False))
        return
    click.echo(render(res))


def _x(v: float | None, fmt: str = ".2f") -> str:
    return "—" if v is None else format(v, fmt)


THROUGHPUT_ROWS = (("baseline", "baseline (plain, at-least-once)"),
                   ("baseline_txn", "baseline (transactional)"),
                   ("baseline_pipelined", "baseline (transactional, pipelined)"),
                   ("baseline_one_txn", "baseline (one transactional hop)"),
                   ("engine", "engine"),
                   ("engine_projector", "engine + in-worker projector"),
                   ("engine_2", "engine, two workers"))
LATENCY_ROWS = (("passthrough_latency", "passthrough"), ("baseline_latency", "baseline"),
                ("baseline_txn_latency", "baseline txn"),
                ("baseline_pipelined_latency", "pipelined"),
                ("baseline_one_txn_latency", "one txn hop"), ("latency", "engine"),
                ("engine_projector_latency", "engine + projector"),
                ("engine_2_latency", "engine, two workers"))


def render(res: dict) -> str:
    """The table ``grid bench`` prints; phases not run are left out."""
    m = res["machine"]
    lines = [
        f"machine: {m['nproc']} cores, {m['cpu']}, {m['ram_gb']} GB RAM, load {m['load_avg']}",
        f"broker: {res['broker']['name']}",
        f"geodata: {res['geodata']} ({res['cells']:,} cells); {res['reports']:,} reports, "
        f"{res['profile']['per_input']:.2f} output messages per report",
        "",
        f"{'':32} {'reports/s':>10} {'msgs/s':>10} {'CPU s':>7} {'peak RSS MB':>12} complete",
        *(f"{name:32} {r['reports_per_s']:>10,.0f} {r['msgs_per_s']:>10,.0f} "
          f"{r['cpu_s']:>7.1f} {r['peak_rss_mb']:>12,.0f} {r['complete']}"
          for key, name in THROUGHPUT_ROWS if (r := res.get(key))),
        f"ratio engine / transactional baseline: {_x(res.get('ratio'))} (target ≥ 0.8); "
        f"engine / plain baseline: {_x(res.get('ratio_plain'))}"
        + (f"; two workers / transactional baseline: {_x(res['ratio_two_workers'])}"
           if res.get("ratio_two_workers") is not None else ""),
        f"cost of exactly-once: transactional / plain baseline throughput "
        f"{_x(res.get('exactly_once_cost'))}",
    ]
    lat = res.get("latency")
    rows = [(name, x) for key, name in LATENCY_ROWS if (x := res.get(key))]
    if rows:
        x0 = rows[0][1]
        lines += [
            "",
            f"dispatch latency at {x0['offered_rate']:,.0f} reports/s offered "
            f"(achieved {x0['achieved_rate']:,.0f}); report produced → first work order read "
            "(read_committed):",
            f"{'':12} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'outputs':>8}",
            *(f"{name:12} {x['p50_ms']:>8} {x['p95_ms']:>8} {x['p99_ms']:>8} {x['max_ms']:>8} "
              f"{x['work_orders']:>8,}" for name, x in rows),
        ]
    for name, x in rows:
        if st := x.get("stages"):
            lines.append(f"  {name}, where it went (p50 / p99 ms): " + ", ".join(
                f"{k} {v['p50_ms']} / {v['p99_ms']}" for k, v in st.items() if k != "reports"))
    if lat:
        lines += [f"worker CPU during the latency run: {lat['worker_cpu_share']:.0%} of a core",
                  f"worker peak RSS: {res['worker_peak_rss_mb']:,.0f} MB"]
    if r := res.get("recovery"):
        lines.append(f"recovery (in-process, no broker): {r['events']:,} case events "
                     f"({r['cases']:,} cases) replayed in {r['replay_s']} s "
                     f"({r['replay_events_per_s']:,} events/s); "
                     f"table index rebuild {r['table_index_s']} s")
    return "\n".join(lines)


@bench.command()
@click.option("--events", default=1_000_000, show_default=True)
@click.option("--geodata", envvar="GRID_GEODATA")
def recovery(events: int, geodata: str | None) -> None:
    """Time to rebuild case state from a log of case events."""
    from bench.recovery import measure

    click.echo(json.dumps(measure(events, geodata)))


@bench.command()
@click.option("--cases", default=100_000, show_default=True,
              help="cases in the worker's changelogs (the issue's size is 1,000,000)")
@click.option("--geodata", envvar="GRID_GEODATA")
@click.option("--partitions", default=8, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def restart(cases: int, geodata: str | None, partitions: int, as_json: bool) -> None:
    """A worker restarted with CASES cases in its changelogs: time until it handles the next
    report, peak RSS, beside the same worker with empty changelogs (bench/restart.py)."""
    from bench.restart import measure

    res = measure(cases, geodata, partitions, log=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps(res, ensure_ascii=False))
        return
    for label in ("empty", "full"):
        r = res[label]
        click.echo(f"{label:5} {r['cases']:>9,} cases ({r['case_json_mb']:,} MB of case JSON): "
                   f"next report handled {r['first_report_s']} s after the start, "
                   f"peak RSS {r['peak_rss_mb']:,} MB; restores {r['restores']}")
    click.echo(f"the state costs {res['state_cost_s']} s and {res['state_rss_mb']:,} MB")


@bench.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def spatial(ctx: click.Context) -> None:
    """Locator vs geopandas.sjoin (bench/spatial.py; arguments are passed through)."""
    from bench.spatial import main

    sys.exit(main(list(ctx.args)))


@bench.command("store")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--cases", default=200_000, show_default=True,
              help="cases loaded, ~6.2 events each (the issue's size is 1,000,000: ~12 min "
                   "on PostgreSQL on a quiet 2-core machine; the default runs both databases "
                   "in ~4.5 min)")
@click.option("--throughput-cases", default=50_000, show_default=True,
              help="the first cases' events are applied beside the baseline INSERT")
@click.option("--queries", default=1000, show_default=True, help="list queries")
@click.option("--db", "databases", multiple=True, type=click.Choice(["postgresql", "sqlite"]),
              default=("postgresql", "sqlite"), show_default=True)
@click.option("--geodata", envvar="GRID_GEODATA", help="layer directory (default: Yangpu demo)")
@click.option("--keep", type=click.Path(file_okay=False),
              help="keep the stores in this (new) directory: PostgreSQL data in DIR/pg")
@click.option("--existing", metavar="URL",
              help="only the list queries and the evaluation, on a store loaded before "
                   "(migrated to the newest schema first)")
@click.option("--small", metavar="URL",
              help="with --existing: an empty store for the worker-start comparison")
@click.option("--projectors", default="1,2", show_default=True,
              help="PostgreSQL: a log of --throughput-cases cases by this many projector "
                   "processes over disjoint partitions, each count on an empty store "
                   "(comma-separated; empty: skipped)")
def store(as_json: bool, cases: int, throughput_cases: int, queries: int,
          databases: tuple[str, ...], geodata: str | None, keep: str | None,
          existing: str | None, small: str | None, projectors: str) -> None:
    """The read store on a throwaway PostgreSQL and on SQLite: projector throughput beside a
    plain INSERT, list query p50/p99, a quarter's evaluation, worker start (bench/store.py)."""
    from bench.store import measure_existing, render, run

    def log(msg: str) -> None:
        click.echo(msg, err=True)

    if existing:
        click.echo(json.dumps(measure_existing(existing, queries, geodata, small, log)))
        return
    res = run(cases=cases, throughput_cases=throughput_cases, queries=queries,
              geodata=geodata, databases=databases, keep=keep,
              projectors=tuple(int(n) for n in projectors.split(",") if n.strip()), log=log)
    click.echo(json.dumps(res, ensure_ascii=False) if as_json else render(res))


@bench.command("paint")
@click.option("--url", default="http://127.0.0.1:6066", show_default=True,
              help="a running worker (grid up --geodata <city> --demo)")
@click.option("--token", default="demo-city", show_default=True, help="a city-wide sign-in")
@click.option("--district", default="310115", show_default=True)
@click.option("--street", default=None, help="default: the street with the most cells")
@click.option("--runs", default=3, show_default=True)
@click.option("--geodata", envvar="GRID_GEODATA",
              help="the worker's layer directory: the baseline (cells made from the layers)")
@click.option("--json", "as_json", is_flag=True)
def paint_cmd(url: str, token: str, district: str, street: str | None, runs: int,
              geodata: str | None, as_json: bool) -> None:
    """The dashboard's first paint per level in headless Chromium (bench/paint.py)."""
    from bench.paint import paint

    res = paint(url.rstrip("/"), token, district, street, runs, geodata,
                log=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps(res))
