"""A tiny Faust app for the Tansu smoke test: topic -> table -> topic, batched.

Run as a worker subprocess: ``python -m tests.integration.smoke_app``.
Configured from the environment (SMOKE_BROKER, SMOKE_APP_ID, SMOKE_IN, SMOKE_OUT,
SMOKE_STORE, SMOKE_DATA_DIR, SMOKE_WEB_PORT) so each test run is isolated.

The agent counts messages per key in a table and emits one output per input with
the running count. It batches with ``stream.take`` and sends with ``send_soon``; table
writes re-enter each event's context so the changelog partition is the event's own
partition (with ``take`` the stream's current event is the batch's last one).
"""

from __future__ import annotations

import os
import weakref

import faust
from faust.streams import _current_event

from streams.broker import on_tansu

if on_tansu() and os.environ.get("SMOKE_TANSU_FIX", "1") == "1":
    from streams.tansu import patch_end_offsets

    patch_end_offsets()  # before the worker starts: table recovery reads true highwaters

BROKER = os.environ.get("SMOKE_BROKER", "kafka://127.0.0.1:9092")
APP_ID = os.environ.get("SMOKE_APP_ID", "grid-smoke")
IN = os.environ.get("SMOKE_IN", "smoke.in")
OUT = os.environ.get("SMOKE_OUT", "smoke.out")
PARTITIONS = int(os.environ.get("SMOKE_PARTITIONS", "4"))
WEB_PORT = int(os.environ.get("SMOKE_WEB_PORT", "0"))

app = faust.App(
    APP_ID,
    broker=BROKER,
    store=os.environ.get("SMOKE_STORE", "memory://"),
    datadir=os.environ.get("SMOKE_DATA_DIR", f"/tmp/{APP_ID}-data"),
    topic_replication_factor=1,
    topic_partitions=PARTITIONS,
    # Tansu holds a join until the rebalance timeout: keep it short (see docs/streams-infra.md).
    broker_rebalance_timeout=float(os.environ.get("SMOKE_REBALANCE_TIMEOUT", "3")),
    broker_session_timeout=float(os.environ.get("SMOKE_SESSION_TIMEOUT", "6")),
    broker_heartbeat_interval=1,
    broker_commit_interval=0.5,
    consumer_auto_offset_reset="earliest",
    web_enabled=WEB_PORT > 0,
    web_port=WEB_PORT or 6066,
    web_bind="127.0.0.1",
)

source = app.topic(IN, key_type=str, value_serializer="json", partitions=PARTITIONS)
sink = app.topic(OUT, key_type=str, value_serializer="json", partitions=PARTITIONS)
counts = app.Table("counts", default=int, partitions=PARTITIONS)

if WEB_PORT:
    from faust.sensors.prometheus import setup_prometheus_sensors

    setup_prometheus_sensors(app)


@app.agent(source)
async def count(stream: faust.StreamT) -> None:
    async for batch in stream.take_events(200, within=0.2):
        for event in batch:
            token = _current_event.set(weakref.ref(event))
            try:
                key = event.value["k"]
                counts[key] += 1
                n = counts[key]
            finally:
                _current_event.reset(token)
            sink.send_soon(
                key=key,
                value={"k": key, "seq": event.value["seq"], "count": n,
                       "partition": event.message.partition},
            )  # fmt: skip


if __name__ == "__main__":
    # Programmatic worker: honours app.conf (the ``faust worker`` CLI would override
    # web_enabled from its own --with-web/--without-web flag).
    faust.Worker(app, loglevel="INFO").execute_from_commandline()
