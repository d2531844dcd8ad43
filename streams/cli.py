"""``grid submit``, ``grid tail``, ``grid kafka`` and ``grid broker``: the broker from a shell.

The broker address comes from ``--broker``, else ``$GRID_BROKER``, else the file
``$GRID_HOME/broker`` that ``grid up``/``grid broker`` write, else localhost:9092.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import threading
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO

import click
import orjson

from grid.deadlines import SHANGHAI
from streams import topics
from streams.broker import (
    BrokerError,
    EmbeddedBroker,
    bootstrap_of,
    claim_home,
    clear_broker_state,
    ensure_topics,
    resolve_broker,
    write_broker_state,
)

ALIASES = {
    "reports": topics.REPORTS,
    "commands": topics.COMMANDS,
    "case-events": topics.CASE_EVENTS,
    "events": topics.CASE_EVENTS,
    "dispatch": topics.DISPATCH,
    "alerts": topics.ALERTS,
    "dlq": topics.DLQ,
    "reports-gateway": topics.REPORTS_GATEWAY,
    "reports-hotline": topics.REPORTS_HOTLINE,
    "hotline-replies": topics.HOTLINE_REPLIES,
    "replies": topics.HOTLINE_REPLIES,
}

broker_option = click.option(
    "--broker",
    default=None,
    metavar="URL",
    help="kafka://HOST:PORT[,HOST:PORT] (default: $GRID_BROKER, $GRID_HOME/broker, :9092)",
)


def topic_name(name: str) -> str:
    """Full topic name for a short alias (``dispatch`` -> ``grid.dispatch.v1``)."""
    return ALIASES.get(name, name)


# -- submit ------------------------------------------------------------------------------
def read_messages(text: str) -> list[bytes]:
    """A JSON array (each element re-encoded) or one message per non-blank line, sent
    as-is: invalid lines are kept, the engine's DLQ reports them."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            items = None
        if isinstance(items, list):
            return [orjson.dumps(item) for item in items]
    return [line.strip().encode() for line in text.splitlines() if line.strip()]


def message_key(raw: bytes, topic: str) -> str | None:
    """Partition key of a raw message: report_id (reports), street or case_id (commands)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    fields = ("street", "case_id") if topic == topics.COMMANDS else ("report_id",)
    for field in fields:
        if isinstance(value.get(field), str) and value[field]:
            return value[field]
    return None


def web_address() -> str:
    """The dashboard's address: ``$GRID_WEB_PORT`` on this machine, else the one the running
    ``grid up`` recorded in ``$GRID_HOME/web``, else port 6066."""
    from streams.broker import grid_home

    if port := os.environ.get("GRID_WEB_PORT"):
        return f"http://127.0.0.1:{port}/"
    recorded = grid_home() / "web"
    if recorded.exists():
        return recorded.read_text().strip()
    return "http://127.0.0.1:6066/"


def with_new_ids(messages: list[bytes], now: datetime) -> list[bytes]:
    """Each report with a fresh ``report_id`` and ``reported_at`` = ``now`` (so that an
    example file can be sent again: the engine is idempotent on report ids); anything that
    is not a JSON object is kept as it is."""
    out = []
    for raw in messages:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out.append(raw)
            continue
        if isinstance(value, dict):
            value = {**value, "report_id": str(uuid.uuid4()), "reported_at": now.isoformat()}
            raw = orjson.dumps(value)
        out.append(raw)
    return out


@click.command()
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@broker_option
@click.option("--topic", default=topics.REPORTS, show_default=True, help="Topic or alias.")
@click.option("--new-id", is_flag=True,
              help="Give each report a fresh report_id and reported_at = now (send an example "
                   "again: the same report id is one report).")
@click.option("--follow", is_flag=True,
              help="Then show what became of each report: its case, work order and alerts "
                   "(or why it was refused), until each is settled or --wait passes.")
@click.option("--wait", "wait_s", type=float, default=30.0, show_default=True,
              help="With --follow: seconds to wait at most.")
def submit(source: TextIO, broker: str | None, topic: str, new_id: bool, follow: bool,
           wait_s: float) -> None:
    """Produce reports from SOURCE (a file or - for stdin): one JSON object per line or
    a JSON array. Prints each message's key (the report id), '-' when it has none."""
    from streams.kafka_io import produce_json

    topic = topic_name(topic)
    messages = read_messages(source.read())
    if not messages:
        raise click.ClickException("no messages in input")
    if new_id:
        messages = with_new_ids(messages, datetime.now(UTC))
    url = resolve_broker(broker)
    bootstrap = bootstrap_of(url)

    async def send() -> None:
        await produce_json(bootstrap, topic, messages, key_fn=lambda m: message_key(m, topic))

    keys = [message_key(raw, topic) for raw in messages]
    try:
        if follow:
            from streams.follow import run_follow

            nm = names()

            def echo(line: str) -> None:
                click.echo(printable(line))

            def describe(v: Any) -> str:  # stamped with the engine's time of the record
                at = v.get("at") or v.get("issued_at") or v.get("received_at")
                return f"{shanghai(at, '%H:%M:%S')}  {summarize(v, nm)}"

            for k in keys:
                click.echo(k or "-")
            click.echo(f"sent {len(messages)} message(s) to {topic} on {url}; following "
                       "them (engine time, Shanghai):", err=True)
            f = run_follow(bootstrap, [k for k in keys if k], send, describe, echo,
                           timeout=wait_s)
        else:
            asyncio.run(send())
    except Exception as e:
        raise click.ClickException(f"could not produce to {url}: {e!r}") from e
    if not follow:
        for k in keys:
            click.echo(k or "-")
        click.echo(f"sent {len(messages)} message(s) to {topic} on {url}", err=True)
        return
    web = web_address()
    for o in f.reports.values():
        if o.case_id:
            click.echo(f"report {o.report_id} → case {o.case_id}"
                       + (" (merged: a duplicate of an open case)" if o.merged else "")
                       + f"; on the dashboard: {web}#case={o.case_id}")
        if not o.settled:
            click.echo(f"report {o.report_id}: nothing settled within {wait_s:g} s (is a worker "
                       "running? grid up)", err=True)
    if not f.done():
        raise SystemExit(1)


