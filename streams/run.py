"""``grid worker`` (one worker on a real cluster) and ``grid up`` (the embedded default:
broker + topics + worker + demo feed, stopped cleanly with Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import click

from streams.settings import Settings, SettingsError

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
    try:
        settings = Settings.from_env(rules=rules_dir, **kw)
    except SettingsError as err:  # one line naming the variable, not a traceback
        raise click.ClickException(str(err)) from None
    check_topics(settings)
    grid_app = create_app(settings)
    from streams.dashboard import install_dashboard
    from streams.metrics import install_metrics
    from streams.readmodel import attach_read_store

    attach_read_store(grid_app)  # grid_app.read_store (SQL) and its projector task
    install_metrics(grid_app)  # GET /metrics (domain + Faust engine metrics)
    from streams.web import install

    install(grid_app)  # HTTP API + Open311 on the worker's web server
    install_dashboard(grid_app, grid_app.api.registry)  # GET /, /login and /dashboard/...
    from streams.analytics_web import install_analytics

    install_analytics(grid_app)  # GET /analytics (hot spots, recurrences, trends)
    from streams.work_pages import install_work_pages

    install_work_pages(grid_app)  # GET /console, /inbox, /m (the work screens)
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
    from streams.caseloop import changelog_topics

    bootstrap = bootstrap_of(settings.broker)
    ensure_topics(bootstrap, T.all_topics(settings.partitions), replication=settings.replication)
    changelogs = changelog_topics(settings.app_id)  # the case loop's state (compacted)
    ensure_topics(bootstrap, dict.fromkeys(changelogs, settings.partitions),
                  replication=settings.replication,
                  configs={t: {"cleanup.policy": "compact"} for t in changelogs})
    names = [T.LOCATED, T.COMMANDS, *changelogs]
    counts = asyncio.run(partition_counts(bootstrap, names))
    for _ in range(30):  # a topic just created may not be in every broker's metadata yet
        if all(counts.get(t) for t in names):
            break
        time.sleep(1)
        counts = asyncio.run(partition_counts(bootstrap, names))
    wrong = {t: n for t, n in counts.items() if n != settings.partitions}
    if wrong:
        raise click.ClickException(
            f"topics {wrong} do not have {settings.partitions} partitions: "
            "start the worker with --partitions (GRID_PARTITIONS) matching the topics")


RESTART_EXIT_CODE = 70  # a worker that must be started again (grid up restarts it)
DEMO_CLOCK = "x60"  # grid up --demo: one real minute is an engine hour
WEB_FILE = "web"  # $GRID_HOME/web: the running grid up's web address (grid submit's links)
READY_TIMEOUT = 180.0


def wait_ready(web_port: int, proc: subprocess.Popen, stopping: Callable[[], bool],
               timeout: float = READY_TIMEOUT) -> bool:
    """Wait until the worker answers ``GET /api/v1/ready`` with 200 (its consumers joined
    and the read model caught up). False when it exited or we are stopping; after
    ``timeout`` it says what it still waits for and goes on waiting."""
    import json
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{web_port}/api/v1/ready"
    t0 = time.monotonic()
    warned = False
    while not stopping():
        if proc.poll() is not None:
            click.echo(f"grid up: the worker exited with {proc.returncode} before it was "
                       "ready", err=True)
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
            why = "not ready"
        except urllib.error.HTTPError as e:  # 503 with the reasons
            try:
                why = json.loads(e.read()).get("reasons")
            except ValueError:
                why = f"HTTP {e.code}"
        except (OSError, ValueError):
            why = "not answering yet"
        if not warned and time.monotonic() - t0 > timeout:
            click.echo(f"grid up: the worker is still not ready after {timeout:.0f} s: {why}",
                       err=True)
            warned = True
        time.sleep(0.3)
    return False


def grid_command() -> str:
    """How to call ``grid`` from the current directory: ``grid`` when that is the one on
    PATH, else the path of this environment's (e.g. ``.venv/bin/grid``)."""
    import shutil
    from pathlib import Path

    mine = Path(sys.executable).parent / "grid"
    if not mine.exists():
        return "grid"
    on_path = shutil.which("grid")
    if on_path and Path(on_path).resolve() == mine.resolve():
        return "grid"
    try:
        return str(mine.relative_to(Path.cwd()))
    except ValueError:
        return str(mine)


def banner(broker: str, kind: str, web_port: int, clock: str, demo: bool) -> str:
    """What ``grid up`` prints once the worker is ready: addresses, tokens, the clock, and
    commands that can be pasted as they are."""
    from streams import topics as T

    what = {"kafka": "Apache Kafka, data on disk", "tansu": "Tansu fallback, memory only",
            "external": "external"}[kind]
    g = grid_command()
    speed = clock[1:].split("@")[0] if clock.startswith("x") else None
    clock_line = (f"engine time runs {speed}x real time (one minute = {float(speed):g} engine "
                  "minutes: deadlines, warnings and escalation show within minutes; "
                  "--clock system for real time)" if speed else "real time")
    feed = ("demo feed  simulated reports; departments answer, some late, some return or "
            "ask for more time\n  " if demo else "")
    web = f"http://127.0.0.1:{web_port}"
    return f"""
grid is up.
  broker     {broker}   ({what})
  dashboard  {web}/   (sign in with demo-command-center: Yangpu; demo-city or demo-viewer: the
             city, its districts and streets)
  API        {web}/api/v1/   (OpenAPI: /api/v1/openapi.json)
  metrics    {web}/metrics
  clock      {clock_line}
  {feed}topics     {', '.join(T.all_topics())}
  tokens     demo-command-center (Yangpu), demo-city (the city), demo-viewer,
             demo-supervisor, demo-hotline, demo-dept-<department> (e.g. demo-dept-water)
             (embedded mode only; all of them: {g} tokens)
  try        {g} submit --new-id --follow examples/manhole.json
             {g} tail {T.ALERTS}
Ctrl-C stops everything."""


