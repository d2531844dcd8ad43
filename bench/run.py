"""``grid bench``: baseline vs engine on one broker and one message mix, plus latency.

1. Profile: the pure engine runs in-process over a sample of the simulated stream; the
   messages it produces per report (and their sizes, the located hop included) become the
   baseline's plan.
2. Baselines: ``python -m bench.baseline`` (raw aiokafka, two hops like the engine's),
   ``plain`` (at-least-once) and ``transactional`` (a Kafka transaction per batch and input
   partition, as the engine on Apache Kafka).
3. Engine: a real ``grid worker`` subprocess (fresh app id) over the same reports.
4. Latency, for each and for a zero-work passthrough (the broker's floor, one hop, no
   transactions): fresh reports offered at a fixed rate; report produced → (first) work
   order read by a ``read_committed`` consumer.

Each phase (:data:`PHASES`) gets a fresh single-node embedded broker: Apache
Kafka (``streams.kafka_server``) by default, Tansu with ``embedded="tansu"``; ``broker``
uses one given broker for all. Recovery needs no broker (bench/recovery.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import platform
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import driver, mix, procs
from bench.baseline import IN_TOPIC, LOCATED_TOPIC, bench_topics, topic_of
from grid.intake import report_id_of

PHASES = ("baseline", "baseline_txn", "passthrough", "engine")
# on demand: the transactional baseline with pipelined polling, or with its intake hop
# at-least-once (one transaction a report); the engine with the read
# store's projector inside the worker (grid up's embedded default); two routing workers of one
# app sharing the partitions (the engine scaled out, as compose's --scale worker=2)
EXTRA_PHASES = ("baseline_pipelined", "baseline_one_txn", "engine_projector", "engine_2")
# Every latency run first offers this many seconds of other reports at its rate, unmeasured:
# in the first ~1.5 s after a throughput run the case loop's transactions took 50-100 ms
# while its event loop was free (held up outside the worker; docs/BENCHMARKS.md): the wake
# of the burst, not the dispatch latency at the offered rate.
WARM_SECONDS = 5.0


def machine() -> dict[str, Any]:
    import psutil

    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover
        pass
    return {"nproc": os.cpu_count(), "cpu": model,
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "load_avg": [round(x, 2) for x in os.getloadavg()]}


class HostSteal:
    """The share of this host's CPU time that the hypervisor gave to other guests (Linux
    ``steal``) since it was made: on a contended host a run reads slower than its code is,
    so results carry it (None where the kernel does not count it)."""

    def __init__(self) -> None:
        import psutil

        self._t0 = psutil.cpu_times()

    def pct(self) -> float | None:
        import psutil

        t1 = psutil.cpu_times()
        total = sum(t1) - sum(self._t0)
        if not hasattr(t1, "steal") or total <= 0:
            return None
        return round(100 * (t1.steal - self._t0.steal) / total, 1)


def use_broker_kind(kind: str, tmp: Path) -> None:
    """Set this process's (and so its children's) broker kind before ``streams`` is used:
    ``GRID_BROKER_KIND=tansu`` switches the Tansu workarounds on (streams.tansu); on Kafka
    it is removed. ``GRID_HOME`` moves to ``tmp`` so that a kind recorded by a running
    ``grid up`` cannot switch them on either."""
    os.environ["GRID_HOME"] = str(tmp)
    if kind == "tansu":
        os.environ["GRID_BROKER_KIND"] = "tansu"
        from streams.tansu import patch_fetch_gaps

        patch_fetch_gaps()  # in case ``streams`` was imported before the variable was set
    else:
        os.environ.pop("GRID_BROKER_KIND", None)


def broker_info(broker: str | None, kind: str, kafka_config: dict[str, str]) -> dict[str, Any]:
    """Which broker the phases run on (kind, version, one line for the table)."""
    if broker:
        from streams.broker import broker_kind

        return {"kind": broker_kind(), "version": None,
                "name": f"{broker} (external, {broker_kind()}, shared by all phases)"}
    if kind == "kafka":
        from streams.kafka_server import kafka_version

        extra = "".join(f", {k}={v}" for k, v in kafka_config.items())
        return {"kind": kind, "version": kafka_version(), "config": kafka_config,
                "name": f"Apache Kafka {kafka_version()} (1 node, fresh per phase{extra})"}
    import subprocess

    from streams.broker import broker_bin

    out = subprocess.run([broker_bin(), "--version"], capture_output=True, text=True).stdout
    version = out.split()[-1] if out.strip() else "?"  # "tansu 0.6.0"
    return {"kind": kind, "version": version,
            "name": f"Tansu {version} (memory store, fresh per phase)"}


@contextlib.contextmanager
def _broker(broker: str | None, kind: str, kafka_config: dict[str, str],
            topics: dict[str, int]):
    """``broker`` if given, else a fresh embedded broker of ``kind`` for this phase only:
    no phase pays for another's stored data (Tansu gets slower with everything stored in
    it, docs/BENCHMARKS.md)."""
    from streams.broker import EmbeddedBroker, bootstrap_of, ensure_topics
    from streams.kafka_server import EmbeddedKafka

    embedded = None
    if not broker:
        embedded = (EmbeddedKafka(nodes=1, extra_config=kafka_config) if kind == "kafka"
                    else EmbeddedBroker(ready_timeout=30))
        embedded.start()
    url = broker or embedded.url
    try:
        ensure_topics(bootstrap_of(url), topics, timeout=60)
        yield url, bootstrap_of(url)
    finally:
        if embedded is not None:
            embedded.stop()
            if kind == "kafka":
                import shutil

                shutil.rmtree(embedded.data_dir, ignore_errors=True)


async def _wait_ready(bootstrap: str, in_topic: str, events: str, dlq: str, probe: bytes,
                      proc: procs.Proc | procs.Group, timeout: float = 120.0) -> None:
    exp = driver.Expectation({report_id_of(probe)}, 0)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not proc.alive():
            raise RuntimeError(f"process exited:\n{proc.tail()}")
        out = await driver.throughput(bootstrap, in_topic, events, dlq, [probe], exp, 10.0)
        if out.complete:
            return
    raise RuntimeError(f"no output for a probe within {timeout}s:\n{proc.tail()}")


def _wait_shared(ports: list[int], partitions: int, proc: procs.Group,
                 timeout: float = 120.0) -> None:
    """Until the workers on ``ports`` hold every case partition between them, each some
    (their ``/api/v1/health``), so a measurement does not start inside a rebalance."""
    import urllib.request

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        _check_alive(proc)
        held = []
        for port in ports:
            with contextlib.suppress(OSError, ValueError):
                url = f"http://127.0.0.1:{port}/api/v1/health"
                with urllib.request.urlopen(url, timeout=5) as r:
                    held.append(json.loads(r.read())["partitions"])
        if (len(held) == len(ports) and all(held)
                and sorted(p for ps in held for p in ps) == list(range(partitions))):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the workers did not share the {partitions} partitions in "
                       f"{timeout:.0f} s:\n{proc.tail()}")


def _check_alive(proc: procs.Proc | procs.Group) -> None:
    if not proc.alive():
        raise RuntimeError(f"process under test exited ({proc.log}):\n{proc.tail()}")


async def _warm_up(bootstrap: str, in_topic: str, out_topic: str, raws: list[bytes], match,
                   proc: procs.Proc, timeout: float = 60.0) -> None:
    """Offer a few reports until one comes out (the process has joined its group)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not proc.alive():
            raise RuntimeError(f"process exited:\n{proc.tail()}")
        lat = await driver.dispatch_latency(bootstrap, in_topic, out_topic, raws, 100.0,
                                            settle=2.0, match=match)
        if lat.work_orders:
            return
    raise RuntimeError(f"no output within {timeout}s:\n{proc.tail()}")


