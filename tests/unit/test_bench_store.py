"""The generated log of ``grid bench store`` (bench/store.py): clones fold like the fixture
cases they copy, on the streets, types and days they were given; percentiles."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import orjson
import pytest

from bench.store import (
    QUARTER,
    Log,
    Places,
    clones,
    events_in_time_order,
    percentile,
    scenarios,
)
from grid.projection import TZ, Projection

WHERE = Places(streets=[("310110001", ["310110001001", "310110001002"]),
                        ("310110002", ["310110002001"])],
               types=[("0101", "01", "component", "roads"),
                      ("0601", "06", "event", "sanitation")])


def test_percentile_is_nearest_rank():
    xs = [float(i) for i in range(1, 101)]
    assert percentile(xs, 0.5) == 50.0
    assert percentile(xs, 0.99) == 99.0
    assert percentile(xs, 1.0) == 100.0
    assert percentile([3.0], 0.99) == 3.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_clones_fold_like_the_fixture_cases_they_copy():
    scen = scenarios()
    assert len(scen) == 11
    cs = list(clones(300, WHERE, scen, seed=1))
    log = list(events_in_time_order(iter(cs)))
    assert len(log) == sum(len(c.scenario.events) for c in cs)
    ats = [datetime.fromisoformat(orjson.loads(raw)["at"]) for _, raw in log]
    assert ats == sorted(ats), "delivered in time order across cases"
    p = Projection()
    p.apply_all(orjson.loads(raw) for _, raw in log)
    assert set(p.cases) == {c.case_id for c in cs}
    start = datetime.combine(QUARTER[0], datetime.min.time(), TZ)
    end = datetime.combine(QUARTER[1], datetime.max.time(), TZ)
    by_id = {c.case_id: c for c in cs}
    for cid, got in p.cases.items():
        c = by_id[cid]
        assert start <= got.created_at <= end
        assert got.created_at == c.opened
        assert (got.district, got.street, got.community) == ("310110", c.street, c.community)
        assert got.type_code == c.type[0] and got.category == c.type[1]
        if got.department is not None:
            assert got.department == c.type[3]
        assert got.seq == max(orjson.loads(e)["seq"] for e in c.scenario.events)
    states = Counter(c.state for c in p.cases.values())
    assert states["closed"] and states.keys() - {"closed"}, states


def test_log_offsets_count_per_partition():
    cs = clones(50, WHERE, scenarios(), seed=2)
    lg = Log()
    batches = list(lg.batches(events_in_time_order(cs), size=100))
    recs = [r for b in batches for r in b]
    assert all(len(b) == 100 for b in batches[:-1])
    for p in {r.partition for r in recs}:
        offs = [r.offset for r in recs if r.partition == p]
        assert offs == list(range(len(offs)))
        assert lg.next[p] == len(offs)