def choose_embedded(kind: str) -> str:
    """``kafka`` or ``tansu`` for ``grid up --embedded KIND`` (``auto``: Apache Kafka when
    Java 17+ is on the machine, else the Tansu fallback)."""
    from streams.kafka_server import java_ok

    if kind == "auto":
        return "kafka" if java_ok() else "tansu"
    if kind == "kafka" and not java_ok():
        raise click.ClickException("--embedded kafka needs Java 17+ on PATH "
                                   "(apt-get install openjdk-17-jre-headless)")
    return kind


@click.command()
@click.option("--broker", help="use this broker instead of starting an embedded one")
@click.option("--embedded", type=click.Choice(["auto", "kafka", "tansu"]), default="auto",
              show_default=True, help="the broker to start: Apache Kafka (one KRaft node, "
              "data on disk) or Tansu (memory only, no Java); auto = Kafka when Java 17+ is here")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Apache Kafka's data directory [default: $GRID_HOME/kafka]")
@click.option("--demo/--no-demo", default=False, help="run the simulated report feed")
@click.option("--rate", default=5.0, show_default=True, help="demo reports per second")
@click.option("--web-port", type=int, default=6066, show_default=True)
@click.option("--partitions", type=int, default=4, show_default=True)
@click.option("--clock", default=None,
              help="engine clock: 'system' or 'x<speed>' [default: x60 with --demo (an hour "
                   "passes in a minute: deadlines, warnings and escalation show), else system]")
@click.option("--geodata", help="layer directory (default: shipped Yangpu demo)")
@click.option("--rules", "rules_dir", help="rule-set directory (default: shipped)")
@click.option("--spread", default="population", show_default=True,
              help="demo reports per district of the geodata: population, area, equal, or "
                   "CODE=WEIGHT,… (grid simulate --spread)")
def up(broker: str | None, embedded: str, data_dir: str | None, demo: bool, rate: float,
       web_port: int, partitions: int, clock: str | None, geodata: str | None,
       rules_dir: str | None, spread: str) -> None:
    """Start the embedded engine: a broker, topics, one worker, optional demo feed.

    The banner prints once the worker is ready to serve. Everything it starts stops with
    it, also when it is killed."""
    if clock is None:
        clock = DEMO_CLOCK if demo else "system"
    from streams import topics as T
    from streams.broker import (
        BrokerError,
        EmbeddedBroker,
        bootstrap_of,
        claim_home,
        clear_broker_state,
        die_with_parent,
        ensure_topics,
        grid_home,
        write_broker_state,
    )

    home = grid_home()
    try:
        lock = claim_home("up")
    except BrokerError as e:
        raise click.ClickException(str(e)) from e
    started = None
    kind = "kafka"
    if broker is None:
        kind = choose_embedded(embedded)
        try:
            if kind == "kafka":
                from streams.kafka_server import EmbeddedKafka

                started = EmbeddedKafka(nodes=1, data_dir=data_dir or home / "kafka",
                                        topics=T.all_topics(partitions))
                click.echo(f"grid up: starting Apache Kafka {started.version} "
                           f"(data {started.data_dir})", err=True)
                started.start()
            else:
                click.echo("grid up: no Java 17+ here, or --embedded tansu: starting the Tansu "
                           "fallback broker. It keeps everything in MEMORY: every report and "
                           "case is gone when grid up stops.", err=True)
                started = EmbeddedBroker(log_path=home / "broker.log").start()
        except BrokerError as e:
            raise click.ClickException(str(e)) from e
        broker = started.url
    bootstrap = bootstrap_of(broker)
    ensure_topics(bootstrap, T.all_topics(partitions))
    write_broker_state(broker, kind=kind)
    from grid.clock import shared_spec

    env = dict(os.environ, GRID_BROKER=broker, GRID_BROKER_KIND=kind,
               GRID_WEB_PORT=str(web_port), GRID_PARTITIONS=str(partitions),
               GRID_CLOCK=shared_spec(clock), GRID_DATA_DIR=str(home / "data"),
               GRID_HOME=str(home))
    if geodata:
        env["GRID_GEODATA"] = geodata
    if rules_dir:
        env["GRID_RULES"] = rules_dir
    procs: list[subprocess.Popen] = []
    exe = [sys.executable, "-m", "grid.cli"]

    def spawn(args: list[str]) -> subprocess.Popen:
        return subprocess.Popen(args, env=env, preexec_fn=die_with_parent)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    procs.append(spawn([*exe, "worker"]))
    try:
        click.echo(f"grid up: starting the worker (web port {web_port}); the banner follows "
                   "when it is ready…", err=True)
        if not wait_ready(web_port, procs[0], lambda: stopping):
            stopping = True
        elif demo:
            procs.append(spawn([*exe, "simulate", "--rate", str(rate), "--duration", "0",
                                "--respond", "--spread", spread]))
        if not stopping:
            (home / WEB_FILE).write_text(f"http://127.0.0.1:{web_port}/\n")  # grid submit
            click.echo(banner(broker, kind if started else "external", web_port, clock, demo))
        while not stopping:
            for i, p in enumerate(procs):
                if p.poll() is None:
                    continue
                if p.returncode == RESTART_EXIT_CODE:  # the worker stopped before committing
                    click.echo("grid up: worker stopped on a delivery failure; restarting it",
                               err=True)
                    procs[i] = spawn(p.args)
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
        if started is not None:
            started.stop()
        clear_broker_state(broker)
        (home / WEB_FILE).unlink(missing_ok=True)
        lock.close()
        click.echo("grid up: stopped.")
