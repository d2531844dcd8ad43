"""Faults on a three-node KRaft cluster (RF 3, ``min.insync.replicas`` 2): a killed partition
leader (input topic, table changelog), the whole cluster stopped and started again, and a
worker frozen past its session timeout while another takes over (a zombie).

Each test runs on its own cluster and ends with
:func:`tests.integration.reliability.check_run`: every report id exactly once in one case or
the DLQ, no work order lost, every case history gap-free and replayable.
"""

from __future__ import annotations

import signal
import time
import uuid
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from streams import topics as T
from tests.integration.conftest import WorkerProc, _lattice, make_report
from tests.integration.reliability import (
    alive,
    check_run,
    chunks,
    leader_of,
    produce,
    sim_messages,
    start_worker,
    wait_accounted,
    wait_assignment,
    wait_group,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault]  # the slow tier: -m fault

VIEWER = {"Authorization": "Bearer demo-viewer"}


def leader_killed_while_reports_flow(cluster: Any, tmp_path, app_id: str, topic: str,
                                     seed: int) -> dict[str, int]:
    """20,000 reports in ten chunks; after the third, SIGKILL the leader of ``topic``
    partition 0 while the worker works through its backlog, go on producing (the producer
    and the worker must fail over), start the node again after ~10 s; check the run."""
    raws, bad = sim_messages(20_000, seed=seed)
    w = start_worker(cluster, tmp_path, app_id)
    try:
        wait_group([w])  # started and joined: a node lost at startup is another story
        leader, replicas = leader_of(cluster.bootstrap, topic, 0)
        assert replicas == [1, 2, 3]
        for i, part in enumerate(chunks(raws, 10)):
            produce(cluster.bootstrap, part)
            if i == 2:
                cluster.kill(leader)
                killed_at = time.monotonic()
            if i == 5:
                new_leader, _ = leader_of(cluster.bootstrap, topic, 0, not_on=leader)
                assert new_leader in {1, 2, 3} - {leader}
                time.sleep(max(0.0, 10 - (time.monotonic() - killed_at)))
                alive(w, "while a node was down")
                cluster.start_node(leader)
                cluster.wait_ready(120)
        log = wait_accounted(cluster.bootstrap, raws, bad, timeout=240)
        alive(w, "after the node came back")
        counts = check_run(log, raws, bad, cluster.bootstrap)
        assert cluster.registered_brokers() == 3
        assert counts["cases"] > 5_000  # many simulated reports merge as duplicates
        return counts
    finally:
        w.stop()


def test_reports_partition_leader_killed_during_20000_reports(cluster, tmp_path):
    leader_killed_while_reports_flow(cluster, tmp_path, f"lead-{uuid.uuid4().hex[:6]}",
                                     T.REPORTS, seed=401)


def test_cases_changelog_leader_killed_during_20000_reports(cluster, tmp_path):
    app_id = f"clog-{uuid.uuid4().hex[:6]}"
    leader_killed_while_reports_flow(cluster, tmp_path, app_id, f"{app_id}-cases-changelog",
                                     seed=402)


def lonely_point(raws: list[bytes]) -> tuple[float, float]:
    """A test lattice point ~200 m or more from every simulated report: reports placed there
    can only merge with each other (the duplicate radius is 50 m)."""
    pts = []
    for raw in raws:
        try:
            loc = orjson.loads(raw)["location"]
            pts.append((float(loc["lon"]), float(loc["lat"])))
        except Exception:  # bad input
            continue
    arr = np.array(pts)
    for lon, lat in _lattice():
        if np.hypot(arr[:, 0] - lon, arr[:, 1] - lat).min() > 0.002:
            return lon, lat
    raise AssertionError("no lattice point away from the simulated reports")


def case_of_each_report(log) -> dict[str, str]:
    out = {e["data"]["report"]["report_id"]: e["case_id"]
           for e in log.events if e["type"] == "reported"}
    out.update({e["data"]["report_id"]: e["case_id"] for e in log.events if e["type"] == "merged"})
    return out


def report_cases(w: WorkerProc, report_ids: list[str], timeout: float = 120) -> dict[str, Any]:
    """``GET /api/v1/reports/{id}`` for each id, asked again while it is not 200 (the worker
    recovers its tables first), for at most ``timeout`` seconds overall: id -> the JSON body
    when 200, else the last status code."""
    deadline = time.monotonic() + timeout
    out: dict[str, Any] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{w.web_port}", timeout=10,
                      headers=VIEWER) as client:
        for rid in report_ids:
            while True:
                try:
                    r = client.get(f"/api/v1/reports/{rid}")
                    out[rid] = r.json() if r.status_code == 200 else r.status_code
                except httpx.HTTPError as err:  # not listening yet
                    out[rid] = repr(err)
                if isinstance(out[rid], dict) or time.monotonic() > deadline:
                    break
                alive(w, "while its tables were recovered")
                time.sleep(0.5)
    return out


