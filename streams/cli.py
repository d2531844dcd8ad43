"""``grid submit``, ``grid tail``, ``grid kafka`` and ``grid broker``: the broker from a shell.

The broker address comes from ``--broker``, else ``$GRID_BROKER``, else the file
``$GRID_HOME/broker`` that ``grid up``/``grid broker`` write, else localhost:9092.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import threading
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


@click.command()
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@broker_option
@click.option("--topic", default=topics.REPORTS, show_default=True, help="Topic or alias.")
def submit(source: TextIO, broker: str | None, topic: str) -> None:
    """Produce reports from SOURCE (a file or - for stdin): one JSON object per line or
    a JSON array. Prints each message's key (the report id), '-' when it has none."""
    from streams.kafka_io import produce_json

    topic = topic_name(topic)
    messages = read_messages(source.read())
    if not messages:
        raise click.ClickException("no messages in input")
    url = resolve_broker(broker)
    try:
        asyncio.run(
            produce_json(bootstrap_of(url), topic, messages, key_fn=lambda m: message_key(m, topic))
        )
    except Exception as e:
        raise click.ClickException(f"could not produce to {url}: {e!r}") from e
    for raw in messages:
        click.echo(message_key(raw, topic) or "-")
    click.echo(f"sent {len(messages)} message(s) to {topic} on {url}", err=True)


# -- tail --------------------------------------------------------------------------------
def _clip(text: Any, n: int = 40) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def summarize(value: Any) -> str:
    """One readable line for a message value, by its schema."""
    if not isinstance(value, dict):
        return _clip(value if isinstance(value, str) else orjson.dumps(value).decode(), 160)
    v = value
    match v.get("schema"):
        case "grid.report/1":
            loc = v.get("location") or {}
            where = f"({loc.get('lon')}, {loc.get('lat')} {loc.get('crs', '')})"
            return (f"report {v.get('type_code') or '?'} from {v.get('source')} "
                    f"{where} {_clip(v.get('description', ''))}")  # fmt: skip
        case "grid.work-order/1":
            return (f"WORK ORDER {v.get('priority', '').upper()} → {v.get('department')} "
                    f"case {v.get('case_id')} type {v.get('type_code')} street {v.get('street')} "
                    f"due {v.get('due', {})}")  # fmt: skip
        case "grid.case-event/1":
            return (f"case {v.get('case_id')} #{v.get('seq')} {v.get('type')}: "
                    f"{v.get('state_from')} → {v.get('state_to')} by {v.get('actor')} "
                    f"{_clip(v.get('reason', ''))}")  # fmt: skip
        case "grid.alert/1":
            return (f"ALERT {v.get('kind')} {v.get('priority')} case {v.get('case_id')} "
                    f"{_clip(v.get('message', ''), 80)}")  # fmt: skip
        case "grid.dlq/1":
            return (f"DLQ {v.get('reason')}: {_clip(v.get('message', ''), 100)} "
                    f"report {v.get('report_id') or '-'}")  # fmt: skip
        case "grid.command/1":
            return (f"command {v.get('action')} case {v.get('case_id')} by {v.get('role')} "
                    f"{v.get('actor')}")  # fmt: skip
    if "reason" in v:
        return f"REJECTED {_clip(v.get('reason'), 100)}"
    return _clip(orjson.dumps(v).decode(), 160)


def format_record(rec: Any, as_json: bool = False) -> str:
    if as_json:
        return orjson.dumps(
            {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset,
             "timestamp_ms": rec.timestamp_ms, "key": rec.key, "value": rec.value}
        ).decode()  # fmt: skip
    at = datetime.fromtimestamp(rec.timestamp_ms / 1000, UTC).astimezone(SHANGHAI)
    line = f"{at:%H:%M:%S.%f}"[:-3] + f" p{rec.partition} {rec.key or '-'}  {summarize(rec.value)}"
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
    stream = consume(bootstrap_of(url), topic, from_beginning=from_beginning, timeout=timeout)
    async with contextlib.aclosing(stream):
        async for rec in stream:
            click.echo(format_record(rec, as_json))
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
