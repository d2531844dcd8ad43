"""The shipped Prometheus alert rules (deploy/prometheus/alerts.yml) are valid and fire when
they should: checked by Debian's real ``promtool`` (rule unit tests in alerts_test.yml)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is missing: apt-get install prometheus (./dev test does)")
    return exe


def test_alert_rules_are_valid():
    out = subprocess.run([promtool(), "check", "rules", str(RULES / "alerts.yml")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 4 rules found" in out.stdout


def test_alert_rules_fire_on_the_metrics_the_worker_exports():
    out = subprocess.run([promtool(), "test", "rules", "alerts_test.yml"], cwd=RULES,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_reads_a_metric_the_worker_exports_or_up():
    exported = {"grid_consumer_stuck", "grid_consumer_restarts_total",
                "grid_oldest_unprocessed_seconds", "up"}
    rules = [r for g in yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
             for r in g["rules"]]
    assert {r["alert"] for r in rules} == {"GridConsumerStuck", "GridConsumerRestarting",
                                           "GridReportsWaiting", "GridWorkerDown"}
    for r in rules:
        assert any(m in r["expr"] for m in exported), r["expr"]
