"""Who may write to Kafka, on a real secured Apache Kafka (SASL SCRAM-SHA-512, ACLs from
deploy/kafka/principals.yaml): a worker authenticated as ``worker`` turns a report that the
hotline principal wrote to its own intake topic into a case, and records that principal; a
report there with a source the hotline may not send is dead-lettered; the hotline writes
nothing else; a reader reads outputs and writes nothing; the projector principal fills a read
store and writes nothing; a client without credentials gets nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from streams import topics as T
from streams.kafka_server import EmbeddedKafka
from tests.conftest import show_on_failure
from tests.integration.conftest import WorkerProc, make_report


@pytest.fixture
def secured(tmp_path, request):
    k = EmbeddedKafka(nodes=1, data_dir=tmp_path / "kafka", topics=T.ALL_TOPICS, secure=True)
    show_on_failure(k.log_path(1), request.node.nodeid)
    k.start()
    try:
        yield k
    finally:
        k.stop()


async def _send(k: EmbeddedKafka, security: dict, topic: str, value: bytes) -> str:
    """'ok', or the name of the error the broker answered with."""
    prod = AIOKafkaProducer(bootstrap_servers=k.bootstrap, request_timeout_ms=8000,
                            **security)
    try:
        await asyncio.wait_for(prod.start(), 15)
        await asyncio.wait_for(prod.send_and_wait(topic, value), 15)
        return "ok"
    except (TopicAuthorizationFailedError, KafkaConnectionError) as err:
        return type(err).__name__
    finally:
        await prod.stop()


async def _read_until(k: EmbeddedKafka, security: dict, topic: str, pred,
                      timeout: float = 90) -> dict:
    cons = AIOKafkaConsumer(topic, bootstrap_servers=k.bootstrap, group_id=None,
                            auto_offset_reset="earliest", **security)
    await cons.start()
    try:
        async with asyncio.timeout(timeout):
            while True:
                for records in (await cons.getmany(timeout_ms=500)).values():
                    for r in records:
                        v = json.loads(r.value)
                        if pred(v):
                            return v
    finally:
        await cons.stop()


def test_only_the_granted_principals_write_and_read(secured, tmp_path):
    k = secured
    report = make_report(None, source="hotline_12345", reporter_id="hotline-12345",
                         description="小区门口有零星垃圾 garbage at the gate")
    raw = json.dumps(report).encode()
    assert asyncio.run(_send(k, {}, T.REPORTS_HOTLINE, raw)) == "KafkaConnectionError"
    for topic in (T.DISPATCH, T.REPORTS, T.REPORTS_GATEWAY):  # only its own intake topic
        assert asyncio.run(_send(k, k.security("hotline"), topic, b"{}")) == \
            "TopicAuthorizationFailedError", topic
    assert asyncio.run(_send(k, k.security("reader"), T.REPORTS, raw)) == \
        "TopicAuthorizationFailedError"
    assert asyncio.run(_send(k, k.security("gateway"), T.CASE_EVENTS, b"{}")) == \
        "TopicAuthorizationFailedError"

    w = WorkerProc(k.url, tmp_path, f"grid-secure-{uuid.uuid4().hex[:6]}",
                   GRID_KAFKA_USER="worker", GRID_KAFKA_PASSWORD=k.passwords["worker"]).start()
    try:
        forged = make_report("0101", source="supervisor", reporter_id="sup-0042")
        for r in (report, forged):
            assert asyncio.run(_send(k, k.security("hotline"), T.REPORTS_HOTLINE,
                                     json.dumps(r).encode())) == "ok"
        event = asyncio.run(_read_until(
            k, k.security("reader"), T.CASE_EVENTS,
            lambda e: e.get("type") == "reported"
            and e["data"]["report"]["report_id"] == report["report_id"]))
        assert event["data"]["report"]["source"] == "hotline_12345"
        assert event["data"]["via"] == "hotline"  # the principal that wrote it
        dead = asyncio.run(_read_until(k, k.security("reader"), T.DLQ,
                                       lambda d: d.get("report_id") == forged["report_id"]))
        assert dead["reason"] == "source_not_allowed"
        assert "'hotline' writes grid.reports.hotline.v1" in dead["message"]
        with pytest.raises(TopicAuthorizationFailedError):
            asyncio.run(_read_until(k, k.security("gateway"), T.CASE_EVENTS, bool, 15))
        assert w.proc.poll() is None, w.log_tail()
        # the projector principal fills a read store from the outputs, and writes nothing
        assert asyncio.run(_send(k, k.security("projector"), T.CASE_EVENTS, b"{}")) == \
            "TopicAuthorizationFailedError"
        assert _projected(k, tmp_path, report["report_id"]) == event["case_id"]
    finally:
        w.stop()


def _projected(k: EmbeddedKafka, tmp_path, report_id: str, timeout: float = 90) -> str | None:
    """Run ``grid projector`` as the ``projector`` principal until the report's case is in
    its store; the case id (None on timeout)."""
    from store.db import connect
    from store.reader import ReadStore

    url = f"sqlite:///{tmp_path / 'shared-store.db'}"
    log = tmp_path / "projector.log"
    show_on_failure(log)
    env = {**os.environ, "GRID_KAFKA_USER": "projector",
           "GRID_KAFKA_PASSWORD": k.passwords["projector"]}
    proc = subprocess.Popen([sys.executable, "-m", "grid.cli", "projector", "--store", url,
                             "--broker", k.url], env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        rs = ReadStore(connect(url))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            if (cid := rs.case_for_report(report_id)) is not None:
                return cid
            time.sleep(0.5)
        return None
    finally:
        proc.terminate()
        proc.wait(30)