# -- tail --------------------------------------------------------------------------------
def _clip(text: Any, n: int = 40) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


_NAMES: list[Any] = []


def names() -> Any:
    """The :class:`grid.names.Names` of the shipped (or ``$GRID_GEODATA``) set, loaded once;
    ``None`` when they cannot be loaded (codes are printed then)."""
    if not _NAMES:
        try:
            from grid.names import Names

            _NAMES.append(Names.load(os.environ.get("GRID_GEODATA")))
        except Exception:  # names are a courtesy: tail works without them
            _NAMES.append(None)
    return _NAMES[0]


def shanghai(iso: Any, fmt: str = "%m-%d %H:%M") -> str:
    """An ISO timestamp as Shanghai time (``12-03 10:53``); anything else as it is."""
    try:
        return f"{datetime.fromisoformat(str(iso)).astimezone(SHANGHAI):{fmt}}"
    except ValueError:
        return str(iso)


def due_text(due: Any) -> str:
    """``dispose by 12-03 10:53, verify by 12-03 12:53`` (Shanghai time)."""
    if not isinstance(due, dict) or not due:
        return "no deadline"
    return ", ".join(f"{stage} by {shanghai(at)}" for stage, at in due.items())


def summarize(value: Any, n: Any = None) -> str:
    """One readable line for a message value, by its schema; with ``n`` (names), type,
    department and street names beside their codes."""
    if not isinstance(value, dict):
        return _clip(value if isinstance(value, str) else orjson.dumps(value).decode(), 160)
    v = value
    typ = n.type if n else (lambda c: f"type {c}")
    dept = n.department if n else (lambda c: str(c))
    place = n.place if n else (lambda c: f"street {c}")
    match v.get("schema"):
        case "grid.report/1":
            loc = v.get("location") or {}
            where = f"({loc.get('lon')}, {loc.get('lat')} {loc.get('crs', '')})"
            return (f"report {v.get('type_code') or '?'} from {v.get('source')} "
                    f"{where} {_clip(v.get('description', ''))}")  # fmt: skip
        case "grid.work-order/1":
            unit = f" · {v['unit_name']}" if v.get("unit_name") else ""
            role = " (协办 assisting)" if v.get("role") == "assisting" else ""
            return (f"WORK ORDER {v.get('priority', '').upper()} → {dept(v.get('department'))}"
                    f"{unit}{role} · {typ(v.get('type_code'))} · {place(v.get('street'))}"
                    f" · {due_text(v.get('due'))} · case {v.get('case_id')}")  # fmt: skip
        case "grid.case-event/1":
            move = (f"{v.get('state_from')} → {v.get('state_to')}" if v.get("state_from")
                    else f"new case, {v.get('state_to')}")
            return (f"case {v.get('case_id')} #{v.get('seq')} {v.get('type')}: {move} "
                    f"by {v.get('actor')} {_clip(v.get('reason', ''))}").rstrip()  # fmt: skip
        case "grid.alert/1":
            # the message says "<what happened> — <type> in <street>" (key supervision:
            # "<type> in <street> — on site by …"): type and street are printed already
            parts = str(v.get("message", "")).split(" — ")
            what = " — ".join(parts[1:]) if v.get("kind") == "key_supervision" else parts[0]
            return (f"ALERT {v.get('kind')} {v.get('priority')} · {typ(v.get('type_code'))}"
                    f" · {place(v.get('street'))} · {_clip(what, 80)}"
                    f" · case {v.get('case_id')}")  # fmt: skip
        case "grid.hotline-reply/1":
            return (f"HOTLINE {v.get('hotline')} ticket {v.get('ticket_no')} · "
                    f"{v.get('status_zh')} ({v.get('event')}, {v.get('status')}) · "
                    f"{_clip(v.get('message', ''), 80)} · case {v.get('case_id')}")  # fmt: skip
        case "grid.dlq/1":
            return (f"DLQ {v.get('reason')}: {_clip(v.get('message', ''), 100)} "
                    f"report {v.get('report_id') or '-'}")  # fmt: skip
        case "grid.command/1":
            return (f"command {v.get('action')} case {v.get('case_id')} by {v.get('role')} "
                    f"{v.get('actor')}")  # fmt: skip
    if "reason" in v:
        return f"REJECTED {_clip(v.get('reason'), 100)}"
    return _clip(orjson.dumps(v).decode(), 160)


