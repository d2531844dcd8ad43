"""Health tells the truth: a worker whose broker stalls while reports wait turns
``/api/v1/health`` to 503 (a stuck consumer, in words) within seconds, and back to 200 once
the broker answers again; ``/api/v1/ready`` says when the worker can serve."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import httpx
import pytest

from streams import topics as T
from streams.kafka_io import produce_json
from tests.conftest import start_broker
from tests.integration.conftest import WorkerProc, make_report, wait_http

STUCK_SECONDS = 5


def get(url: str) -> tuple[int, dict]:
    r = httpx.get(url, timeout=10)
    return r.status_code, r.json()


@pytest.fixture
def stalling_engine(tmp_path, request):
    broker = start_broker(tmp_path, nodeid=request.node.nodeid)
    w = WorkerProc(broker.url, tmp_path, f"health-{uuid.uuid4().hex[:6]}",
                   GRID_STUCK_SECONDS=str(STUCK_SECONDS)).start()
    try:
        yield broker, w
    finally:
        w.stop()
        broker.stop()


def test_health_fails_while_the_broker_stalls_and_recovers_after(stalling_engine):
    broker, w = stalling_engine
    api = f"http://127.0.0.1:{w.web_port}/api/v1"

    def poll(path: str, status: int, timeout: float) -> dict:
        return wait_http(f"{api}/{path}", status, timeout, proc=w.proc, log=w.log_tail).json()

    ready = poll("ready", 200, timeout=120)
    assert ready == {"ready": True, "reasons": []}
    status, healthy = get(f"{api}/health")
    assert status == 200 and healthy["status"] == "ok" and healthy["reasons"] == []
    assert set(healthy["consumers"]) == {"intake", "cases", "projector"}
    assert healthy["consumers"]["intake"]["state"] == "running"
    assert "tokens" not in healthy

    stop = threading.Event()

    def feed() -> None:  # a steady stream, so that reports are in flight when it stalls
        while not stop.is_set():
            try:
                asyncio.run(produce_json(broker.bootstrap, T.REPORTS,
                                         [make_report("0601") for _ in range(10)],
                                         key_fn=lambda r: r["report_id"]))
            except Exception:  # the broker is frozen: try again
                time.sleep(0.2)
            time.sleep(0.1)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        time.sleep(3)
        broker.pause(1)
        try:
            failing = poll("health", 503, timeout=STUCK_SECONDS + 25)
            metrics = httpx.get(f"http://127.0.0.1:{w.web_port}/metrics", timeout=10).text
        finally:
            broker.resume(1)
        assert failing["status"] == "failing"
        stuck = {name: c for name, c in failing["consumers"].items() if c["stuck"]}
        assert stuck and all(c["state"] == "stuck" for c in stuck.values())
        assert any("nothing was committed" in r or "loop has not come round" in r
                   for r in failing["reasons"]), failing["reasons"]
        assert any(f'grid_consumer_stuck{{consumer="{name}"}} 1.0' in metrics
                   for name in stuck), [x for x in metrics.splitlines() if "stuck" in x]
        recovered = poll("health", 200, timeout=90)
        assert recovered["status"] == "ok" and not any(
            c["stuck"] for c in recovered["consumers"].values())
    finally:
        stop.set()
        feeder.join(30)
    assert w.proc.poll() is None, w.log_tail()
