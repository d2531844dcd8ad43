"""/metrics scraped by a real Prometheus server (Debian's ``prometheus``), checked with PromQL,
and the exposition linted by ``promtool check metrics``.

Counting reports needs a log nobody else writes to, so this module runs its own embedded
broker and worker: the worker's counters then cover exactly the reports sent here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from streams import topics as T
from streams.broker import free_port
from tests.conftest import start_broker
from tests.integration.conftest import WorkerProc, make_report, submit, wait_for, wait_http
from tests.integration.test_pipeline import command

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None,
                                reason="Debian prometheus not installed (apt-get install "
                                "prometheus)")


@pytest.fixture(scope="module")
def own_engine(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics")
    broker = start_broker(tmp)
    try:
        w = WorkerProc(broker.url, tmp, f"grid-metrics-{uuid.uuid4().hex[:6]}").start()
        try:
            wait_http(f"http://127.0.0.1:{w.web_port}/metrics", timeout=90, proc=w.proc,
                      log=w.log_tail)
            yield broker, w
        finally:
            w.stop()
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def prometheus(own_engine, tmp_path_factory):
    _broker, worker = own_engine
    tmp = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: grid
    static_configs:
      - targets: ["127.0.0.1:{worker.web_port}"]
""")
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}",
                             f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", timeout=30, proc=proc,
                  log=lambda: (tmp / "prometheus.log").read_text(errors="replace")[-3000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def query(url: str, promql: str) -> float | None:
    r = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert r["status"] == "success", r
    res = r["data"]["result"]
    return float(res[0]["value"][1]) if res else None


def eventually(fn, want, timeout: float = 60):
    deadline = time.monotonic() + timeout
    got = fn()
    while got != want and time.monotonic() < deadline:
        time.sleep(0.5)
        got = fn()
    return got


def test_prometheus_scrapes_report_counts(own_engine, prometheus):
    broker, worker = own_engine
    good = [make_report("0601", source="video", reporter_id="cam-1", description="垃圾")
            for _ in range(5)] + [make_report("0101", description="井盖缺失")
                                  for _ in range(2)]
    bad = make_report("0101")
    bad["location"]["lat"] = 95.0  # schema error → DLQ
    submit(broker.bootstrap, [*good, bad, b"not json"])
    ids = {r["report_id"] for r in good}
    opened = wait_for(broker.bootstrap, T.CASE_EVENTS,
                      lambda e: e["type"] == "reported"
                      and e["data"]["report"]["report_id"] in ids,
                      n=len(ids), timeout=120)  # the worker's group join on Tansu takes seconds
    # one command, so that the case loop has read from both of its topics
    case_id = opened[0]["case_id"]
    command(broker.bootstrap, case_id, "accept", "dept-x", "department")
    wait_for(broker.bootstrap, T.CASE_EVENTS,
             lambda e: e["case_id"] == case_id and e["type"] in ("accepted", "command_rejected"))
    assert eventually(lambda: query(prometheus, "sum(grid_reports_total)"), 7.0) == 7.0
    assert query(prometheus, 'sum(grid_reports_total{source="video",category="06"})') == 5.0
    assert eventually(lambda: query(prometheus, "sum(grid_reports_rejected_total)"), 2.0) == 2.0
    assert query(prometheus, 'up{job="grid"}') == 1.0
    # work orders: one per case; the two manholes are urgent
    assert eventually(lambda: query(prometheus, 'sum(grid_work_orders_total{priority="urgent"})'),
                      2.0) == 2.0
    assert eventually(lambda: query(prometheus, "sum(grid_cases_open)"), 7.0) == 7.0
    assert eventually(lambda: query(prometheus, "grid_dispatch_latency_seconds_count"),
                      7.0) == 7.0
    # lag per partition of the intake loop (grid.reports.v1) and of the case loop (located,
    # commands): one worker holds all 8 of each, and the loops have committed what they read
    assert query(prometheus, 'count(grid_consumer_lag{topic="grid.reports.v1"})') == 8
    assert query(prometheus, 'count(grid_consumer_lag{topic="grid.commands.v1"})') == 8
    assert eventually(lambda: query(prometheus, "sum(grid_consumer_lag)"), 0.0) == 0.0
    # commit times per loop: the case loop committed the reports and then the command
    # (at least two commits), each counted once in the histogram (+Inf bucket = count)
    cases_commits = 'grid_commit_seconds_count{consumer="cases"}'
    assert eventually(lambda: (query(prometheus, cases_commits) or 0) >= 2, True) is True
    commits = query(prometheus, cases_commits)
    assert query(prometheus, 'grid_commit_seconds_bucket{consumer="cases",le="+Inf"}') == commits
    assert query(prometheus, 'grid_commit_seconds_count{consumer="intake"}') >= 1


def test_exposition_passes_promtool(own_engine):
    _broker, worker = own_engine
    body = httpx.get(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=10)
    assert body.status_code == 200
    assert body.headers["content-type"].startswith("text/plain")
    assert "grid_reports_total" in body.text and "faust_" in body.text
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=body.content,
                           capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    assert "case_id" not in body.text  # bounded labels
    Path(worker.tmp / "metrics.txt").write_bytes(body.content)
    # every metric the Grafana dashboard and the alert rules query is one this worker exports
    # (a family is declared by its HELP line even before its first sample)
    exported = set(re.findall(r"^# HELP (\w+)", body.text, re.M))
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/grid.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", ())]
    exprs.append((REPO / "deploy/prometheus/alerts.yml").read_text())
    queried = {re.sub(r"_(bucket|count|sum)$", "", name)
               for e in exprs for name in re.findall(r"\b((?:grid|faust)_\w+)", e)}
    assert sorted(queried - exported) == []
