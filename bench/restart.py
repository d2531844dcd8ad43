"""Worker restart with N cases in its state: time until it handles the next report, peak RSS.

The case loop (``streams.caseloop``) restores each street partition it is given from the
compacted changelogs ``<app>-cases-changelog`` (case id → case JSON) and
``<app>-report-index-changelog`` (report id → case id), read committed to the end, and its
store decodes the open cases into its index on first use. This bench fills both changelogs of
a fresh app id with ``cases`` cases, as the case loop writes them (realistic final cases from
the pure engine — open, and accepted → disposed → verified → closed — cloned under new case
and report ids on the same streets, so each lands in its street's partition), then starts a
real ``grid worker`` with that app id and, at the same moment, produces a fresh report; timed:
worker spawned → that report's ``reported`` case event read (read_committed). The same is
done first for an app with empty changelogs (the worker's own start: geodata, rules, groups
joining); the difference is what the state costs. Peak RSS = the worker's VmHWM after the
report was handled and the escalation timer has been through every partition.

    grid bench restart --cases 100000 [--geodata DIR] [--json]
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

CaseTemplate = tuple[bytes, str, list[str]]  # (case JSON, case id, report ids)


def case_templates(geodata: str | None, n_reports: int = 1500) -> list[CaseTemplate]:
    """Final cases of realistic histories (bench.recovery's templates, folded)."""
    from bench.recovery import _templates
    from grid.lifecycle import evolve
    from grid.models import CaseEvent
    from streams.state import encode_case

    out = []
    for events in _templates(geodata, n_reports):
        case = None
        for raw in events:
            case = evolve(case, CaseEvent.model_validate_json(raw))
        if case is not None:
            out.append((encode_case(case), case.case_id, list(case.report_ids)))
    return out


def clone(t: CaseTemplate, copy: int) -> tuple[str, bytes, list[str]]:
    """Template ``t`` under new ids (copy number ``copy``): the case id keeps its street
    prefix, the report ids their form; returns (case id, case JSON, report ids)."""
    raw, cid, rids = t
    tag = f"{copy:012x}"
    new_cid = cid[:-12] + tag
    raw = raw.replace(cid.encode(), new_cid.encode())
    new_rids = []
    for rid in rids:
        new = rid[:-12] + tag
        raw = raw.replace(rid.encode(), new.encode())
        new_rids.append(new)
    return new_cid, raw, new_rids


async def fill(bootstrap: str, app_id: str, templates: list[CaseTemplate], n: int,
               partitions: int, log=print) -> dict[str, Any]:
    """Write ``n`` cases (and their report index entries) into the app's changelogs, each in
    its street's partition, as the case loop does."""
    from aiokafka import AIOKafkaProducer

    from grid.models import partition_key_of
    from streams.caseloop import changelog_topics
    from streams.sinks import partition_of

    cases_log, index_log = changelog_topics(app_id)
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50,
                            max_batch_size=1_000_000, max_request_size=8 << 20)
    await prod.start()
    t0, nbytes, pending = time.perf_counter(), 0, []
    try:
        for i in range(n):
            cid, raw, rids = clone(templates[i % len(templates)], i)
            p = partition_of(partition_key_of(cid), partitions)
            key = cid.encode()
            pending.append(await prod.send(cases_log, raw, key=key, partition=p))
            for rid in rids:
                pending.append(await prod.send(index_log, key, key=rid.encode(), partition=p))
            nbytes += len(raw)
            if len(pending) > 20_000:
                await asyncio.gather(*pending)
                pending.clear()
            if i and i % 100_000 == 0:
                log(f"restart: {i:,} cases written ({time.perf_counter() - t0:.0f} s)")
        await asyncio.gather(*pending)
    finally:
        await prod.stop()
    return {"cases": n, "case_json_mb": round(nbytes / 2**20, 1),
            "mean_case_bytes": round(nbytes / max(n, 1)),
            "fill_s": round(time.perf_counter() - t0, 1)}