def test_whole_cluster_restart_keeps_cases_and_merges_into_them(cluster, tmp_path):
    """All three nodes and the worker stop; the cluster starts again on its data dirs, then
    the worker: every report from before is found in the same case over the HTTP API, and
    a duplicate sent afterwards is merged into the case opened before the restart."""
    app_id = f"restart-{uuid.uuid4().hex[:6]}"
    raws, bad = sim_messages(4_000, seed=403)
    lon, lat = lonely_point(raws)
    first = make_report("0603", lon=lon, lat=lat, description="毁绿")
    dup = make_report("0603", lon=lon + 0.0002, lat=lat + 0.0002, description="毁绿 again")
    before = [orjson.dumps(first), *raws[:2000]]
    after = [orjson.dumps(dup), *raws[2000:]]
    w = start_worker(cluster, tmp_path, app_id)
    try:
        produce(cluster.bootstrap, before)
        cases_before = case_of_each_report(wait_accounted(cluster.bootstrap, before, bad))
        case_id = cases_before[first["report_id"]]
        ports = cluster.bootstrap
        w.stop()
        cluster.stop()
        assert not cluster.running
        cluster.start()
        assert cluster.bootstrap == ports and cluster.registered_brokers() == 3
        w = start_worker(cluster, tmp_path, app_id)
        got = report_cases(w, list(cases_before))
        wrong = {rid: got[rid] for rid, cid in cases_before.items()
                 if not isinstance(got[rid], dict) or got[rid]["case_id"] != cid}
        assert not wrong, (f"{len(wrong)} of {len(cases_before)} reports not in their case "
                           f"after the restart, e.g. {list(wrong.items())[:3]}")
        produce(cluster.bootstrap, after)
        log = wait_accounted(cluster.bootstrap, before + after, bad)
        alive(w, "after the restart")
        merged = [e for e in log.events
                  if e["type"] == "merged" and e["data"]["report_id"] == dup["report_id"]]
        assert {e["case_id"] for e in merged} == {case_id}
        seen = report_cases(w, [dup["report_id"]])[dup["report_id"]]
        assert isinstance(seen, dict) and (seen["case_id"], seen["merged"]) == (case_id, True)
        check_run(log, before + after, bad, cluster.bootstrap)
    finally:
        w.stop()


def test_worker_frozen_past_its_session_is_a_harmless_zombie(cluster, tmp_path):
    """Two workers share the partitions; one (a) is SIGSTOPped right after two chunks of
    reports (mid-backlog) for 15 s (its sessions are 10 s), the other (b) takes over every
    partition of both groups (intake and cases) and goes on; then a is
    resumed with its stale assignment, its batch in hand and its producer, and rejoins.

    Before the loops were transactional (engine at 334ca20) this failed every run: the
    zombie's queued case events and changelog records landed after b's newer ones, and a
    located partition was committed past input never handled. Now a's first commit after
    the resume is refused (its producers were fenced when b took its units over), a starts
    its loops again from the committed offsets, and check_run finds every report once and
    every event, work order and DLQ entry exactly once.
    """
    app_id = f"zombie-{uuid.uuid4().hex[:6]}"
    intake = f"{app_id}-intake"  # the intake loop's group (the case loop: <app id>-cases)
    raws, bad = sim_messages(10_000, seed=404, district=None)
    parts = chunks(raws, 10)
    a = start_worker(cluster, tmp_path, app_id)
    b = start_worker(cluster, tmp_path, app_id)
    try:
        wait_group([a, b])
        wait_assignment(cluster.bootstrap, intake, T.REPORTS, members=2)  # a reads reports too
        produce(cluster.bootstrap, parts[0])
        produce(cluster.bootstrap, parts[1])
        a.proc.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            for part in parts[2:5]:
                produce(cluster.bootstrap, part)
            wait_group([b], timeout=60)  # b alone holds every cases partition
            wait_assignment(cluster.bootstrap, intake, T.REPORTS, members=1)  # ... and all input
            time.sleep(max(0.0, 15 - (time.monotonic() - frozen_at)))
        finally:
            a.proc.send_signal(signal.SIGCONT)
        for part in parts[5:]:
            produce(cluster.bootstrap, part)
        wait_group([a, b])  # the zombie is a member again
        wait_assignment(cluster.bootstrap, intake, T.REPORTS, members=2)
        log = wait_accounted(cluster.bootstrap, raws, bad, timeout=120)
        alive(a, "after it was resumed")
        alive(b, "at the end")
        check_run(log, raws, bad, cluster.bootstrap)
    finally:
        a.stop()
        b.stop()
