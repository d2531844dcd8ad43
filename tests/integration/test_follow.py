"""The README's first step, as a user types it: ``grid submit --new-id --follow
examples/manhole.json`` against a real worker on the session's broker shows the user's own
report becoming a case and a work order, with names beside the codes and a dashboard link."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from grid.names import Names

ROOT = Path(__file__).resolve().parents[2]
CC = {"Authorization": "Bearer demo-command-center"}
pytestmark = pytest.mark.tansu  # also the zero-install path (Tansu): its end offsets differ


def submit_follow(broker, engine) -> subprocess.CompletedProcess:
    env = dict(os.environ, GRID_WEB_PORT=str(engine.web_port))
    return subprocess.run(
        [sys.executable, "-m", "grid.cli", "submit", "--new-id", "--follow", "--wait", "60",
         "--broker", broker.url, "examples/manhole.json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_submit_follow_shows_my_report_become_a_work_order(broker, engine):
    names = Names.load()
    run = submit_follow(broker, engine)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    rid = out.splitlines()[0]
    assert re.fullmatch(r"[0-9a-f-]{36}", rid) and rid != "3f0c2b9e-5d1a-4c7e-9b2f-0a1d2c3e4f51"
    m = re.search(rf"report {rid} → case (\S+?)[;( ]", out)
    assert m, out
    case_id = m.group(1)
    assert f"http://127.0.0.1:{engine.web_port}/#case={case_id}" in out
    case = httpx.get(f"http://127.0.0.1:{engine.web_port}/api/v1/cases/{case_id}", headers=CC,
                     timeout=10).json()
    if "(merged: a duplicate of an open case)" in out:  # an earlier run's case is still open
        assert case["report_count"] >= 2
        return
    wo = next(line for line in out.splitlines() if "WORK ORDER" in line)
    assert f"WORK ORDER URGENT → {names.department(case['department'])}" in wo
    assert names.type("0101") in wo and names.place(case_id.split("-")[0]) in wo
    assert f"case {case_id}" in wo and "dispose by " in wo
    assert f"case {case_id} #1 reported: new case" in out
    alert = next(line for line in out.splitlines() if "ALERT key_supervision" in line)
    assert "on site by " in alert and names.place(case_id.split("-")[0]) in alert
