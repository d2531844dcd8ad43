"""``grid bench``'s record of the host (bench/run.py): the share of CPU time stolen by the
hypervisor over a run, from two readings of the kernel's counters."""

from __future__ import annotations

from collections import namedtuple

import psutil

from bench.run import HostSteal

Times = namedtuple("Times", "user system idle steal")
NoSteal = namedtuple("NoSteal", "user system idle")


def test_steal_is_the_share_of_all_cpu_time_between_the_readings(monkeypatch):
    readings = iter([Times(100, 50, 800, 50), Times(160, 70, 820, 150)])
    monkeypatch.setattr(psutil, "cpu_times", lambda: next(readings))
    # 200 s of CPU time passed, 100 of them stolen
    assert HostSteal().pct() == 50.0


def test_no_time_passed_or_no_counter_is_none(monkeypatch):
    same = Times(1, 1, 1, 1)
    monkeypatch.setattr(psutil, "cpu_times", lambda: same)
    assert HostSteal().pct() is None
    readings = iter([NoSteal(1, 1, 1), NoSteal(2, 2, 2)])
    monkeypatch.setattr(psutil, "cpu_times", lambda: next(readings))
    assert HostSteal().pct() is None
