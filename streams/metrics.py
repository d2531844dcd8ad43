"""Prometheus metrics of a worker, served at ``GET /metrics`` on its web server.

One :class:`~prometheus_client.CollectorRegistry` per worker holds

* domain metrics (``grid_*``), fed by ``grid_app.listeners`` callbacks (intake and effects
  of the engine) and, for open cases, read from the read store on each scrape;
* engine metrics from Faust's Prometheus sensor (``faust_*``: messages, events, commits,
  send latency, rebalances, offsets) plus ``grid_consumer_lag{topic,partition}`` and
  ``grid_fetch_gaps_total{outcome}``.

Faust's sensor registers the ``/metrics`` page; it serves this same registry, so one
scrape returns both. Labels are bounded: categories, departments, districts, streets,
states, stages and levels come from the taxonomy, geodata and lifecycle, never case ids.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from grid.events import SupervisedEvent

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CLOSE_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 4 * 3600, 12 * 3600, 86400, 3 * 86400,
                 7 * 86400, 30 * 86400)
PENDING_MAX = 100_000  # reports awaiting their work order (for dispatch latency)


class GridMetrics:
    """Domain metrics; :meth:`listener` is the ``grid_app.listeners`` callback."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry(auto_describe=True)
        self.reports = Counter("grid_reports", "New reports (a case opened or merged into)",
                               ["source", "category"], registry=r)
        self.rejected = Counter("grid_reports_rejected", "Reports rejected to the DLQ",
                                ["reason"], registry=r)
        self.work_orders = Counter("grid_work_orders", "Work orders issued",
                                   ["department", "priority"], registry=r)
        self.dispatch_latency = Histogram(
            "grid_dispatch_latency_seconds",
            "Report received by intake to its automatic work order produced (wall clock)",
            buckets=LATENCY_BUCKETS, registry=r)
        self.close_duration = Histogram(
            "grid_case_close_duration_seconds", "Case opened to closed (engine time)",
            ["category"], buckets=CLOSE_BUCKETS, registry=r)
        self.escalations = Counter("grid_escalations", "Supervision orders by level",
                                   ["level"], registry=r)
        self.self_closed = Counter("grid_self_closed", "Cases closed by self-disposal",
                                   registry=r)
        self.merged = Counter("grid_duplicates_merged", "Duplicate reports merged into a case",
                              registry=r)
        self.breaches = Counter(
            "grid_deadline_breaches", "Stages that went overdue (first supervision order)",
            ["department", "stage"], registry=r)
        self.case_events = Counter("grid_case_events", "Case events produced by this worker",
                                   ["type"], registry=r)
        self.alerts = Counter("grid_alerts", "Alerts produced by this worker", ["kind"],
                              registry=r)
        self._received: OrderedDict[str, float] = OrderedDict()  # report id -> monotonic

    def listener(self, kind: str, **kw: Any) -> None:
        if kind == "intake":
            self.on_intake(kw.get("located", ()))
        elif kind == "rejected":
            for reason in kw.get("reasons", ()):
                self.rejected.labels(reason).inc()
        elif kind == "effects":
            self.on_effects(kw["fx"])

    def on_intake(self, located: Any) -> None:
        now = time.monotonic()
        for msg in located:
            self._received[msg.report.rid] = now
        while len(self._received) > PENDING_MAX:
            self._received.popitem(last=False)

    def on_effects(self, fx: Any) -> None:
        """Count what handling one input produced; output re-emitted for a redelivered
        report or command (``fx.duplicate_delivery``) was counted the first time."""
        if fx.duplicate_delivery:
            return
        case = fx.case
        if fx.report is not None:  # a new report: it opened a case or was merged into one
            category = case.category if case is not None else None
            self.reports.labels(fx.report.source, category or "unclassified").inc()
        opened = any(e.type == "reported" for e in fx.events)
        if opened and case is not None:
            t0 = self._received.pop(case.report.rid, None)
            if t0 is not None and fx.work_orders:
                self.dispatch_latency.observe(time.monotonic() - t0)
        for wo in fx.work_orders:
            self.work_orders.labels(wo.department, wo.priority).inc()
        for a in fx.alerts:
            self.alerts.labels(a.kind).inc()
        for e in fx.events:
            self.case_events.labels(e.type).inc()
            if e.type == "merged":
                self.merged.inc()
            elif isinstance(e, SupervisedEvent) and case is not None:
                self.escalations.labels(e.data.level).inc()
                stage = e.data.stage or "dispose"
                orders = [k for k in case.supervised if k.startswith(stage + "@")]
                if len(orders) <= 1:  # the first order for this stage: a breach
                    self.breaches.labels(case.department or "none", stage).inc()
            elif e.type in ("closed", "self_closed") and case is not None:
                if e.type == "self_closed":
                    self.self_closed.inc()
                dur = (e.at - case.created_at).total_seconds()
                self.close_duration.labels(case.category or "unclassified").observe(max(dur, 0))


class OpenCasesCollector(Collector):
    """``grid_cases_open{district,street,state}`` from the read store, at scrape time."""

    def __init__(self, grid_app: Any) -> None:
        self.grid_app = grid_app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("grid_cases_open", "Open cases (read store)",
                              labels=["district", "street", "state"])
        rs = getattr(self.grid_app, "read_store", None)
        if rs is not None:
            for (district, street, state), n in sorted(rs.open_counts().items()):
                g.add_metric([district, street, state], n)
        yield g
        late = GaugeMetricFamily("grid_cases_overdue",
                                 "Open cases past their current stage's deadline (engine clock)",
                                 labels=["district", "street"])
        if rs is not None:
            now = self.grid_app.clock.now()
            for (district, street), n in sorted(rs.overdue_counts(now).items()):
                late.add_metric([district, street], n)
        yield late
        stored = GaugeMetricFamily("grid_read_store_cases", "Cases in the read store")
        stored.add_metric([], rs.count() if rs is not None else 0)
        yield stored


