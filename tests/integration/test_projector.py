"""The projector process on a real Apache Kafka and a real PostgreSQL: SIGKILLed three times
while 20,000 case events flow, then two projectors sharing the partitions; the store ends
with every event once and every case as the in-memory fold of the whole log has it."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from grid.projection import Projection
from grid.report import read_jsonl
from store import schema as S
from store.db import connect
from store.reader import ReadStore
from streams import topics as T
from streams.kafka_io import consume, produce_json

pytestmark = pytest.mark.integration

LOG = Path(__file__).parent.parent / "fixtures" / "events" / "district.jsonl"
REPO = Path(__file__).parent.parent.parent
NOW = datetime(2026, 3, 25, 12, tzinfo=timezone(timedelta(hours=8)))
EVENTS = 20_000


def cloned_log(n: int) -> list[dict]:
    """``n`` events: the fixture log's cases again and again under new case and report ids."""
    with LOG.open("rb") as f:
        base = list(read_jsonl(f))
    out: list[dict] = []
    while len(out) < n:
        tag = uuid.uuid4().hex[:8]
        for e in base:
            e = orjson.loads(orjson.dumps(e))
            cid = f"{e['case_id']}-{tag}"
            e["event_id"] = e["event_id"].replace(e["case_id"], cid)
            e["case_id"] = cid
            r = (e.get("data") or {}).get("report")
            if r:
                r["report_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, r["report_id"] + tag))
            out.append(e)
    return out[:n]


def projector(bootstrap: str, url: str, app_id: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "grid.cli", "projector", "--store", url, "--broker", bootstrap,
         "--app-id", app_id], cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        env={**os.environ}, start_new_session=True)


def sse_lines(r) -> object:
    """Lines of a server-sent event stream as the spec splits them: at CR or LF only (not at
    U+2028 and the like, which a JSON payload may hold raw, as httpx's iter_lines would)."""
    buf = b""
    for chunk in r.iter_bytes():
        buf += chunk
        *lines, buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        yield from (line.decode() for line in lines)


def cid_of(report: dict) -> str:
    """The case id a Yangpu report opens (its street from the shipped locator)."""
    from grid.models import case_id_for

    loc = report["location"]
    return case_id_for(report["report_id"], _locator().locate(loc["lon"], loc["lat"]).street)


@functools.cache
def _locator():
    from geodata.locator import Locator

    return Locator.load(None)


def stored(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(S.case_events))


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_sigkilled_projector_stores_every_event_once(broker, store_url, tmp_path):
    events = cloned_log(EVENTS)
    engine = connect(store_url)
    log = tmp_path / "projector.log"
    app_id = f"grid-proj-{uuid.uuid4().hex[:6]}"

    def feed() -> None:  # 20 batches over about 20 s
        for i in range(0, len(events), 1000):
            asyncio.run(produce_json(broker.bootstrap, T.CASE_EVENTS, events[i:i + 1000],
                                     key_fn=lambda e: e["case_id"]))
            time.sleep(1)

    feeder = threading.Thread(target=feed)
    feeder.start()
    kills = 0
    try:
        for target in (2_000, 7_000, 12_000):  # SIGKILL at three points of the flow
            proc = projector(broker.bootstrap, store_url, app_id, log)
            deadline = time.monotonic() + 120
            while stored(engine) < target:
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"stuck below {target}: {stored(engine)}"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
    finally:
        feeder.join()
    assert kills == 3
    log_events = asyncio.run(_read_log(broker.bootstrap))
    mine = {e["event_id"] for e in events}
    assert mine <= {e["event_id"] for e in log_events}
    # two projectors share the partitions for the rest (a rebalance while they write)
    procs = [projector(broker.bootstrap, store_url, app_id, log) for _ in range(2)]
    try:
        want = len({e["event_id"] for e in log_events})
        deadline = time.monotonic() + 180
        while stored(engine) < want:
            assert all(p.poll() is None for p in procs), log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{stored(engine)} of {want} events stored"
            time.sleep(0.2)
        time.sleep(1)  # anything beyond the log would show now
        assert stored(engine) == want
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    assert log.read_text().count("caught up") >= 1
    p = Projection()
    p.apply_all(log_events)
    rs = ReadStore(engine)
    with engine.connect() as conn:
        ids = set(conn.scalars(select(S.case_events.c.event_id)))
    assert ids == {e["event_id"] for e in log_events}
    assert rs.count() == len(p.cases)
    mine_cases = {e["case_id"] for e in events}
    for cid in mine_cases:
        assert rs.get(cid).to_dict(NOW) == p.cases[cid].to_dict(NOW), cid