async def _time_first_report(bootstrap: str, spawn, probe: bytes, timeout: float) -> float:
    """Spawn the worker and produce ``probe`` at once; seconds until its ``reported`` case
    event is read (read_committed)."""
    from aiokafka import AIOKafkaProducer

    from bench.driver import accounted_id, key_of, tail_from_end
    from grid.intake import report_id_of
    from streams import topics as T

    rid = report_id_of(probe)
    cons = await tail_from_end(bootstrap, [T.CASE_EVENTS])
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await prod.start()
    try:
        t0 = time.perf_counter()
        proc = spawn()
        await prod.send_and_wait(T.REPORTS, probe, key=key_of(probe))
        while time.perf_counter() - t0 < timeout:
            if not proc.alive():
                raise RuntimeError(f"worker exited:\n{proc.tail()}")
            got = await cons.getmany(timeout_ms=100)
            if any(accounted_id(r.value) == rid for rs in got.values() for r in rs):
                return time.perf_counter() - t0
        raise RuntimeError(f"no reported event within {timeout} s:\n{proc.tail()}")
    finally:
        await prod.stop()
        await cons.stop()


RESTORED = re.compile(r"cases: restored (\d+) changelog records of partitions .* in ([\d.]+) s")


def restored_from_log(text: str) -> list[tuple[int, float]]:
    """(records, seconds) of each restore the case loop logged."""
    return [(int(n), float(s)) for n, s in RESTORED.findall(text)]


def measure(cases: int = 100_000, geodata: str | None = None, partitions: int = 8,
            embedded: str = "kafka", settle: float = 10.0, timeout: float = 1800.0,
            log=print) -> dict[str, Any]:
    """Fill, restart, time (see the module doc); one fresh embedded broker for both runs."""
    from bench import procs
    from bench.run import _broker, _now, machine, use_broker_kind
    from grid.service import Engine
    from streams import topics as T
    from streams.broker import bootstrap_of, ensure_topics, free_port
    from streams.caseloop import changelog_topics

    tmp = Path(tempfile.mkdtemp(prefix="grid-restart-"))
    use_broker_kind(embedded, tmp)
    result: dict[str, Any] = {"machine": machine(), "geodata": geodata or "default",
                              "partitions": partitions}
    t = time.perf_counter()
    templates = case_templates(geodata)
    log(f"restart: {len(templates)} case templates ({time.perf_counter() - t:.0f} s)")
    from bench import mix

    engine = Engine.load(geodata)
    sim = mix.simulator(engine.locator, seed=5)
    probes = [json.dumps(sim.report(_now())).encode() for _ in range(2)]
    del engine
    with _broker(None, embedded, {}, T.all_topics(partitions)) as (url, bootstrap):
        for label, n, probe in (("empty", 0, probes[0]), ("full", cases, probes[1])):
            app_id = f"restart-{label}-{uuid.uuid4().hex[:6]}"
            logs = changelog_topics(app_id)
            ensure_topics(bootstrap_of(url), dict.fromkeys(logs, partitions),
                          configs={t: {"cleanup.policy": "compact"} for t in logs})
            filled = asyncio.run(fill(bootstrap, app_id, templates, n, partitions, log))
            log(f"restart: {label}: {filled}")
            worker: list[procs.Proc] = []

            def spawn(app_id: str = app_id, worker: list[procs.Proc] = worker) -> procs.Proc:
                worker.append(procs.worker(url, app_id, tmp, geodata, partitions, free_port(),
                                           GRID_LOGLEVEL="info"))
                return worker[0]

            try:
                secs = asyncio.run(_time_first_report(bootstrap, spawn, probe, timeout))
                rss_at = worker[0].peak_rss_mb()
                time.sleep(settle)  # the timer goes through every partition's state
                w = worker[0]
                result[label] = filled | {
                    "first_report_s": round(secs, 1), "peak_rss_mb_at_first": round(rss_at),
                    "peak_rss_mb": round(w.peak_rss_mb()), "alive": w.alive(),
                    "restores": restored_from_log(w.log.read_text(errors="replace"))}
            finally:
                if worker:
                    worker[0].stop()
            log(f"restart: {label}: {result[label]}")
    e, f = result["empty"], result["full"]
    result["state_cost_s"] = round(f["first_report_s"] - e["first_report_s"], 1)
    result["state_rss_mb"] = f["peak_rss_mb"] - e["peak_rss_mb"]
    return result
