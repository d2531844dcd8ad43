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
    return SimpleNamespace(topic=topic, value=value, partition=0, offset=offset, timestamp=0,
                           headers=())


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


def intake_out(grid_app: GridApp, raws: list[bytes | None], offset: int = 0,
               partition: int = 3) -> list:
    """The intake's output for ``raws`` read at ``offset``… of grid.reports.v1[partition]."""
    origins = [(T.REPORTS, partition, offset + i) for i in range(len(raws))]
    out, _ok, _dead = grid_app.intake.intake(raws, [T.REPORTS] * len(raws), origins)
    return out


def consumed(o, offset: int = 0) -> SimpleNamespace:
    """An intake output record as the case loop consumes it."""
    return SimpleNamespace(topic=o.topic, value=o.value, key=o.key, partition=o.partition,
                           offset=offset, timestamp=0, headers=list(o.headers))


def reports_in(out: list) -> list[str]:
    """Report ids of the ``reported`` and ``merged`` events in ``out``, in order."""
    events = [orjson.loads(r.value) for r in out if r.topic == T.CASE_EVENTS]
    return [e["data"]["report"]["report_id"] if e["type"] == "reported"
            else e["data"]["report_id"] for e in events if e["type"] in ("reported", "merged")]


def test_the_intake_sends_everything_to_the_located_topic_with_its_origin(grid_app):
    rid = str(uuid.uuid4())
    out = intake_out(grid_app, [report(rid), b"not json", None], offset=40)
    assert [r.topic for r in out] == [T.LOCATED] * 3
    assert [dict(r.headers)["origin"] for r in out] == [
        f"{T.REPORTS}:3:{o}".encode() for o in (40, 41, 42)]
    assert [T.DEAD_LETTER in r.headers for r in out] == [False, True, True]
    assert orjson.loads(out[0].value)["report"]["report_id"] == rid
    assert [orjson.loads(r.value)["reason"] for r in out[1:]] == ["invalid_json", "null_value"]
    # dead letters go to the located partition of their report partition's number
    assert [r.partition for r in out[1:]] == [3 % grid_app.settings.partitions] * 2


def test_what_the_intake_sends_again_is_handled_once(grid_app):
    """The intake is at-least-once: after a crash it repeats a batch. The case loop drops
    every record at or below the highest origin it handled for that report partition, and
    forwards each dead letter to the DLQ exactly once."""
    heard: list = []
    grid_app.listeners.append(lambda kind, **kw: heard.append((kind, kw.get("reasons"))))
    cases = grid_app.cases
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    out = intake_out(grid_app, [report(first), None, report(second)], offset=10)
    p = out[0].partition
    assert out[2].partition == p  # same street
    (bad,) = [o for o in out if T.DEAD_LETTER in o.headers]
    cases.stores[p] = store = cases._new_store(p)
    good = [o for o in out if T.DEAD_LETTER not in o.headers]
    got, done = cases.handle(str(p), [consumed(o, i) for i, o in enumerate(good)])
    done()
    assert store.handled_to(f"{T.REPORTS}:3") == 12
    assert reports_in(got) == [first, second]
    assert ("rejected", None) not in heard
    # the batch again (a crash before the intake committed), then the next report
    third = str(uuid.uuid4())
    more = intake_out(grid_app, [report(third)], offset=13)
    assert more[0].partition == p
    again, _ = cases.handle(str(p), [consumed(o, 5 + i) for i, o in enumerate([*good, *more])])
    assert reports_in(again) == [third]
    assert store.handled_to(f"{T.REPORTS}:3") == 13
    # the dead letter, in its own partition, twice: one DLQ entry
    q = bad.partition
    cases.stores.setdefault(q, cases._new_store(q))
    dlq, done = cases.handle(str(q), [consumed(bad, 0), consumed(bad, 1)])
    done()
    assert [(r.topic, orjson.loads(r.value)["reason"]) for r in dlq if r.topic == T.DLQ] == [
        (T.DLQ, "null_value")]
    assert ("rejected", ["null_value"]) in heard


@pytest.mark.parametrize("rejected", [False, True])
def test_two_intake_writers_interleaved_lose_and_double_nothing(grid_app, rejected):
    """A zombie intake worker and the new owner of its report partition write the same
    records, each in order, interleaved: every report becomes one case (or, rejected, one
    DLQ entry)."""
    cases = grid_app.cases
    rids = [str(uuid.uuid4()) for _ in range(6)]
    raws = [b"{" + r.encode() if rejected else report(r) for r in rids]
    out = intake_out(grid_app, raws, offset=100)
    p = out[0].partition
    assert {o.partition for o in out} == {p}
    cases.stores[p] = cases._new_store(p)
    # The zombie committed offset 102 once its output for 100 and 101 was acknowledged, so
    # those are in the log before anything of the new owner, which starts at 102. Then the
    # zombie goes on with 102-104 while the new owner writes 102-105.
    zombie, new_owner = out[2:5], out[2:]
    interleaved = [*out[:2], new_owner[0], zombie[0], zombie[1], new_owner[1], new_owner[2],
                   zombie[2], new_owner[3]]
    got = []
    for i, o in enumerate(interleaved):  # one record a batch: the mark carried between them
        batch, _ = cases.handle(str(p), [consumed(o, i)])
        got += batch
    if rejected:
        dlq = [orjson.loads(r.value) for r in got if r.topic == T.DLQ]
        assert [d["original_excerpt"][1:] for d in dlq] == rids
    else:
        assert reports_in(got) == rids


def test_a_report_read_again_later_gets_the_verdict_of_its_first_reading(grid_app):
    """Too far in the future is measured from the record's own time: a report read again
    after a crash, hours later, is rejected as it was the first time (the case loop would
    otherwise get it once as a dead letter and once as a case, in two partitions)."""
    from datetime import UTC, datetime

    def at(h: int, m: int) -> datetime:
        return datetime(2026, 11, 21, h, m, tzinfo=UTC)  # report()'s reported_at: 01:30

    rid = str(uuid.uuid4())
    verdicts = []
    # written (and first read) 15 min before the problem was observed; 1 min before
    for sent, first in ((at(1, 15), at(1, 16)), (at(1, 29), at(1, 29))):
        for now in (first, at(4, 30)):  # read, then read again after a crash
            grid_app.intake.clock = SimpleNamespace(  # engine time = real time, read at now
                now=lambda now=now: now, at=lambda s: datetime.fromtimestamp(s, UTC))
            _out, ok, dead = grid_app.intake.intake(
                [report(rid)], [T.REPORTS], [(T.REPORTS, 0, 7)], [int(sent.timestamp() * 1000)])
            verdicts.append(([m.report.rid for m in ok],
                             [(d.reason, "in the future" in d.message) for d in dead]))
    rejected = ([], [("validation", True)])
    assert verdicts == [rejected, rejected, ([rid], []), ([rid], [])]
