"""``grid worker`` (one worker on a real cluster) and ``grid up`` (the embedded default:
broker + topics + worker + demo feed, stopped cleanly with Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from streams.settings import Settings

WORKER_OPTIONS = [
    click.option("--broker", help="kafka://HOST:PORT[,HOST:PORT] (GRID_BROKER)"),
    click.option("--geodata", help="layer directory (GRID_GEODATA; default: shipped Yangpu)"),
    click.option("--rules", "rules_dir", help="rule-set directory (GRID_RULES; default shipped)"),
    click.option("--web-port", type=int, help="HTTP port: API, dashboard, metrics (GRID_WEB_PORT)"),
    click.option("--partitions", type=int, help="partitions per topic (GRID_PARTITIONS)"),
    click.option("--data-dir", help="table state directory (GRID_DATA_DIR)"),
    click.option("--clock", help="'system' or 'x<speed>' to run deadlines fast (GRID_CLOCK)"),
]


def worker_options(f):
    for opt in reversed(WORKER_OPTIONS):
        f = opt(f)
    return f


@click.command()
@worker_options
@click.option("--loglevel", default="warning", show_default=True, envvar="GRID_LOGLEVEL",
              help="debug, info, warning or error (GRID_LOGLEVEL)")
def worker(loglevel: str, rules_dir: str | None, **kw) -> None:
    """Run one engine worker (joins the consumer group; scale by starting more)."""
    from faust.worker import Worker

    from streams.app import create_app
    from streams.broker import on_tansu

    if on_tansu():  # Tansu only: its ListOffsets is wrong after batches (streams.tansu)
        from streams.tansu import patch_end_offsets

        patch_end_offsets()
    settings = Settings.from_env(rules=rules_dir, **kw)
    check_topics(settings)
    grid_app = create_app(settings)
    from streams.dashboard import install_dashboard
    from streams.metrics import install_metrics
    from streams.readmodel import attach_read_model

    attach_read_model(grid_app)  # grid_app.projection: the whole event log, in memory
    install_metrics(grid_app)  # GET /metrics (domain + Faust engine metrics)
    install_dashboard(grid_app)  # GET / and /dashboard/...
    from streams.web import install

    install(grid_app)  # HTTP API + Open311 on the worker's web server
    tune_gc(grid_app.app)
    click.echo(f"grid worker: broker {settings.broker}, web http://{settings.web_host}:"
               f"{settings.web_port}/", err=True)
    Worker(grid_app.app, loglevel=loglevel, quiet=True).execute_from_commandline()


def tune_gc(app=None, freeze_every: float = 1.0) -> None:
    """Keep the cyclic garbage collector off the hot path.

    What is loaded at startup (locator, taxonomy, rules: ~350k objects) is frozen out of its
    view, young collections run every 10,000 allocations instead of 700, and — with ``app``
    — a timer freezes the survivors every ``freeze_every`` seconds. A worker keeps many
    long-lived objects (decoded cases, the read model); with the defaults the collector took
    about 40 % of case handling, and with higher thresholds alone each gen-1 collection
    paused the worker for ~80 ms (docs/BENCHMARKS.md). Reference counting still frees
    frozen objects; only a reference cycle that is alive at a freeze and dies later is
    never collected."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    if app is not None:
        app.timer(freeze_every, name="gc-freeze")(_freeze)


async def _freeze() -> None:
    import gc

    gc.freeze()


def check_topics(settings: Settings) -> None:
    """Create missing topics; refuse to start when existing ones have another partition count
    (case state is partitioned by street: every worker must agree on the count)."""
    import asyncio

    from streams import topics as T
    from streams.broker import bootstrap_of, ensure_topics, partition_counts

    bootstrap = bootstrap_of(settings.broker)
    ensure_topics(bootstrap, T.all_topics(settings.partitions), replication=settings.replication)
    counts = asyncio.run(partition_counts(bootstrap, [T.LOCATED, T.COMMANDS]))
    wrong = {t: n for t, n in counts.items() if n != settings.partitions}
    if wrong:
        raise click.ClickException(
            f"topics {wrong} do not have {settings.partitions} partitions: "
            "start the worker with --partitions (GRID_PARTITIONS) matching the topics")