class LagCollector(Collector):
    """``grid_consumer_lag{topic,partition}``: end offset minus committed offset."""

    def __init__(self, grid_app: Any) -> None:
        self.grid_app = grid_app  # the cases agent (Faust) and the intake consumer

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("grid_consumer_lag",
                              "Messages not yet committed by this worker, per partition",
                              labels=["topic", "partition"])
        for tp, lag in sorted(self.grid_app.cases_lag().items(),
                              key=lambda x: (x[0].topic, x[0].partition)):
            g.add_metric([tp.topic, str(tp.partition)], lag)
        for tp, lag in sorted(self.grid_app.intake.lag().items()):
            g.add_metric([tp.topic, str(tp.partition)], lag)
        yield g


class ConsumerHealthCollector(Collector):
    """Per consumer (intake, cases, projector): ``grid_consumer_restarts_total``,
    ``grid_oldest_unprocessed_seconds``, ``grid_consumer_stuck`` (streams/health.py), and
    per loop that commits output with its offsets (intake, cases) ``grid_commit_seconds``."""

    def __init__(self, grid_app: Any) -> None:
        self.grid_app = grid_app

    def collect(self) -> Iterator[Metric]:
        restarts = CounterMetricFamily("grid_consumer_restarts",
                                       "Times a consumer failed and was started again",
                                       labels=["consumer"])
        oldest = GaugeMetricFamily("grid_oldest_unprocessed_seconds",
                                   "Age of the oldest input a consumer took but has not "
                                   "committed", labels=["consumer"])
        stuck = GaugeMetricFamily("grid_consumer_stuck",
                                  "1 while a consumer makes no progress with input waiting",
                                  labels=["consumer"])
        commits = HistogramMetricFamily(
            "grid_commit_seconds", "Time a loop's commit took: its output and input offsets "
            "(one Kafka transaction on Apache Kafka), first request to acknowledgement",
            labels=["consumer"])
        for name, st in self.grid_app.consumers().items():
            restarts.add_metric([name], st["restarts"])
            oldest.add_metric([name], st["oldest_unprocessed_seconds"])
            stuck.add_metric([name], 1 if st["stuck"] else 0)
        for loop in (self.grid_app.intake, self.grid_app.cases):
            buckets, total = loop.health.commit_histogram()
            commits.add_metric([loop.name], [(floatToGoString(b), n) for b, n in buckets],
                               total)
        yield from (restarts, oldest, stuck, commits)


class FetchGapCollector(Collector):
    """``grid_fetch_gaps_total{outcome}``: fetches stopped in front of a batch the broker
    had not made readable yet (``held``), and gaps crossed as real after the wait
    (``crossed``), for every consumer of the process (streams.tansu.patch_fetch_gaps)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        from streams.tansu import gap_stats

        c = CounterMetricFamily("grid_fetch_gaps",
                                "Fetches that met an offset gap (embedded broker)",
                                labels=["outcome"])
        for outcome in ("held", "crossed"):
            c.add_metric([outcome], gap_stats[outcome])
        yield c


class MillisecondsAsSeconds(Collector):
    """One of Faust's latency histograms (observed in ms) exposed in seconds, the base unit
    (``promtool check metrics`` rejects ``_ms`` names): ``faust_x`` → ``faust_x_seconds``."""

    def __init__(self, hist: Histogram) -> None:
        self.hist = hist
        self.name = hist._name.removesuffix("_ms") + "_seconds"

    def collect(self) -> Iterator[Metric]:
        for m in self.hist.collect():
            out = Metric(self.name, m.documentation.replace(" in ms", "") + " (seconds)",
                         m.type)
            for smp in m.samples:
                suffix = smp.name[len(m.name):]
                labels, value = dict(smp.labels), smp.value
                if labels.get("le") not in (None, "+Inf"):
                    labels["le"] = floatToGoString(float(labels["le"]) / 1000)
                if suffix == "_sum":
                    value /= 1000
                out.add_sample(self.name + suffix, labels, value, smp.timestamp)
            yield out


def _faust_latencies_in_seconds(app: Any, registry: CollectorRegistry) -> None:
    fm = getattr(app.monitor, "_metrics", None)
    for h in (fm or ()):
        if isinstance(h, Histogram) and " ms" in getattr(h, "_documentation", ""):
            registry.unregister(h)
            registry.register(MillisecondsAsSeconds(h))


def install_metrics(grid_app: Any) -> GridMetrics:
    """Register domain and engine metrics and the single ``/metrics`` page of the worker."""
    from faust.sensors.prometheus import setup_prometheus_sensors

    metrics = GridMetrics()
    metrics.registry.register(OpenCasesCollector(grid_app))
    metrics.registry.register(LagCollector(grid_app))
    metrics.registry.register(ConsumerHealthCollector(grid_app))
    from streams.broker import on_tansu

    if on_tansu():  # the gap guard exists only there
        metrics.registry.register(FetchGapCollector())
    # Faust's sensor: engine metrics in the same registry; it adds the /metrics page
    setup_prometheus_sensors(grid_app.app, pattern="/metrics", registry=metrics.registry,
                             name_prefix="faust")
    _faust_latencies_in_seconds(grid_app.app, metrics.registry)
    grid_app.listeners.append(metrics.listener)
    grid_app.metrics = metrics
    return metrics
