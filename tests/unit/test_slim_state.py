"""The slim case (grid.case/2): each field that replaces the history is folded right, the
snapshot does not grow with the events, a grid.case/1 record still decodes, and a report or
command delivered twice neither doubles nor loses output (issue 14)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from bench.mix import messages, simulator
from grid import lifecycle
from grid.events import parse_event
from grid.lifecycle import apply, open_case, replay
from grid.models import Action, CaseState, Command, Report
from grid.open311 import request_status
from grid.service import Engine, report_fingerprint
from rules import check_deadlines
from streams.state import CaseStore, decode_case, encode_case
from tests.fixtures.recording import RecordingEngine
from tests.unit.test_lifecycle import PLACE, cmd, decision, dispatched, report

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
V1 = Path(__file__).resolve().parents[1] / "fixtures" / "cases" / "grid-case-v1.jsonl"
S = CaseState


@pytest.fixture(scope="module")
def engine() -> RecordingEngine:
    return RecordingEngine.load()


def _report(engine: Engine, type_code: str | None = "0603", lon=121.514, lat=31.299, **kw):
    data = dict(report_id=str(uuid.uuid4()), source="supervisor", reporter_id="sup-7",
                reported_at=NOW, location={"lon": lon, "lat": lat}, type_code=type_code)
    r = Report.model_validate({**data, **kw})
    return engine.decide(r, engine.locator.locate(lon, lat), NOW)


def _cmd(case, action: Action, actor: str, role: str, **kw) -> Command:
    return Command(command_id=str(uuid.uuid4()), case_id=case.case_id, action=action,
                   actor=actor, role=role, **kw)


# --- the folds ---------------------------------------------------------------------------------

def test_seq_command_ids_recent_and_reason_follow_every_event():
    case, opening = open_case(report(), PLACE, decision(), NOW)
    assert case.seq == 3 and case.command_ids == [] and case.reason == "auto-dispatch"
    assert [e.event_id for e in case.recent] == [e.event_id for e in opening]
    accept = cmd(Action.ACCEPT, "department", reason="on my way")
    case, ev = apply(case, accept, NOW)
    assert case.seq == 4 and ev[0].seq == 4 and ev[0].event_id == f"{case.case_id}:4"
    assert case.command_ids == [accept.command_id] and case.recent == ev
    assert case.reason == "on my way"
    warn = cmd(Action.WARN, "system", "engine", stage="dispose", reason="80 % used")
    case, ev = apply(case, warn, NOW)
    assert case.reason == "on my way"  # a warning is not the case's last word
    assert case.command_ids == [accept.command_id, warn.command_id] and case.recent == ev
    assert apply(case, accept, NOW) == (case, [])  # applied before: nothing


def test_recent_keeps_the_report_and_the_decision_once():
    case, opening = open_case(report(), PLACE, decision(), NOW)
    reported, filed, _ = case.recent
    assert reported.data.report == {} and reported.data.placement == {}
    assert filed.data.decision == {}  # the case's own decision
    assert lifecycle.redelivered(case, report_id=case.report.rid) == opening  # put back
    raw = encode_case(case)
    assert raw.count(b'"description"') == 1 and decode_case(raw) == case


def test_a_second_decision_of_one_input_keeps_the_first_whole():
    case, _ = open_case(report(), PLACE, decision(), NOW)
    first = lifecycle._kept(case.recent[1])  # as if an input brought two decisions
    other = case.decision.model_copy(update={"winner": "r2"})
    e2 = first.model_copy(update={"seq": 4, "event_id": f"{case.case_id}:4",
                                  "data": first.data.model_copy(update={
                                      "decision": other.model_dump(mode="json")})})
    mid = case.model_copy(update={"recent": [case.recent[1]]})
    after = lifecycle.evolve(mid, e2)
    assert after.decision.winner == "r2"
    assert after.recent[0].data.decision["winner"] == "r1" and after.recent[1].data.decision == {}


def test_unit_name_follows_the_last_dispatch(engine):
    fx = engine.on_located(_report(engine, "0914", description="群租"), None, [], NOW)
    case = fx.case
    [lead] = [w for w in fx.work_orders if w.role == "lead"]
    assert case.unit_name == lead.unit_name and case.unit_name
    case = engine.on_command(_cmd(case, Action.RETURN, case.unit, "department",
                                  reason="不归我们"), case, NOW).case
    redo = engine.on_command(_cmd(case, Action.DISPATCH, "cc", "command_center",
                                  department="urban_enforcement"), case, NOW)
    assert redo.events[0].type == "redispatched"
    assert redo.case.unit_name == redo.events[0].data.unit_name
    assert replay(engine.history(redo.case)) == redo.case


def test_follow_up_at_starts_the_limits_of_a_followed_up_emergency(engine):
    case = engine.on_located(_report(engine, "1008", description="车祸"), None, [], NOW).case
    assert case.state is S.TRANSFERRED and case.follow_up_at is None
    later = NOW + timedelta(days=3)
    case = engine.on_command(_cmd(case, Action.FOLLOW_UP, "cc", "command_center",
                                  type_code="0206"), case, later).case
    assert case.follow_up_at == later
    assert check_deadlines(case, later + (case.deadlines["dispose"] - later) / 2,
                           engine.ruleset) == []


def test_called_back_allows_one_callback_per_closing(engine):
    from tests.unit.test_joint_hotline import _close, _hotline_case

    case, _ = _close(engine, _hotline_case(engine).case)
    assert not case.called_back
    fx = engine.on_command(_cmd(case, Action.CALLBACK, "hotline-12345", "hotline",
                                satisfaction="not_satisfied"), case, NOW)
    assert fx.case.called_back and fx.case.state is S.REWORK
    case, _ = _close(engine, fx.case)
    assert not case.called_back  # a new closing: a new callback
    fx = engine.on_command(_cmd(case, Action.CALLBACK, "hotline-12345", "hotline",
                                satisfaction="satisfied"), case, NOW)
    assert fx.case.called_back
    again = engine.on_command(_cmd(fx.case, Action.CALLBACK, "hotline-12345", "hotline",
                                   satisfaction="satisfied"), fx.case, NOW)
    assert again.events[0].type == "command_rejected"
    assert "already called back" in again.events[0].reason


def test_merged_reports_keep_reporter_and_fingerprint(engine):
    first = engine.on_located(_report(engine, "0603"), None, [], NOW).case
    dup = _report(engine, "0603", lon=121.51401, lat=31.29901, reporter_id="hotline-12345")
    fx = engine.on_located(dup, None, [first], NOW)
    assert fx.merged_into == first.case_id
    [m] = fx.case.merged
    assert (m.report_id, m.reporter_id, m.fingerprint) == (
        dup.report.rid, "hotline-12345", report_fingerprint(dup.report))
    assert fx.case.reporters == ["sup-7", "hotline-12345"]
    assert fx.case.report_ids == [first.report.rid, dup.report.rid]


def test_reason_of_a_rejection_is_in_the_open311_notes(engine):
    case = engine.on_located(_report(engine, None, source="hotline_12345",
                                      description="qwzx"), None, [], NOW).case
    case = engine.on_command(_cmd(case, Action.REJECT, "cc", "command_center",
                                  reason="不属于网格管理范围"), case, NOW).case
    assert case.reason == "不属于网格管理范围"
    notes = request_status(case.report.rid, case, engine.taxonomy)["status_notes"]
    assert notes.endswith("(不属于网格管理范围)")


def test_the_snapshot_does_not_grow_with_the_events():
    case = dispatched()
    sizes = []
    for i in range(30):  # a warning and a supervision order per round, then more
        for c in (cmd(Action.REQUEST_EXTENSION, "department", extension_minutes=30),
                  cmd(Action.DENY_EXTENSION, "command_center", "cc", reason="no")):
            case, _ = apply(case, c, NOW + timedelta(minutes=i))
        sizes.append(len(encode_case(case)))
    assert case.seq == 3 + 60
    # only command_ids grows (~40 bytes a command); the history grew ~600 bytes an event
    assert sizes[-1] - sizes[0] < 29 * 2 * 50


# --- a grid.case/1 record -----------------------------------------------------------------------

def _v1() -> list[dict]:
    return [json.loads(line) for line in V1.read_text().splitlines()]


def test_a_v1_record_decodes_with_the_new_fields_derived_from_its_history():
    hot, crash, rejected = (decode_case(json.dumps(d).encode()) for d in _v1())
    for old, case in zip(_v1(), (hot, crash, rejected), strict=True):
        history = [parse_event(e) for e in old["history"]]
        assert case.schema_ == "grid.case/2"
        assert case == replay(history)  # the stored fields and the derived ones alike
        assert case.seq == len(history) and case.state.value == old["state"]
        assert "history" not in orjson.loads(encode_case(case))
        assert decode_case(encode_case(case)) == case  # written back as /2
    last_dispatch = next(e for e in reversed(_v1()[0]["history"]) if e["type"] == "dispatched")
    assert hot.called_back and hot.unit_name == last_dispatch["data"]["unit_name"] is not None
    assert [m.reporter_id for m in hot.merged] == ["sup-9"] and hot.merged[0].fingerprint
    assert hot.reporters == ["hotline-12345", "sup-9"]
    assert [e.type for e in hot.recent] == ["callback"]
    assert len(hot.command_ids) == 7  # the merge and six commands
    assert crash.follow_up_at == datetime.fromisoformat(_v1()[1]["history"][2]["at"])
    assert [e.type for e in crash.recent] == ["follow_up_opened", "dispatched"]
    assert rejected.reason == "不属于网格管理范围"


def test_a_v1_case_goes_on_after_the_upgrade(engine):
    hot = decode_case(V1.read_text().splitlines()[0].encode())
    again = engine.on_command(_cmd(hot, Action.CALLBACK, "hotline-12345", "hotline",
                                   satisfaction="satisfied"), hot, hot.updated_at)
    assert "already called back" in again.events[0].reason  # called_back came from history
    store = CaseStore({hot.case_id.encode(): V1.read_text().splitlines()[0].encode()}, {})
    assert store.get(hot.case_id) == hot and store.open_count() == 0


def test_the_reports_of_a_v1_case_delivered_again_are_duplicates_not_conflicts(engine):
    hot = decode_case(V1.read_text().splitlines()[0].encode())
    for r in (hot.report, None):
        msg = engine.decide(hot.report, hot.placement, NOW)
        if r is None:  # the merged one: same id, other content -> a conflict, by fingerprint
            msg = msg.model_copy(update={"report": hot.report.model_copy(update={
                "report_id": uuid.UUID(hot.merged[0].report_id)})})
        fx = engine.on_located(msg, hot, [], NOW)
        assert fx.duplicate_delivery and fx.events == []  # neither is the latest input
        assert (fx.conflict is None) == (r is not None)


# --- the same report or command twice -----------------------------------------------------------

def test_the_latest_input_delivered_again_re_emits_its_output_with_the_same_ids(engine):
    msg = _report(engine, "0603")
    first = engine.on_located(msg, None, [], NOW)
    again = engine.on_located(msg, first.case, [], NOW)
    assert again.duplicate_delivery and again.case == first.case
    assert again.events == first.events and again.work_orders == first.work_orders
    assert again.alerts == first.alerts and again.replies == first.replies
    c = _cmd(first.case, Action.ACCEPT, first.case.unit or first.case.department, "department")
    done = engine.on_command(c, first.case, NOW)
    twice = engine.on_command(c, done.case, NOW)
    assert twice.duplicate_delivery and twice.events == done.events and twice.case == done.case


def test_an_older_input_delivered_again_changes_nothing_and_emits_nothing(engine):
    msg = _report(engine, "0603")
    first = engine.on_located(msg, None, [], NOW)
    holder = first.case.unit or first.case.department
    accept = _cmd(first.case, Action.ACCEPT, holder, "department")
    case = engine.on_command(accept, first.case, NOW).case
    case = engine.on_command(_cmd(case, Action.DISPOSE, holder, "department", reason="ok"),
                             case, NOW).case
    for fx in (engine.on_located(msg, case, [], NOW), engine.on_command(accept, case, NOW)):
        assert fx.duplicate_delivery and fx.case == case
        assert fx.events == [] and fx.work_orders == [] and fx.alerts == []
    # a reused report id with other content is still told apart from a redelivery
    other = _report(engine, "0603", description="something else")
    other = other.model_copy(update={"report": other.report.model_copy(
        update={"report_id": msg.report.report_id})})
    fx = engine.on_located(other, case, [], NOW)
    assert fx.duplicate_delivery and "other content" in fx.conflict


def test_a_merged_report_delivered_again(engine):
    first = engine.on_located(_report(engine, "0603"), None, [], NOW).case
    dup = _report(engine, "0603", lon=121.51401, lat=31.29901)
    fx = engine.on_located(dup, None, [first], NOW)
    again = engine.on_located(dup, fx.case, [], NOW)
    assert again.duplicate_delivery and again.events == fx.events
    holder = fx.case.unit or fx.case.department
    case = engine.on_command(_cmd(fx.case, Action.ACCEPT, holder, "department"), fx.case,
                             NOW).case
    late = engine.on_located(dup, case, [], NOW)
    assert late.duplicate_delivery and late.events == [] and late.conflict is None


def test_the_store_writes_nothing_for_a_duplicate(engine):
    writes: list[bytes] = []
    cases: dict[bytes, bytes] = {}
    index: dict[bytes, bytes] = {}

    def write(table: str, key: bytes, value: bytes) -> None:
        (cases if table == "cases" else index)[key] = value
        writes.append(value)

    store = CaseStore(cases, index, writer=write)
    msg = _report(engine, "0603")
    store.on_located(engine, msg, NOW)
    n = len(writes)
    again = store.on_located(engine, msg, NOW)
    assert again.duplicate_delivery and len(writes) == n


def test_at_least_once_sink_sends_state_after_the_output_is_acknowledged():
    from streams.sinks import AtLeastOnceSink, Out

    order: list[str] = []

    class Batcher:
        async def send(self, prod, records):
            order.append("+".join(sorted({r.topic for r in records})))
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(None)
            return [fut]

    async def commit(offsets):
        order.append("offsets")

    async def run():
        sink = AtLeastOnceSink("x", commit)
        sink.producer = object()
        sink._batcher = Batcher()
        await sink.commit("0", [Out("grid-cases-changelog", b"k", b"v", 0),
                                Out("grid.case-events.v1", b"k", b"e"),
                                Out("grid-report-index-changelog", b"r", b"k", 0),
                                Out("grid.dispatch.v1", b"d", b"w")], {"tp": 1})
        await sink.commit("0", [Out("grid.dlq.v1", None, b"x")], {})

    asyncio.run(run())
    assert order == ["grid.case-events.v1+grid.dispatch.v1",
                     "grid-cases-changelog+grid-report-index-changelog", "offsets",
                     "grid.dlq.v1"]


def test_each_merged_duplicate_is_an_input_of_its_own_so_recent_stays_small():
    """A hot case merges many duplicates (the stream of 3 points): ``recent`` holds the
    latest merge only, so the snapshot does not grow with them."""
    engine = Engine.load()
    raws = messages(simulator(engine.locator, seed=11, n_points=3), 60, NOW)
    store = CaseStore({}, {})
    located = engine.intake(raws, NOW)[0]
    for msg in located:
        store.on_located(engine, msg, NOW)
    merged_cases = [c for raw in store.cases.values()
                    if (c := decode_case(raw)) is not None and len(c.merged) >= 5]
    assert merged_cases, "the stream of 3 points must merge duplicates"
    for case in merged_cases:
        assert [e.type for e in case.recent] == ["merged"]
        assert case.recent[0].data.report_id == case.merged[-1].report_id
