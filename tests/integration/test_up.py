"""``grid up`` on Apache Kafka, as a user runs it: a report survives Ctrl-C and a restart (and
is served from the SQLite read store at once, nothing replayed; ``grid report`` finds it),
a second instance on the same home refuses to start, and a killed ``grid up`` leaves no
broker behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from streams.broker import api_versions_ok, free_port
from tests.conftest import REPO, show_on_failure
from tests.integration.conftest import make_report, wait_http

SUP = {"Authorization": "Bearer demo-supervisor"}


class Up:
    """One ``grid up --embedded kafka`` process with its own home and web port."""

    def __init__(self, home: Path, web_port: int, name: str) -> None:
        self.home, self.web_port = home, web_port
        self.log = home.parent / f"{name}.log"
        show_on_failure(self.log)
        env = dict(os.environ, GRID_HOME=str(home))
        env.pop("GRID_BROKER", None)
        env.pop("GRID_BROKER_KIND", None)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "grid.cli", "up", "--embedded", "kafka",
                 "--web-port", str(web_port), "--partitions", "2"],
                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/api/v1"

    def wait_serving(self, timeout: float = 120) -> None:
        wait_http(f"{self.api}/health", timeout=timeout, proc=self.proc, log=self.output)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def case_of(api: str, report_id: str, timeout: float = 90) -> dict:
    return wait_http(f"{api}/reports/{report_id}", timeout=timeout, headers=SUP).json()


def broker_port(home: Path) -> int:
    url = (home / "broker").read_text().split()[0]
    return int(url.rsplit(":", 1)[1])


def test_grid_up_on_kafka_keeps_a_case_across_a_restart(tmp_path):
    home = tmp_path / "home"
    first = Up(home, free_port(), "up-1")
    try:
        first.wait_serving()
        assert "kind=kafka" in (home / "broker").read_text()
        report = make_report("0101", description="井盖缺失 restart test", reporter_id="sup-0042")
        assert httpx.post(f"{first.api}/reports", json=report, headers=SUP,
                          timeout=10).status_code == 202
        before = case_of(first.api, report["report_id"])

        second = Up(home, free_port(), "up-2")  # same home: must refuse, not take over
        assert second.proc.wait(60) != 0
        refusal = second.output()
        assert "already running with GRID_HOME" in refusal and "GRID_HOME=/some/other/dir" \
            in refusal
        assert first.proc.poll() is None
    finally:
        assert first.stop() == 0
    assert "grid up: stopped." in first.output()
    assert "Apache Kafka" in first.output()

    stored = stored_offsets(home)
    assert sum(stored.values()) >= 3  # reported, filed, dispatched at least

    again = Up(home, first.web_port, "up-3")
    try:
        again.wait_serving()
        # the list comes from the SQLite store at once: nothing is replayed into memory
        listed = httpx.get(f"{again.api}/cases", headers=SUP, timeout=10).json()
        assert [c["case_id"] for c in listed["items"]] == [before["case_id"]]
        after = case_of(again.api, report["report_id"])
        assert after["case_id"] == before["case_id"]
        assert httpx.get(f"{again.api}/cases/{after['case_id']}", headers=SUP,
                         timeout=10).json()["type_code"] == "0101"
        assert "emptying the store" not in again.output()
        today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
        out = subprocess.run(
            [sys.executable, "-m", "grid.cli", "report", "--district", "310110", "--from",
             today, "--to", today, "--format", "json"], cwd=REPO, capture_output=True,
            env=dict(os.environ, GRID_HOME=str(home)), timeout=60, text=True)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["total"]["dispatched"] == 1
    finally:
        again.stop()
    assert stored_offsets(home) == stored  # the restart resumed from the stored offsets


def stored_offsets(home: Path) -> dict[tuple[str, int], int]:
    """The read store's consumed offsets in ``grid up``'s SQLite file."""
    import sqlite3

    with sqlite3.connect(home / "data" / "store.db") as db:
        return {(t, p): o for t, p, o in db.execute(
            "SELECT topic, partition, next_offset FROM consumed_offsets")}


def test_killed_grid_up_leaves_no_broker_running(tmp_path):
    home = tmp_path / "home"
    up = Up(home, free_port(), "up-kill")
    try:
        up.wait_serving()
        port = broker_port(home)
        assert api_versions_ok("127.0.0.1", port)
        up.stop(signal.SIGKILL)
        deadline = time.monotonic() + 60
        while api_versions_ok("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not api_versions_ok("127.0.0.1", port), "the broker outlived a killed grid up"
    finally:
        up.stop(signal.SIGKILL)


def test_grid_kafka_start_records_the_broker_and_stops_on_ctrl_c(tmp_path):
    home = tmp_path / "home"
    log = tmp_path / "kafka-start.log"
    show_on_failure(log)
    env = dict(os.environ, GRID_HOME=str(home))
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "grid.cli", "kafka", "start"], cwd=REPO,
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "Ctrl-C to stop" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.3)
        recorded = (home / "broker").read_text().split()
        assert recorded[1] == "kind=kafka"
        port = int(recorded[0].rsplit(":", 1)[1])
        assert api_versions_ok("127.0.0.1", port)
        assert f"bootstrap 127.0.0.1:{port}" in log.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert not (home / "broker").exists()  # the record goes with the broker
    assert not api_versions_ok("127.0.0.1", port)
    assert "Kafka Server started" in (home / "kafka" / "node-1.log").read_text()