def _latency(bootstrap: str, in_topic: str, out_topic: str, raws: list[bytes], rate: float,
             match, name: str, log, located_topic: str | None = None,
             warm: list[bytes] = ()) -> dict[str, Any]:
    """One latency run (``driver.dispatch_latency``), logged and returned as a dict; with
    ``located_topic``, where the time went (``stages``: bench/stages.py). ``warm`` (other
    reports) is offered first at the same rate and not measured: the steady state at
    ``rate``, not the wake of a throughput run just before (see :data:`WARM_SECONDS`)."""
    from bench import stages

    if warm:
        asyncio.run(driver.dispatch_latency(bootstrap, in_topic, out_topic, list(warm), rate,
                                            settle=1.0, match=match))

    def once():
        return driver.dispatch_latency(bootstrap, in_topic, out_topic, raws, rate, match=match)

    if located_topic is None:
        lat = asdict(asyncio.run(once()))
    else:
        res, parts = asyncio.run(stages.observed(bootstrap, in_topic, located_topic, out_topic,
                                                 match, once))
        lat = asdict(res) | {"stages": parts}
    log(f"{name} latency: {lat}")
    return lat


def run(reports: int = 20_000, rate: float = 1000.0, duration: float = 10.0,
        geodata: str | None = None, broker: str | None = None, partitions: int = 8,
        recovery_events: int = 1_000_000, embedded: str = "kafka",
        kafka_config: dict[str, str] | None = None, phases: tuple[str, ...] = PHASES,
        log=print) -> dict[str, Any]:
    """The whole benchmark; returns the results as one dict (see docs/BENCHMARKS.md).
    Each phase of ``phases`` (:data:`PHASES`) runs on ``broker`` or else on a fresh embedded
    broker of kind ``embedded`` (``kafka``, with ``kafka_config`` added to its settings, or
    ``tansu``). ``reports=0`` skips the engine's throughput run (latency only)."""
    kafka_config = dict(kafka_config or {})
    if unknown := set(phases) - set(PHASES + EXTRA_PHASES):
        raise ValueError(f"unknown phases {sorted(unknown)}: pick from "
                         f"{PHASES + EXTRA_PHASES}")
    tmp = Path(tempfile.mkdtemp(prefix="grid-bench-"))
    if not broker:
        use_broker_kind(embedded, tmp)
    from grid.service import Engine
    from grid.simulator import BAD_INPUTS
    from streams import topics as T
    from streams.broker import free_port

    run_steal = HostSteal()
    result: dict[str, Any] = {"machine": machine(),
                              "broker": broker_info(broker, embedded, kafka_config),
                              "reports": reports,
                              "geodata": geodata or "shipped Yangpu demo set",
                              "partitions": partitions}
    t = time.perf_counter()
    engine = Engine.load(geodata)
    result["cells"] = engine.locator.n_cells
    sim = mix.simulator(engine.locator)
    raws = mix.messages(sim, max(reports, 5000))
    profile = mix.output_profile(engine, raws[:5000], forwarded=True)  # every report
    # goes through grid.located.v1
    result["profile"] = profile.as_dict()
    profile_path = tmp / "profile.json"
    profile_path.write_text(json.dumps(profile.as_dict()))
    raws = raws[:reports]
    expect = driver.Expectation.of(raws, set(BAD_INPUTS))
    probe_b, probe_e, probe_shared = (json.dumps(r).encode() for r in
                                      (sim.report(_now()) for _ in range(3)))
    latency_raws = mix.messages(sim, int(rate * duration))
    warm_raws = mix.messages(sim, int(rate * WARM_SECONDS))
    log(f"profile: {profile.per_input:.2f} messages per input ({time.perf_counter() - t:.1f} s)")
    del engine

    from bench import passthrough as P

    topics = (T.all_topics(partitions) | bench_topics(partitions)
              | {P.IN_TOPIC: partitions, P.OUT_TOPIC: partitions})
    phase_broker = functools.partial(_broker, broker, embedded, kafka_config, topics)
    # -- baselines: plain (at-least-once) and transactional (exactly-once) -----------------
    for mode, key in (("plain", "baseline"), ("transactional", "baseline_txn"),
                      ("pipelined", "baseline_pipelined"), ("one_txn", "baseline_one_txn")):
        if key not in phases:
            continue
        with phase_broker() as (url, bootstrap):
            base = procs.baseline(bootstrap, profile_path, f"bench-{uuid.uuid4().hex[:6]}",
                                  tmp, mode)
            try:
                asyncio.run(_wait_ready(bootstrap, IN_TOPIC, topic_of("event"),
                                        topic_of("dlq"), probe_b, base))
                if reports:
                    cpu0, steal = base.cpu_s(), HostSteal()
                    out = asyncio.run(driver.throughput(bootstrap, IN_TOPIC, topic_of("event"),
                                                        topic_of("dlq"), raws, expect,
                                                        alive=base.alive))
                    _check_alive(base)
                    use = base.usage_since(cpu0)
                    result[key] = _rates(out, reports, profile.per_input) | asdict(use) | {
                        "host_steal_pct": steal.pct()}
                    log(f"{key}: {result[key]}")
                result[f"{key}_latency"] = _latency(
                    bootstrap, IN_TOPIC, topic_of("work_order"), latency_raws, rate,
                    driver.first_baseline_work_order, key, log, LOCATED_TOPIC, warm_raws)
            finally:
                base.stop()
    # -- the broker's floor: forward each report at once -------------------------------
    if "passthrough" in phases:
        with phase_broker() as (url, bootstrap):
            fwd = procs.passthrough(bootstrap, f"bench-{uuid.uuid4().hex[:6]}", tmp)
            try:
                asyncio.run(_warm_up(bootstrap, P.IN_TOPIC, P.OUT_TOPIC, latency_raws[:20],
                                     driver.forwarded_report, fwd))
                result["passthrough_latency"] = _latency(
                    bootstrap, P.IN_TOPIC, P.OUT_TOPIC, latency_raws, rate,
                    driver.forwarded_report, "passthrough", log, warm=warm_raws)
            finally:
                fwd.stop()
    # -- engine ------------------------------------------------------------------------
    # "engine": the routing worker as compose deploys it (the read store's projector is its
    # own service); "engine_projector": grid up's embedded worker, projector inside;
    # "engine_2": two routing workers sharing the partitions (CPU summed)
    for key, extra, n in (("engine", {"GRID_PROJECTOR": "0"}, 1),
                          ("engine_projector", {"GRID_PROJECTOR": "1"}, 1),
                          ("engine_2", {"GRID_PROJECTOR": "0"}, 2)):
        if key not in phases:
            continue
        latency_key = "latency" if key == "engine" else f"{key}_latency"
        with phase_broker() as (url, bootstrap):
            app_id = f"bench-{uuid.uuid4().hex[:6]}"
            ports = [free_port() for _ in range(n)]
            w = procs.Group([procs.worker(url, app_id, tmp, geodata, partitions, port,
                                          f"{app_id}-{i}", **extra)
                             for i, port in enumerate(ports)])
            try:
                asyncio.run(_wait_ready(bootstrap, T.REPORTS, T.CASE_EVENTS, T.DLQ, probe_e, w))
                if n > 1:  # the partitions spread over every worker, then a new report flows
                    _wait_shared(ports, partitions, w)
                    asyncio.run(_wait_ready(bootstrap, T.REPORTS, T.CASE_EVENTS, T.DLQ,
                                            probe_shared, w))
                if reports:
                    cpu0, steal = w.cpu_s(), HostSteal()
                    out = asyncio.run(driver.throughput(bootstrap, T.REPORTS, T.CASE_EVENTS,
                                                        T.DLQ, raws, expect, alive=w.alive))
                    _check_alive(w)
                    use = w.usage_since(cpu0)
                    result[key] = _rates(out, reports, profile.per_input) | asdict(use) | {
                        "host_steal_pct": steal.pct()}
                    log(f"{key}: {result[key]}")
                cpu0, t0 = w.cpu_s(), time.perf_counter()
                lat = _latency(bootstrap, T.REPORTS, T.DISPATCH, latency_raws, rate,
                               driver.first_work_order_case, key, log, T.LOCATED, warm_raws)
                _check_alive(w)
                use = w.usage_since(cpu0)
                result[latency_key] = lat | {"worker_cpu_share": round(
                    use.cpu_s / (time.perf_counter() - t0), 2)}
                result[f"{key}_peak_rss_mb" if key != "engine" else "worker_peak_rss_mb"] = \
                    w.peak_rss_mb()
            finally:
                w.stop()
    if recovery_events:
        from bench.recovery import measure

        result["recovery"] = measure(recovery_events, geodata)
        log(f"recovery: {result['recovery']}")
    result.update(summary(result), offered_rate=rate)
    result["machine"]["host_steal_pct"] = run_steal.pct()
    return result


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of a run's phases (a phase not run gives None): ``ratio`` =
    engine / transactional baseline (both exactly-once), ``ratio_plain`` = engine / plain
    baseline, ``exactly_once_cost`` = transactional / plain baseline throughput,
    ``ratio_two_workers`` = two engine workers / transactional baseline."""

    def rate(key: str) -> float | None:
        return (result.get(key) or {}).get("reports_per_s")

    def div(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    def p(key: str, q: str) -> float | None:
        return (result.get(key) or {}).get(q)

    b, bt, e = rate("baseline"), rate("baseline_txn"), rate("engine")
    ran = [result[k]["complete"] for k in ("baseline", "baseline_txn", "engine") if k in result]
    return {"baseline_rate": b, "baseline_txn_rate": bt, "engine_rate": e,
            "ratio": div(e, bt), "ratio_plain": div(e, b), "exactly_once_cost": div(bt, b),
            "ratio_two_workers": div(rate("engine_2"), bt),
            "p50_ms": p("latency", "p50_ms"), "p95_ms": p("latency", "p95_ms"),
            "p99_ms": p("latency", "p99_ms"),
            "baseline_p99_ms": p("baseline_latency", "p99_ms"),
            "baseline_txn_p99_ms": p("baseline_txn_latency", "p99_ms"),
            "passthrough_p99_ms": p("passthrough_latency", "p99_ms"),
            "complete": bool(ran) and all(ran)}


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _rates(out: driver.Outcome, reports: int, per_input: float) -> dict[str, Any]:
    rps = reports / out.seconds if out.seconds > 0 else 0.0
    return {"seconds": round(out.seconds, 2), "reports_per_s": round(rps, 1),
            "msgs_per_s": round(rps * (1 + per_input), 1), "complete": out.complete,
            "accounted": out.accounted, "dlq": out.dlq, "missing": out.missing[:5]}
