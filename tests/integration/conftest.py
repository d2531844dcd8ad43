"""A real engine worker (``grid worker`` subprocess) on the session's embedded broker."""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from streams import topics as T
from streams.broker import die_with_parent, free_port
from streams.kafka_io import collect, produce_json
from tests.conftest import show_on_failure, start_broker

YANGPU = "310110"
CLOCK_SPEED = 600  # one real second = ten engine minutes: a 2 h deadline passes in 12 s
CLOCK = f"x{CLOCK_SPEED}@{time.time():.3f}"  # one origin: every worker of the session agrees


@functools.cache
def _lattice() -> list[tuple[float, float]]:
    """Points ~300 m apart inside Yangpu cells (the demo tokens' district; the shipped layers
    also hold a suburban district), so test reports never merge by accident."""
    from geodata.locator import Locator

    loc = Locator.load(None)
    comms = loc.layers["communities"]
    minx, miny, maxx, maxy = comms[comms["code"].astype(str).str.startswith(YANGPU)].total_bounds
    grid = [(float(x), float(y)) for x in np.arange(minx, maxx, 0.003)
            for y in np.arange(miny, maxy, 0.003)]
    placed = loc.locate_many([p[0] for p in grid], [p[1] for p in grid], "wgs84")
    return [p for p, pl in zip(grid, placed, strict=True)
            if pl is not None and pl.cell and pl.district == YANGPU]


_next_point = itertools.count()


def fresh_point() -> tuple[float, float]:
    pts = _lattice()
    return pts[next(_next_point) % len(pts)]


def make_report(type_code: str | None = "0101", lon: float | None = None,
                lat: float | None = None, **kw) -> dict:
    if lon is None or lat is None:
        lon, lat = fresh_point()
    r = {"schema": "grid.report/1", "report_id": str(uuid.uuid4()), "source": "supervisor",
         "reporter_id": "sup-test", "reported_at": datetime.now(UTC).isoformat(),
         "location": {"lon": lon, "lat": lat, "crs": "wgs84"}, "type_code": type_code,
         "description": "test report"}
    if type_code is None:
        r.pop("type_code")
    r.update(kw)
    return r


_worker_numbers = itertools.count()


class WorkerProc:
    """A ``grid worker`` subprocess with its own app id, data dir and web port."""

    def __init__(self, broker_url: str, tmp: Path, app_id: str, **env: str) -> None:
        self.broker_url = broker_url
        self.tmp = tmp
        self.app_id = app_id
        self.web_port = free_port()
        self.env = dict(os.environ, GRID_BROKER=broker_url, GRID_APP_ID=app_id,
                        GRID_WEB_PORT=str(self.web_port),
                        GRID_DATA_DIR=str(tmp / "data"), GRID_CLOCK=CLOCK,
                        GRID_TICK_SECONDS="0.5", **env)
        self.log_path = tmp / f"worker-{app_id}-{next(_worker_numbers)}.log"  # one per process
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProc:
        show_on_failure(self.log_path)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([sys.executable, "-m", "grid.cli", "worker"],
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent)  # a killed run leaves none
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 45.0) -> bool:
        """SIGTERM, and wait ``timeout`` s for the process to exit by itself (its loops'
        clean-up is bounded: a commit cut short aborts, producers and consumers close, each
        within 10 s). True if it did; else its asyncio tasks' stacks go to its log
        (SIGUSR1: mode's ``cry``) and it is killed."""
        clean = True
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                clean = False
                self.proc.send_signal(signal.SIGUSR1)
                time.sleep(3)
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()
        return clean

    def log_tail(self, n: int = 80) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def submit(bootstrap: str, reports: list[dict | bytes]) -> None:
    asyncio.run(produce_json(bootstrap, T.REPORTS, reports,
                             key_fn=lambda r: r.get("report_id") if isinstance(r, dict) else None))


def wait_for(bootstrap: str, topic: str, pred, n: int = 1, timeout: float = 30.0) -> list[dict]:
    """Messages of ``topic`` that satisfy ``pred``, once at least ``n`` of them arrived."""
    got = asyncio.run(collect(bootstrap, topic,
                              lambda vs: sum(1 for v in vs if isinstance(v, dict) and pred(v)) >= n,
                              timeout=timeout))
    return [v for v in got if isinstance(v, dict) and pred(v)]


def wait_http(url: str, status: int = 200, timeout: float = 60.0, *,
              headers: dict[str, str] | None = None, proc: subprocess.Popen | None = None,
              log: Callable[[], str] | None = None) -> httpx.Response:
    """GET ``url`` every 0.5 s until it answers ``status``; returns that response.

    Fails saying what it waited for and the last answer (or connection error), with ``log()``
    appended: after ``timeout`` seconds, or at once when ``proc`` (the server) has exited.
    """
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode} while waiting for "
                                 f"GET {url} to answer {status}; last: {last}"
                                 + (f"\n{log()}" if log else ""))
        try:
            r = httpx.get(url, headers=headers, timeout=5)
            if r.status_code == status:
                return r
            last = f"{r.status_code} {r.text[:300]}"
        except httpx.HTTPError as err:
            last = repr(err)
        if time.monotonic() >= deadline:
            raise AssertionError(f"GET {url} did not answer {status} within {timeout:.0f} s; "
                                 f"last: {last}" + (f"\n{log()}" if log else ""))
        time.sleep(0.5)


@pytest.fixture(scope="session")
def engine(broker, tmp_path_factory) -> Iterator[WorkerProc]:
    """One worker for the session; waits until it has processed a probe report."""
    tmp = tmp_path_factory.mktemp("engine")
    w = WorkerProc(broker.url, tmp, f"grid-test-{uuid.uuid4().hex[:6]}").start()
    probe = make_report("0701", description="probe")
    submit(broker.bootstrap, [probe])
    for _ in range(30):  # up to 90 s: group join on Tansu takes a few seconds
        if w.proc.poll() is not None:
            pytest.fail(f"worker exited with {w.proc.returncode}:\n{w.log_tail()}")
        try:
            wait_for(broker.bootstrap, T.CASE_EVENTS,
                     lambda e: e.get("data", {}).get("report", {}).get("report_id")
                     == probe["report_id"], timeout=3)
            break
        except TimeoutError:
            continue
    else:
        w.stop()
        pytest.fail(f"worker did not process a probe report in 90 s:\n{w.log_tail()}")
    yield w
    w.stop()


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A private three-node Kafka cluster (RF 3, ``min.insync.replicas`` 2) for one test:
    the fault and reliability tests crash, stall and restart it."""
    k = start_broker(tmp_path, nodes=3, nodeid=request.node.nodeid)
    try:
        yield k
    finally:
        k.stop()  # type: ignore[attr-defined]