def format_record(rec: Any, as_json: bool = False, n: Any = None) -> str:
    if as_json:
        return orjson.dumps(
            {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
             "timestamp_ms": rec.timestamp_ms, "key": rec.key, "value": rec.value}
        ).decode()  # fmt: skip
    at = datetime.fromtimestamp(rec.timestamp_ms / 1000, UTC).astimezone(SHANGHAI)
    line = (f"{at:%H:%M:%S.%f}"[:-3]
            + f" p{rec.partition} {rec.key or '-'}  {summarize(rec.value, n)}")
    return printable(line)


_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-_])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` without terminal control: escape sequences (colours, cursor moves, window
    titles) removed, other control characters shown as ``\\xNN``; report text is data."""
    text = _ESCAPES.sub("", text)
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


async def _tail(
    url: str, topic: str, from_beginning: bool, count: int | None, timeout: float | None,
    as_json: bool,
) -> int:  # fmt: skip
    from streams.kafka_io import consume

    n = 0
    nm = None if as_json else names()
    stream = consume(bootstrap_of(url), topic, from_beginning=from_beginning, timeout=timeout)
    async with contextlib.aclosing(stream):
        async for rec in stream:
            click.echo(format_record(rec, as_json, nm))
            n += 1
            if count is not None and n >= count:
                break
    return n


@click.command()
@click.argument("topic")
@broker_option
@click.option("--from-beginning", is_flag=True, help="Start at the oldest message.")
@click.option("--count", "-n", type=int, default=None, help="Stop after N messages.")
@click.option("--timeout", type=float, default=None, help="Stop after S seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print each message as one JSON line.")
def tail(
    topic: str, broker: str | None, from_beginning: bool, count: int | None,
    timeout: float | None, as_json: bool,
) -> None:  # fmt: skip
    """Print a topic's messages, one line each (TOPIC may be an alias: reports,
    commands, events, dispatch, alerts, dlq). Without --from-beginning, only new ones."""
    url = resolve_broker(broker)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(url, topic_name(topic), from_beginning, count, timeout, as_json))


# -- broker ------------------------------------------------------------------------------
@click.command("broker")
@click.option("--port", type=int, default=9092, show_default=True, help="0 = any free port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--partitions", type=int, default=None, help="Partitions per grid topic.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), default=None)
def broker_cmd(port: int, host: str, partitions: int | None, log_path: str | None) -> None:
    """Run the Tansu fallback broker (memory only, no Java needed) in the foreground with
    the grid topics created; Ctrl-C stops it and its data is gone. Apache Kafka: grid kafka
    start."""
    b = EmbeddedBroker(port=port or None, host=host, log_path=log_path)
    try:
        lock = claim_home("broker")
        b.start()
        ensure_topics(b.bootstrap, topics.all_topics(partitions))
    except Exception as e:
        b.stop()
        raise click.ClickException(str(e)) from e
    foreground(b, "tansu", lock, [f"broker   {b.url}  (pid {b.pid}, log {b.log_path})",
                                  f"topics   {', '.join(topics.ALL_TOPICS)}"])


def foreground(b: Any, kind: str, lock: Any, lines: list[str]) -> None:
    """Record the running broker ``b`` for the other grid commands, print ``lines``, wait
    for Ctrl-C / SIGTERM (or ``b`` exiting), then stop ``b`` and release ``lock``."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        state = write_broker_state(b.url, kind=kind)
        for line in lines:
            click.echo(line)
        click.echo(f"recorded in {state}; Ctrl-C to stop")
        while not stop.wait(0.5):
            if not b.running:
                raise click.ClickException(f"the broker exited:\n{b.log_tail()}")
    finally:
        clear_broker_state(b.url)
        b.stop()
        lock.close()
        click.echo("broker stopped", err=True)


# -- kafka -------------------------------------------------------------------------------
@click.group("kafka")
def kafka_group() -> None:
    """Apache Kafka on this machine: fetch the server with Maven, run a KRaft cluster."""


@kafka_group.command("fetch")
def kafka_fetch() -> None:
    """Copy the Kafka server's classpath (deploy/kafka/pom.xml) into the cache; a second
    call does nothing."""
    from streams.kafka_server import fetch, kafka_version

    try:
        path = fetch(quiet=False)
    except BrokerError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"Apache Kafka {kafka_version()}: {path}")


@kafka_group.command("start")
@click.option("--nodes", type=click.Choice(["1", "3"]), default="1", show_default=True,
              help="combined broker+controller nodes (3: RF 3, min.insync.replicas 2)")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="data directory, kept across restarts [default: $GRID_HOME/kafka]")
@click.option("--port", type=int, default=None,
              help="client port of node 1 (the others take the next ones) [default: free "
                   "ports, chosen once and kept in the data directory]")
@click.option("--partitions", type=int, default=None, help="Partitions per grid topic.")
@click.option("--secure", is_flag=True,
              help="SASL SCRAM for every client and ACLs from deploy/kafka/principals.yaml")
def kafka_start(nodes: str, data_dir: str | None, port: int | None,
                partitions: int | None, secure: bool) -> None:
    """Start Apache Kafka (KRaft) in the foreground with the grid topics created and its
    address recorded for grid submit / tail / worker; Ctrl-C stops it, the data stays."""
    from streams.broker import grid_home
    from streams.kafka_server import EmbeddedKafka

    try:
        lock = claim_home("kafka start")
        k = EmbeddedKafka(nodes=int(nodes), data_dir=data_dir or grid_home() / "kafka",
                          port=port, topics=topics.all_topics(partitions), secure=secure)
        click.echo(f"starting Apache Kafka {k.version} ({nodes} node(s), data {k.data_dir})",
                   err=True)
        k.start()
    except BrokerError as e:
        raise click.ClickException(str(e)) from e
    lines = [f"bootstrap {k.bootstrap}",
             f"topics    {', '.join(topics.ALL_TOPICS)} (RF {k.replication})",
             f"data      {k.data_dir} (kept; logs node-N.log there)"]
    if secure:
        lines += [f"secured   SASL SCRAM-SHA-512; principals {', '.join(k.passwords)}; "
                  f"passwords in {k.data_dir / 'principals.json'}",
                  "          a worker: GRID_KAFKA_USER=worker GRID_KAFKA_PASSWORD=… grid worker"]
    foreground(k, "kafka", lock, lines)


@click.command("tokens")
def tokens() -> None:
    """Show the API tokens this configuration gives (the demo set unless configured)."""
    from grid.auth import describe, load_registry
    from grid.taxonomy import load_taxonomy
    from streams.settings import Settings, SettingsError

    try:
        config = Settings.read().token_config()  # GRID_MODE, GRID_TOKENS_FILE, GRID_TOKENS
    except SettingsError as err:
        raise click.ClickException(str(err)) from None
    click.echo(describe(load_registry(config, load_taxonomy().departments)))
