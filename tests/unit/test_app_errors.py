"""A report or command the engine fails on goes to the DLQ, never silently nowhere (pure:
a GridApp is built but never started; the loops' output records are read, no broker)."""

from __future__ import annotations

import base64
import uuid
from types import SimpleNamespace

import orjson
import pytest

from streams import topics as T
from streams.app import GridApp
from streams.intake import POISON_TRIES
from streams.settings import Settings
from streams.sinks import Out


@pytest.fixture(scope="module")
def grid_app(tmp_path_factory) -> GridApp:
    s = Settings.from_env(broker="kafka://127.0.0.1:9", data_dir=str(
        tmp_path_factory.mktemp("data")), app_id=f"unit-{uuid.uuid4().hex[:6]}")
    return GridApp(s)


def report(rid: str) -> bytes:
    return orjson.dumps({
        "schema": "grid.report/1", "report_id": rid, "source": "supervisor",
        "reporter_id": "sup-1", "reported_at": "2026-11-21T09:30:00+08:00",
        "location": {"lon": 121.5262, "lat": 31.2708, "crs": "gcj02"}, "type_code": "0101",
        "description": "井盖缺失"})


def sent(out: list[Out], topic: str) -> list[dict]:
    return [orjson.loads(r.value) for r in out if r.topic == topic]


def forwarded(out: list[Out]) -> tuple[list[dict], list[dict]]:
    """The intake's output: (located reports, dead letters), both on the located topic."""
    assert {r.topic for r in out} <= {T.LOCATED}
    return ([orjson.loads(r.value) for r in out if T.DEAD_LETTER not in r.headers],
            [orjson.loads(r.value) for r in out if T.DEAD_LETTER in r.headers])


def record(topic: str, value: bytes) -> SimpleNamespace:
    """What the case loop reads of a consumed record."""
    return SimpleNamespace(topic=topic, value=value, partition=0, offset=0, timestamp=0,
                           headers=())


def test_a_located_report_the_engine_fails_on_goes_to_the_dlq(grid_app, monkeypatch):
    rid = str(uuid.uuid4())
    out, _located, _dead = grid_app.intake.intake([report(rid)])
    (located,) = [r for r in out if r.topic == T.LOCATED]
    cases = grid_app.cases
    store = cases.stores[located.partition] = cases._new_store(located.partition)

    def boom(*a, **kw):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "on_located", boom)
    out, _done = cases.handle(str(located.partition), [
        record(T.LOCATED, located.value), record(T.COMMANDS, b"{}")])
    (dead, bad_command) = sent(out, T.DLQ)
    assert dead["reason"] == "internal_error" and dead["report_id"] == rid
    assert "RuntimeError: disk on fire" in dead["message"]
    assert orjson.loads(base64.b64decode(dead["original_b64"]))["report"]["report_id"] == rid
    # the batch went on after the failure: the command behind it was still handled
    assert bad_command["reason"] == "invalid_command"


def test_intake_sends_each_report_to_the_dlq_when_the_engine_fails(grid_app, monkeypatch):
    calls = []

    def boom(raws, now, channels=None, sent=None):
        calls.append(len(raws))
        raise ValueError("locator gone")

    monkeypatch.setattr(grid_app.engine, "intake_each", boom)
    rids = [str(uuid.uuid4()) for _ in range(3)]
    out, _located, _dead = grid_app.intake.intake([report(r) for r in rids])
    located, dead = forwarded(out)
    assert [(d["reason"], d["report_id"]) for d in dead] == [("internal_error", r) for r in rids]
    assert "failed on this report 3 times: ValueError: locator gone" in dead[0]["message"]
    assert calls == [3] + [1] * 3 * POISON_TRIES  # the batch, then each report 3 times
    assert located == []


def test_a_poison_report_does_not_take_its_batch_with_it(grid_app, monkeypatch):
    """The engine raises on one report (every time): that one is dead-lettered after
    POISON_TRIES attempts, the reports before and after it are handled as usual."""
    poison = str(uuid.uuid4())
    real = grid_app.engine.intake_each

    def poisoned(raws, now, channels=None, sent=None):
        if any(poison.encode() in (r or b"") for r in raws):
            raise RecursionError("the classifier recursed on this text")
        return real(raws, now, channels, sent)

    monkeypatch.setattr(grid_app.engine, "intake_each", poisoned)
    before, after = str(uuid.uuid4()), str(uuid.uuid4())
    out, _located, _dead = grid_app.intake.intake(
        [report(before), report(poison), None, report(after)])
    located, dead = forwarded(out)
    assert [(d["reason"], d["report_id"]) for d in dead] == [
        ("internal_error", poison), ("null_value", None)]
    assert [m["report"]["report_id"] for m in located] == [before, after]