RESTART_EXIT_CODE = 70  # streams.app.Outbox: output not delivered, offsets not committed


def grid_home() -> Path:
    home = Path(os.environ.get("GRID_HOME", Path.home() / ".grid"))
    home.mkdir(parents=True, exist_ok=True)
    return home


@click.command()
@click.option("--broker", help="use this broker instead of starting the embedded one")
@click.option("--demo/--no-demo", default=False, help="run the simulated report feed")
@click.option("--rate", default=5.0, show_default=True, help="demo reports per second")
@click.option("--web-port", type=int, default=6066, show_default=True)
@click.option("--partitions", type=int, default=4, show_default=True)
@click.option("--clock", default="system", show_default=True)
@click.option("--geodata", help="layer directory (default: shipped Yangpu demo)")
@click.option("--rules", "rules_dir", help="rule-set directory (default: shipped)")
def up(broker: str | None, demo: bool, rate: float, web_port: int, partitions: int,
       clock: str, geodata: str | None, rules_dir: str | None) -> None:
    """Start the embedded engine: Tansu broker, topics, one worker, optional demo feed."""
    from streams import topics as T
    from streams.broker import EmbeddedBroker, bootstrap_of, ensure_topics

    home = grid_home()
    embedded = None
    if broker is None:
        embedded = EmbeddedBroker(log_path=home / "broker.log").start()
        broker = embedded.url
    bootstrap = bootstrap_of(broker)
    ensure_topics(bootstrap, T.all_topics(partitions))
    (home / "broker").write_text(broker + "\n")
    from grid.clock import shared_spec

    env = dict(os.environ, GRID_BROKER=broker, GRID_WEB_PORT=str(web_port),
               GRID_PARTITIONS=str(partitions), GRID_CLOCK=shared_spec(clock),
               GRID_DATA_DIR=str(home / "data"), GRID_HOME=str(home))
    if geodata:
        env["GRID_GEODATA"] = geodata
    if rules_dir:
        env["GRID_RULES"] = rules_dir
    procs: list[subprocess.Popen] = []
    exe = [sys.executable, "-m", "grid.cli"]
    procs.append(subprocess.Popen([*exe, "worker"], env=env))
    if demo:
        procs.append(subprocess.Popen(
            [*exe, "simulate", "--rate", str(rate), "--duration", "0", "--respond"], env=env))
    click.echo(f"""
grid is up.
  broker     {broker}   (embedded Tansu: {'yes' if embedded else 'no'})
  dashboard  http://127.0.0.1:{web_port}/
  API        http://127.0.0.1:{web_port}/api/v1/   (OpenAPI: /api/v1/openapi.json)
  metrics    http://127.0.0.1:{web_port}/metrics
  topics     {', '.join(t for t in T.all_topics())}
  tokens     demo-supervisor, demo-command-center, demo-viewer, demo-dept-<department>
             (embedded mode only; all of them: grid tokens)
  try        grid submit examples/manhole.json && grid tail {T.DISPATCH}
Ctrl-C stops everything.""")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for i, p in enumerate(procs):
                if p.poll() is None:
                    continue
                if p.returncode == RESTART_EXIT_CODE:  # the worker stopped before committing
                    click.echo("grid up: worker stopped on a delivery failure; restarting it",
                               err=True)
                    procs[i] = subprocess.Popen(p.args, env=env)
                    continue
                click.echo(f"grid up: process {p.args} exited with {p.returncode}", err=True)
                stopping = True
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if embedded is not None:
            embedded.stop()
        click.echo("grid up: stopped.")
