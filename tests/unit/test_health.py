"""Consumer health (streams.health) on a hand-driven clock (pure)."""

from __future__ import annotations

from streams.health import ConsumerHealth


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def health(lag: list[int], clock: Clock, stuck_after: float = 10.0) -> ConsumerHealth:
    return ConsumerHealth("intake", stuck_after=stuck_after, lag=lambda: lag[0], clock=clock,
                          wall=clock)


def test_waiting_input_without_commits_is_stuck_and_a_commit_clears_it():
    clock, lag = Clock(), [0]
    h = health(lag, clock)
    h.started()
    h.fetched("p0", 100, 1_000_000)  # wall clock 1000 s, in ms
    lag[0] = 5
    clock.t += 9.9
    h.beat()
    assert h.status()["state"] == "running" and h.status()["stuck"] is False
    clock.t += 0.2
    h.beat()
    st = h.status()
    assert st["state"] == "stuck" and st["lag"] == 5
    assert st["reason"] == "intake: 5 message(s) wait and nothing was committed for 10 s"
    assert st["oldest_unprocessed_seconds"] == 10.1
    h.committed({"p0": 105})
    lag[0] = 0
    st = h.status()
    assert st["state"] == "running" and st["oldest_unprocessed_seconds"] == 0.0


def test_a_backlog_that_is_being_worked_off_is_not_stuck():
    clock, lag = Clock(), [10_000]
    h = health(lag, clock)
    h.started()
    for off in range(0, 50_000, 500):  # a commit every 5 s, 100 times
        clock.t += 5
        h.beat()
        h.committed({"p0": off + 500})
        assert not h.status()["stuck"]


def test_an_idle_consumer_is_not_stuck():
    clock = Clock()
    h = health([0], clock)
    h.started()
    clock.t += 3600
    h.beat()
    assert h.status()["state"] == "running" and h.status()["reason"] is None


def test_a_loop_that_stops_coming_round_is_stuck():
    clock = Clock()
    h = health([0], clock)
    h.started()
    clock.t += 11
    assert h.stuck_reason() == "intake's loop has not come round for 11 s"


def test_restarts_are_counted_and_failing_for_long_is_stuck():
    clock = Clock()
    h = health([0], clock)
    h.started()
    h.failed(TypeError("'NoneType' object is not subscriptable"))
    assert h.status()["state"] == "restarting" and h.restarts == 1
    clock.t += 12
    h.failed(TypeError("'NoneType' object is not subscriptable"))
    clock.t += 10
    st = h.status()
    assert st["state"] == "stuck" and st["restarts"] == 2
    assert "failing for 10 s (2 restarts; last error: TypeError" in st["reason"]
    h.started()
    assert h.status()["state"] == "running"


def test_revoked_partitions_no_longer_count_as_waiting():
    clock = Clock()
    h = health([0], clock)
    h.started()
    h.fetched("p0", 0, 990_000)
    h.fetched("p1", 0, 995_000)
    assert h.oldest_unprocessed_seconds() == 10.0
    h.revoked(["p0"])
    assert h.oldest_unprocessed_seconds() == 5.0


def test_commit_times_are_counted_in_cumulative_buckets_with_their_sum():
    h = health([0], Clock())
    for seconds in (0.004, 0.005, 0.007, 0.03, 12.0):
        h.commit_took(seconds)
    buckets, total = h.commit_histogram()
    assert buckets[:4] == [(0.005, 2), (0.01, 3), (0.025, 3), (0.05, 4)]  # le: at most
    assert buckets[-2:] == [(10.0, 4), (float("inf"), 5)]
    assert round(total, 3) == 12.046


def test_the_collector_exports_each_loops_commit_histogram():
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry, generate_latest

    from streams.metrics import ConsumerHealthCollector

    intake, cases = ConsumerHealth("intake"), ConsumerHealth("cases")
    cases.commit_took(0.02)
    cases.commit_took(0.3)
    app = SimpleNamespace(intake=SimpleNamespace(name="intake", health=intake),
                          cases=SimpleNamespace(name="cases", health=cases),
                          consumers=lambda: {"intake": intake.status(), "cases": cases.status()})
    reg = CollectorRegistry()
    reg.register(ConsumerHealthCollector(app))
    text = generate_latest(reg).decode()
    assert 'grid_commit_seconds_bucket{consumer="cases",le="0.025"} 1.0' in text
    assert 'grid_commit_seconds_bucket{consumer="cases",le="0.5"} 2.0' in text
    assert 'grid_commit_seconds_count{consumer="cases"} 2.0' in text
    assert 'grid_commit_seconds_sum{consumer="cases"} 0.32' in text
    assert 'grid_commit_seconds_count{consumer="intake"} 0.0' in text