async def _read_log(bootstrap: str) -> list[dict]:
    return [r.value async for r in consume(bootstrap, T.CASE_EVENTS, idle=3.0)
            if isinstance(r.value, dict)]


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_worker_without_a_projector_serves_the_shared_store_and_live_events(broker, store_url,
                                                                             tmp_path):
    """compose's layout: a grid projector fills PostgreSQL; the worker runs none, reads the
    store and streams each event to the dashboard once the store holds it."""
    import httpx

    from tests.integration.conftest import WorkerProc, make_report, wait_http

    app_id = f"grid-shared-{uuid.uuid4().hex[:6]}"
    log = tmp_path / "projector.log"
    proj = projector(broker.bootstrap, store_url, app_id, log)
    w = WorkerProc(broker.url, tmp_path, app_id, GRID_STORE_URL=store_url,
                   GRID_PROJECTOR="0").start()
    try:
        base = f"http://127.0.0.1:{w.web_port}"
        wait_http(f"{base}/api/v1/ready", timeout=120, proc=w.proc, log=w.log_tail)
        deadline = time.monotonic() + 180  # the projector first stores the session's log
        while "caught up" not in log.read_text():
            assert proj.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        deadline = time.monotonic() + 30
        while True:
            health = httpx.get(f"{base}/api/v1/health", timeout=10).json()
            state = health["consumers"]["live_feed"]["state"]
            if state == "running" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert state == "running"
        assert "projector" not in health["consumers"]
        seen: list[dict] = []
        heard: list[str] = []  # every event line, for the failure message
        errors: list[BaseException] = []
        report = make_report("0101", description="井盖缺失 live feed", reporter_id="sup-0042")

        def listen() -> None:
            try:
                with httpx.stream("GET", f"{base}/dashboard/events", timeout=90, headers={
                        "Authorization": "Bearer demo-command-center"}) as r:
                    kind = None
                    for line in sse_lines(r):
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: ") and kind == "event":
                            msg = orjson.loads(line[6:])
                            heard.append(f"{msg['event']['type']} {msg['event']['case_id']}")
                            if msg["event"]["case_id"] == cid_of(report):
                                seen.append(msg)
                                if msg["event"]["type"] == "dispatched":
                                    return
            except BaseException as err:  # told in the assertion below
                errors.append(err)

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        time.sleep(1.0)  # the stream is open before the report goes in
        r = httpx.post(f"{base}/api/v1/reports", json=report, timeout=10,
                       headers={"Authorization": "Bearer demo-supervisor"})
        assert r.status_code == 202, r.text
        t.join(90)
        assert not errors and not t.is_alive(), (errors, heard[-20:], w.log_tail())
        flow = ["reported", "filed", "dispatched"]
        assert [m["event"]["type"] for m in seen] == flow
        # each event was published once the store held it: the case row is at that event's
        # state or a later one (a batch stores several events at once)
        for i, m in enumerate(seen):
            assert m["case"]["state"] in flow[i:], (i, m)
        cid = seen[0]["event"]["case_id"]
        listed = httpx.get(f"{base}/api/v1/cases", params={"limit": 500}, timeout=10,
                           headers={"Authorization": "Bearer demo-command-center"}).json()
        assert cid in [c["case_id"] for c in listed["items"]]
        assert not list(tmp_path.glob("data/store.db"))  # no private store in the worker
    finally:
        w.stop()
        proj.terminate()
        proj.wait(30)
