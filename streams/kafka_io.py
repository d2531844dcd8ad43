"""Small aiokafka helpers: produce JSON, read a topic, collect until a condition holds.

Used by the CLI (``grid submit``, ``grid tail``), the simulator and the tests; the
engine's own consumers (intake, read model) restart through :func:`run_forever`.
Bootstrap strings may be ``host:port[,host:port]`` or ``kafka://host:port``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.broker import bootstrap_of, client_security, on_tansu
from streams.tansu import true_end_offsets

KeyFn = Callable[[Any], "str | bytes | None"]
log = logging.getLogger(__name__)


async def run_forever(consume: Callable[[], Any], what: str, pause: float = 2.0,
                      health: Any = None) -> None:
    """Await ``consume()`` again and again until cancelled; a failure is logged, told to
    ``health`` (a :class:`streams.health.ConsumerHealth`) and the consumer replaced after
    ``pause`` seconds (the engine's background consumers). Once cancelled it ends, even when
    ``consume`` swallowed the cancellation or its clean-up raised something else instead."""
    while True:
        try:
            await consume()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if _cancelling():
                raise asyncio.CancelledError(f"{what} stopping") from err
            log.exception("%s failed; restarting in %g s", what, pause)
            if health is not None:
                health.failed(err)
            await asyncio.sleep(pause)
        if _cancelling():  # the consumer returned (or swallowed the cancel): do not restart
            raise asyncio.CancelledError(f"{what} stopping")


async def position(cons: AIOKafkaConsumer, tp: TopicPartition, timeout: float = 1.0) -> int:
    """``cons.position(tp)``, waiting ``timeout`` seconds at most (TimeoutError). Uses
    ``asyncio.timeout``: Python 3.11's ``wait_for`` loses a cancellation that arrives as the
    awaited call completes, and a loop stopping would then go on."""
    async with asyncio.timeout(timeout):
        return await cons.position(tp)


STOP_SECONDS = 10.0  # a stopping client (producer or consumer) waits this long at most


async def stop_client(client: AIOKafkaConsumer | AIOKafkaProducer,
                      timeout: float = STOP_SECONDS) -> None:
    """``client.stop()`` (a consumer leaves its group, a producer flushes), waiting
    ``timeout`` seconds at most: with its broker gone it would wait out a 40 s request
    timeout, and a worker asked to stop must stop. Past the bound the client is dropped
    (logged; a consumer group's session timeout then frees its partitions); a stop that
    fails (a fenced producer, a broken connection) is logged and ends it too."""
    kind = "producer" if isinstance(client, AIOKafkaProducer) else "consumer"
    try:
        async with asyncio.timeout(timeout):
            await client.stop()
    except TimeoutError:
        log.warning("a %s did not stop within %g s; dropped", kind, timeout)
    except Exception as err:
        log.info("a %s stopped with an error: %r", kind, err)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@dataclass(frozen=True)
class Record:
    """A consumed message: value is decoded JSON when it parses, else the raw text."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    value: Any
    raw: bytes


def encode(message: Any) -> bytes:
    """bytes/str pass through unchanged; pydantic models and plain data become JSON."""
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        return message.encode()
    if hasattr(message, "model_dump"):
        message = message.model_dump(mode="json", by_alias=True)
    return orjson.dumps(message)


def decode(raw: bytes | None) -> Any:
    """JSON value of ``raw``, or its text when it is not JSON."""
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")


def _key_bytes(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


def producer(bootstrap: str, **kw: Any) -> AIOKafkaProducer:
    """An unstarted aiokafka producer with batching defaults (acks=all, small linger)."""
    opts: dict[str, Any] = {"acks": "all", "linger_ms": 5, "request_timeout_ms": 15000}
    opts.update(kw)
    return AIOKafkaProducer(bootstrap_servers=bootstrap_of(bootstrap), **client_security(),
                            **opts)


async def send_all(
    prod: AIOKafkaProducer, topic: str, messages: Iterable[Any], key_fn: KeyFn | None = None
) -> list[Any]:
    """Send messages through a started producer, batched; returns RecordMetadata in order."""
    futs = [
        await prod.send(topic, encode(m), key=_key_bytes(key_fn(m) if key_fn else None))
        for m in messages
    ]
    return list(await asyncio.gather(*futs))


async def produce_json(
    bootstrap: str,
    topic: str,
    messages: Iterable[Any],
    key_fn: KeyFn | None = None,
    timeout: float = 30.0,
) -> list[Any]:
    """Produce messages (dicts, models, or raw str/bytes) and wait for every ack."""
    prod = producer(bootstrap)
    await asyncio.wait_for(prod.start(), timeout)
    try:
        return await asyncio.wait_for(send_all(prod, topic, messages, key_fn), timeout)
    finally:
        await prod.stop()


async def _partitions(
    cons: AIOKafkaConsumer, topic: str, timeout: float | None
) -> list[TopicPartition]:
    deadline = time.monotonic() + (timeout if timeout is not None else 3600 * 24 * 365)
    while True:
        cluster = await cons._client.fetch_all_metadata()  # fresh, not the cached view
        if parts := cluster.partitions_for_topic(topic):
            return [TopicPartition(topic, p) for p in sorted(parts)]
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topic {topic!r} does not exist")
        await asyncio.sleep(0.5)


async def consume(
    bootstrap: str,
    topic: str,
    from_beginning: bool = True,
    timeout: float | None = None,
    idle: float | None = None,
) -> AsyncIterator[Record]:
    """Yield a topic's messages (all partitions, no consumer group, no commits).

    Stops after ``timeout`` seconds in total, or ``idle`` seconds without a message;
    runs forever when both are None. Without ``from_beginning`` only messages
    produced after the call are seen. Waits for the topic to exist.
    """
    cons = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_of(bootstrap),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",  # what the engine committed, once
        auto_offset_reset="earliest",
        **client_security(),
    )
    await cons.start()
    start = last = time.monotonic()
    try:
        tps = await _partitions(cons, topic, timeout)
        cons.assign(tps)
        if not from_beginning:
            ends = await cons.end_offsets(tps)
            if on_tansu():  # Tansu only: its "latest" is wrong after a batch (streams.tansu)
                ends = await true_end_offsets(cons._client._bootstrap_servers, ends)
            for tp, end in ends.items():
                cons.seek(tp, end)
    except BaseException:
        await cons.stop()
        raise
    try:
        while True:
            now = time.monotonic()
            if timeout is not None and now - start >= timeout:
                return
            if idle is not None and now - last >= idle:
                return
            batches = await cons.getmany(timeout_ms=200, max_records=1000)
            for tp_records in batches.values():
                for m in tp_records:
                    last = time.monotonic()
                    yield Record(
                        topic=m.topic,
                        partition=m.partition,
                        offset=m.offset,
                        timestamp_ms=m.timestamp,
                        key=m.key.decode(errors="replace") if m.key is not None else None,
                        value=decode(m.value),
                        raw=m.value or b"",
                    )
    finally:
        await cons.stop()


async def collect_records(
    bootstrap: str,
    topic: str,
    until: Callable[[list[Record]], bool],
    timeout: float = 20.0,
    from_beginning: bool = True,
) -> list[Record]:
    """Read records until ``until(records)`` holds; TimeoutError (with what was seen) if not."""
    seen: list[Record] = []
    if until(seen):
        return seen
    stream = consume(bootstrap, topic, from_beginning=from_beginning, timeout=timeout)
    async with aclosing(stream):
        async for rec in stream:
            seen.append(rec)
            if until(seen):
                return seen
    raise TimeoutError(
        f"{topic}: condition not met within {timeout}s after {len(seen)} messages; "
        f"last: {[r.value for r in seen[-3:]]!r}"
    )


async def collect(
    bootstrap: str,
    topic: str,
    until: Callable[[list[Any]], bool],
    timeout: float = 20.0,
    from_beginning: bool = True,
) -> list[Any]:
    """Like :func:`collect_records` on message values (decoded JSON dicts)."""
    recs = await collect_records(
        bootstrap, topic, lambda rs: until([r.value for r in rs]), timeout, from_beginning
    )
    return [r.value for r in recs]
