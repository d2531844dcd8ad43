"""The case loop's handling, without a broker: what a unit's batch outputs (pure: the loops
are built, never started; their output records are read)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import orjson
import pytest

from streams import topics as T
from streams.app import GridApp
from streams.caseloop import changelog_topics
from streams.settings import Settings


@pytest.fixture()
def grid_app(tmp_path) -> GridApp:
    s = Settings.from_env(broker="kafka://127.0.0.1:9", data_dir=str(tmp_path),
                          app_id=f"unit-{uuid.uuid4().hex[:6]}")
    return GridApp(s)


def report(rid: str) -> bytes:
    return orjson.dumps({
        "schema": "grid.report/1", "report_id": rid, "source": "supervisor",
        "reporter_id": "sup-1", "reported_at": "2026-11-21T09:30:00+08:00",
        "location": {"lon": 121.5262, "lat": 31.2708, "crs": "gcj02"}, "type_code": "0101",
        "description": "井盖缺失"})


def record(topic: str, value: bytes, offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, value=value, partition=0, offset=offset, timestamp=0)


def located(grid_app: GridApp, rid: str):
    out, _ok, _dead = grid_app.intake.intake([report(rid)])
    (msg,) = [r for r in out if r.topic == T.LOCATED]
    return msg


def topics_of(out) -> list[str]:
    return sorted(r.topic for r in out)


@pytest.mark.parametrize("exactly_once", [True, False])
def test_a_report_delivered_twice_outputs_once_when_exactly_once(grid_app, exactly_once):
    """Exactly-once: the second copy finds its report in the state (committed with the first
    output) and outputs nothing. At-least-once (Tansu): it re-emits the same ids, because
    the first output may not have been delivered before a crash."""
    cases = grid_app.cases
    cases.exactly_once = exactly_once
    msg = located(grid_app, str(uuid.uuid4()))
    p = msg.partition
    cases.stores[p] = cases._new_store(p)
    first, _ = cases.handle(str(p), [record(T.LOCATED, msg.value, 0)])
    cases_log, index_log = changelog_topics(grid_app.settings.app_id)
    events = [orjson.loads(r.value) for r in first if r.topic == T.CASE_EVENTS]
    assert [e["type"] for e in events] == ["reported", "filed", "dispatched"]
    assert [r.topic for r in first].count(T.DISPATCH) == 1
    # the state changes ride in the same output, in the unit's own changelog partition
    assert {(r.topic, r.partition) for r in first if r.topic in (cases_log, index_log)} == {
        (cases_log, p), (index_log, p)}
    again, _ = cases.handle(str(p), [record(T.LOCATED, msg.value, 1)])
    if exactly_once:
        assert again == []
    else:
        assert [orjson.loads(r.value)["event_id"] for r in again if r.topic == T.CASE_EVENTS] \
            == [e["event_id"] for e in events]


def test_the_state_written_is_the_state_restored(grid_app):
    """What a unit writes to its changelogs, read back into a fresh store, knows the case:
    a copy of the report handled after the restore outputs nothing."""
    cases = grid_app.cases
    msg = located(grid_app, str(uuid.uuid4()))
    p = msg.partition
    cases.stores[p] = cases._new_store(p)
    out, _ = cases.handle(str(p), [record(T.LOCATED, msg.value)])
    cases_log, _index_log = changelog_topics(grid_app.settings.app_id)
    fresh = cases._new_store(p)
    for r in out:  # what _restore does with the changelog records
        if r.topic == cases_log:
            fresh.cases[r.key] = r.value
        elif r.topic.endswith("-report-index-changelog"):
            fresh.report_index[r.key] = r.value
    fresh.invalidate()
    cases.stores[p] = fresh
    assert fresh.open_count() == 1
    again, _ = cases.handle(str(p), [record(T.LOCATED, msg.value, 1)])
    assert again == []


def test_listeners_hear_of_a_batch_only_when_told_after_its_commit(grid_app):
    heard = []
    grid_app.listeners.append(lambda kind, **kw: heard.append(kind))
    cases = grid_app.cases
    msg = located(grid_app, str(uuid.uuid4()))
    cases.stores[msg.partition] = cases._new_store(msg.partition)
    _out, done = cases.handle(str(msg.partition), [record(T.LOCATED, msg.value)])
    assert heard == []
    done()
    assert heard == ["effects"]
