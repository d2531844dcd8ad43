"""Reliability: SIGKILL crashes, a rebalance, a broker stall — nothing lost, nothing doubled.

Each test runs on its own embedded broker (the stream of 20,000 reports and the restarts must
not disturb other tests) and checks the whole output with
:func:`tests.integration.reliability.check_run` (see its module docstring for exactly what
is asserted).
"""

from __future__ import annotations

import random
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import start_broker
from tests.integration.conftest import WorkerProc
from tests.integration.reliability import check_run, produce, sim_messages, wait_accounted

pytestmark = pytest.mark.integration


@pytest.fixture
def private_broker(tmp_path, request) -> Iterator[Any]:
    b = start_broker(tmp_path, nodeid=request.node.nodeid)
    try:
        yield b
    finally:
        b.stop()


def worker(broker: Any, tmp_path, app_id: str) -> WorkerProc:
    w = WorkerProc(broker.url, tmp_path, app_id)
    w.env["GRID_CLOCK"] = "system"  # no escalations: the run is about delivery
    return w.start()


def chunks(items: list, n: int) -> list[list]:
    size = -(-len(items) // n)
    return [items[i:i + size] for i in range(0, len(items), size)]


def test_sigkill_during_20000_reports_loses_and_doubles_nothing(private_broker, tmp_path):
    rng = random.Random(42)
    app_id = f"crash-{uuid.uuid4().hex[:6]}"
    raws, bad = sim_messages(20_000, seed=101)
    w = worker(private_broker, tmp_path, app_id)
    workers = [w]
    kills = 0
    try:
        for i, part in enumerate(chunks(raws, 10)):
            produce(private_broker.bootstrap, part)
            time.sleep(rng.uniform(0.5, 3.0))
            if i in (1, 4, 7):  # three SIGKILLs at random moments of the flow
                assert w.proc.poll() is None, f"worker died by itself:\n{w.log_tail()}"
                w.kill(signal.SIGKILL)
                kills += 1
                w = worker(private_broker, tmp_path, app_id)
                workers.append(w)
        log = wait_accounted(private_broker.bootstrap, raws, bad, timeout=240)
        counts = check_run(log, raws, bad, private_broker.bootstrap)
        assert kills == 3 and w.proc.poll() is None
        assert counts["cases"] > 5_000  # many simulated reports merge as duplicates
    finally:
        for x in workers:
            x.stop()


def test_rebalance_when_one_of_two_workers_stops(private_broker, tmp_path):
    app_id = f"rebal-{uuid.uuid4().hex[:6]}"
    raws, bad = sim_messages(8_000, seed=202)
    a = worker(private_broker, tmp_path, app_id)
    b = worker(private_broker, tmp_path, app_id)
    try:
        parts = chunks(raws, 4)
        produce(private_broker.bootstrap, parts[0])
        time.sleep(8)  # both have joined and share the partitions
        produce(private_broker.bootstrap, parts[1])
        b.stop()  # leaves the group mid-stream; a takes over its partitions
        assert b.proc.returncode is not None
        for part in parts[2:]:
            produce(private_broker.bootstrap, part)
        log = wait_accounted(private_broker.bootstrap, raws, bad, timeout=180)
        check_run(log, raws, bad, private_broker.bootstrap)
        assert a.proc.poll() is None
        assert "Traceback" not in a.log_tail(400)
    finally:
        a.stop()
        b.stop()


def test_broker_stall_of_30s_worker_survives_and_resumes(private_broker, tmp_path):
    app_id = f"stall-{uuid.uuid4().hex[:6]}"
    raws, bad = sim_messages(3_000, seed=303)
    before, after = raws[:1500], raws[1500:]
    w = worker(private_broker, tmp_path, app_id)
    try:
        produce(private_broker.bootstrap, before)
        wait_accounted(private_broker.bootstrap, before, bad, timeout=120)
        private_broker.pause()
        try:
            time.sleep(30)
            assert w.proc.poll() is None, f"worker died during the stall:\n{w.log_tail()}"
        finally:
            private_broker.resume()
        produce(private_broker.bootstrap, after)
        log = wait_accounted(private_broker.bootstrap, raws, bad, timeout=180)
        check_run(log, raws, bad, private_broker.bootstrap)
        assert w.proc.poll() is None, f"worker died after the stall:\n{w.log_tail()}"
    finally:
        w.stop()
