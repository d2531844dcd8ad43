"""The read store (SQLite and a real PostgreSQL) answers as the in-memory projection does,
applies each record exactly once with its offsets, and refuses a fenced writer."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from grid.projection import Projection
from grid.report import read_jsonl
from store import schema as S
from store.db import connect
from store.reader import ReadStore
from store.writer import Fenced, Record, StoreWriter
from streams import topics as T

pytestmark = pytest.mark.integration

LOG = Path(__file__).parent.parent / "fixtures" / "events" / "district.jsonl"
CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 3, 25, 12, tzinfo=CST)
MARCH = (datetime(2026, 3, 1, tzinfo=CST), datetime(2026, 4, 1, tzinfo=CST))


@pytest.fixture(scope="module")
def events() -> list[dict]:
    with LOG.open("rb") as f:
        return list(read_jsonl(f))


def records(events: list[dict], start: int = 0) -> list[Record]:
    """The events as consumed records: partition by case id, offsets in log order."""
    out, next_offset = [], {}
    for e in events:
        p = sum(e["case_id"].encode()) % 3
        off = next_offset.get(p, start)
        next_offset[p] = off + 1
        out.append(Record(T.CASE_EVENTS, p, off, orjson.dumps(e)))
    return out


def loaded(url: str, events: list[dict], batches: int = 4) -> tuple[StoreWriter, ReadStore]:
    w = StoreWriter(connect(url))
    w.load_positions([])
    recs = records(events)
    size = -(-len(recs) // batches)
    for i in range(0, len(recs), size):
        w.apply(recs[i:i + size])
    return w, ReadStore(w.engine)


def projection(events: list[dict]) -> Projection:
    p = Projection()
    p.apply_all(events)
    return p


def test_store_matches_the_projection(store_url, events):
    _, rs = loaded(store_url, events)
    p = projection(events)
    assert rs.count() == len(p.cases) == 11
    for cid, c in p.cases.items():
        assert rs.get(cid).to_dict(NOW) == c.to_dict(NOW), cid
        assert rs.case_for_report(p.detail(cid)["report"]["report_id"]) == cid
    for day in (date(2026, 2, 27), date(2026, 3, 2), date(2026, 3, 10), date(2026, 3, 20)):
        assert rs.counters(day, NOW) == p.counters(day, NOW), day
    assert rs.open_counts() == p.open_counts()
    assert rs.tier_flow() == p.tier_flow()
    assert rs.tier_flow(date(2026, 3, 2)) == p.tier_flow(date(2026, 3, 2))
    assert [c.case_id for c in rs.overdue(NOW)] == [c.case_id for c in p.overdue(NOW)]
    assert rs.overdue(NOW), "the fixture has an overdue case at NOW"
    for fig in ("department_figures", "street_figures"):
        got = getattr(rs, fig)(*MARCH, now=NOW, district="310110")
        want = getattr(p, fig)(*MARCH, now=NOW, district="310110")
        assert {k: v.to_dict() for k, v in got.items()} == \
            {k: v.to_dict() for k, v in want.items()}
    for dept in ("sanitation", "roads"):
        assert rs.work_orders(dept) == p.work_orders(dept)
    assert rs.open_by_street(NOW) == p.open_by_street(NOW)
    for day in (date(2026, 3, 2), date(2026, 3, 10)):
        for key in ("reported", "filed", "dispatched", "closed", "self_closed", "merged"):
            assert [c.case_id for c in rs.day_cases(day, key, NOW)] == \
                [c.case_id for c in p.day_cases(day, key, NOW)], (day, key)
    assert [c.case_id for c in rs.day_cases(date(2026, 3, 2), "overdue", NOW)] == \
        [c.case_id for c in p.overdue(NOW)]
    for text in ("fixture A", "FIXTURE b1", "310110001-", events[0]["case_id"],
                 events[0]["data"]["report"]["report_id"], "no such text", "50%_"):
        assert [c.case_id for c in rs.search(text, "310110")] == \
            [c.case_id for c in p.search(text, "310110")], text
    for cid in p.cases:
        mine, theirs = rs.detail(cid, NOW), p.detail(cid, NOW)
        assert mine["history"] == theirs["history"]
        assert (mine["report"], mine["decision"]) == (theirs["report"], theirs["decision"])


def test_filters_and_keyset_pages_match(store_url, events):
    _, rs = loaded(store_url, events)
    p = projection(events)
    for filters in ({}, {"state": "open"}, {"state": ["closed", "rejected"]},
                    {"department": "sanitation"}, {"street": "310110001"},
                    {"overdue": True, "now": NOW}, {"overdue": False, "now": NOW},
                    {"district": "310110", "state": "open"}):
        want, cursor, got = [c.case_id for c in p.list(limit=100, **filters)[0]], None, []
        while True:  # pages of 2 until the cursor runs out
            page, cursor = rs.list(limit=2, cursor=cursor, **filters)
            got += [c.case_id for c in page]
            if cursor is None:
                break
        assert got == want, filters


def test_redelivered_and_reordered_records_fold_once(store_url, events):
    w = StoreWriter(connect(store_url))
    w.load_positions([])
    shuffled = list(events) * 2  # every event twice, some before their predecessors
    random.Random(5).shuffle(shuffled)
    recs = records(shuffled)
    for i in range(0, len(recs), 7):
        w.apply(recs[i:i + 7])
    rs = ReadStore(w.engine)
    p = projection(events)
    assert {cid: rs.get(cid).to_dict(NOW) for cid in p.cases} == \
        {cid: c.to_dict(NOW) for cid, c in p.cases.items()}
    with w.engine.connect() as conn:
        n_events = conn.scalar(select(func.count()).select_from(S.case_events))
        waiting = conn.scalar(select(func.count()).select_from(S.cases)
                              .where(S.cases.c.waiting.is_(True)))
    assert n_events == len({e["event_id"] for e in events})
    assert waiting == 0


def test_offsets_move_with_the_rows_and_a_batch_applies_once(store_url, events):
    w, rs = loaded(store_url, events)
    stored = StoreWriter(w.engine).load_positions([(T.CASE_EVENTS, p) for p in range(3)])
    assert sum(stored.values()) == len(events)
    before = rs.get(events[0]["case_id"]).to_dict(NOW)
    again = w.apply(records(events))  # the whole log once more: below the positions
    assert again.skipped == len(events) and again.events == []
    assert rs.get(events[0]["case_id"]).to_dict(NOW) == before


def test_a_fenced_writer_writes_nothing(store_url, events):
    recs = records(events)
    a = StoreWriter(connect(store_url))
    a.load_positions([])
    a.apply(recs[:10])
    zombie = StoreWriter(a.engine)
    zombie.load_positions([])  # looked before ...
    a.apply(recs[10:20])  # ... the other projector moved on
    with pytest.raises(Fenced, match="another projector"):
        zombie.apply(recs[10:30])
    rs = ReadStore(a.engine)
    with a.engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(S.case_events))
    assert n == len({r.value for r in recs[:20]} & {r.value for r in recs[:20]})
    assert rs.count() == len({orjson.loads(r.value)["case_id"] for r in recs[:20]
                              if orjson.loads(r.value)["type"] == "reported"})


def test_a_failed_transaction_leaves_rows_and_offsets_as_they_were(store_url, events):
    w = StoreWriter(connect(store_url))
    w.load_positions([])
    recs = records(events)
    w.apply(recs[:10])
    boom = StoreWriter(w.engine, names=lambda kind, code: 1 / 0)  # fails mid-transaction
    boom.positions = dict(w.positions)
    with pytest.raises(ZeroDivisionError):
        boom.apply(recs[10:40])
    tps = [(T.CASE_EVENTS, p) for p in range(3)]
    stored = StoreWriter(w.engine).load_positions(tps)
    assert stored == {tp: w.positions.get(tp, 0) for tp in tps}
    assert sum(stored.values()) == 10
    assert ReadStore(w.engine).count() == len({orjson.loads(r.value)["case_id"]
                                               for r in recs[:10]})
    w.apply(recs[10:])  # and the next try applies them
    assert ReadStore(w.engine).count() == 11


def test_malformed_records_are_skipped_and_counted(store_url, events):
    w = StoreWriter(connect(store_url))
    w.load_positions([])
    bad = [Record(T.CASE_EVENTS, 0, 0, b"not json"), Record(T.CASE_EVENTS, 0, 1, None),
           Record(T.CASE_EVENTS, 0, 2, b'{"event_id": "x"}'), Record(T.ALERTS, 0, 0, b"[]"),
           Record(T.DISPATCH, 0, 0, b'{"work_order_id": 1}')]
    out = w.apply(bad)
    # the three case-event records and the alert that is not an object (the malformed
    # work order is logged by its own table's check)
    assert (out.skipped, out.events, out.alerts, out.work_orders) == (4, [], [], 0)
    assert StoreWriter(w.engine).load_positions([(T.CASE_EVENTS, 0), (T.ALERTS, 0)]) == {
        (T.CASE_EVENTS, 0): 3, (T.ALERTS, 0): 1}


def test_case_events_the_columns_cannot_hold_are_skipped_before_the_batch(store_url, events):
    """A naive time, a seq beyond the column, a non-text envelope field: skipped as malformed
    (PostgreSQL's binary COPY would refuse the first and third and truncate the second)."""
    w = StoreWriter(connect(store_url))
    w.load_positions([])
    first = next(e for e in events if e["type"] == "reported")
    bad = [{**first, "at": first["at"][:19]}, {**first, "seq": 2**31},
           {**first, "actor": {"name": "x"}}]
    recs = [Record(T.CASE_EVENTS, 0, i, orjson.dumps(e)) for i, e in enumerate([*bad, first])]
    out = w.apply(recs)
    assert [e["event_id"] for e in out.events] == [first["event_id"]]
    assert ReadStore(w.engine).get(first["case_id"]) is not None
    with w.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(S.case_events)) == 1
    assert w.positions[(T.CASE_EVENTS, 0)] == 4


def test_a_case_event_its_type_does_not_allow_is_skipped_before_the_batch(store_url, events,
                                                                         caplog):
    """The typed check runs once per record, before the transaction: an event whose data
    its type does not allow is skipped and named in the log; the rest of the batch is
    applied in one go (no halving: nothing else is skipped)."""
    w = StoreWriter(connect(store_url))
    w.load_positions([])
    first = next(e for e in events if e["type"] == "reported")
    bad = {**first, "event_id": "bad:1", "data": {**first["data"], "report": "a string"}}
    recs = [Record(T.CASE_EVENTS, 0, i, orjson.dumps(e))
            for i, e in enumerate([bad, *events])]
    out = w.apply(recs)
    assert out.skipped == 1  # (an event twice in one batch is stored once, not counted)
    assert "bad:1" not in {e["event_id"] for e in out.events}
    assert [m for m in caplog.messages if "malformed case event" in m] == [
        m for m in caplog.messages if "bad:1" in m]
    assert "data.report" in next(m for m in caplog.messages if "bad:1" in m)
    with w.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(S.case_events)) == len(
            {e["event_id"] for e in events})
    assert w.positions[(T.CASE_EVENTS, 0)] == len(events) + 1


@pytest.mark.parametrize("first,last", [(date(2026, 3, 1), date(2026, 3, 31)),
                                        (date(2026, 2, 1), date(2026, 3, 5)),
                                        (date(2026, 3, 2), date(2026, 3, 2)),
                                        (date(2026, 1, 1), date(2026, 12, 31))])
def test_evaluation_from_the_store_equals_the_report_from_the_log(store_url, events, first,
                                                                  last):
    from grid.report import evaluate, evaluation_of

    _, rs = loaded(store_url, events)
    districts = sorted({e["district"] for e in events})
    assert len(districts) == 2  # D1 is in another district
    for district in districts:
        want = evaluate(events, district, first, last)
        got = evaluation_of(district, first, last, rs.evaluation)
        assert got.to_dict() == want.to_dict(), (district, first, last)
    march = evaluate(events, "310110", first, last)
    assert march.total.dispatched > 0 or first == date(2026, 3, 2)


def test_grid_report_reads_the_store_and_says_where_a_missing_one_should_be(store_url, events,
                                                                            tmp_path):
    from click.testing import CliRunner

    from grid.cli import main

    loaded(store_url, events)
    args = ["report", "--district", "310110", "--from", "2026-03-01", "--to", "2026-03-31",
            "--format", "json"]
    from_store = CliRunner().invoke(main, [*args, "--store", store_url])
    from_log = CliRunner().invoke(main, [*args, "--events", str(LOG)])
    assert from_store.exit_code == 0, from_store.output
    assert orjson.loads(from_store.output) == orjson.loads(from_log.output)
    assert orjson.loads(from_store.output)["total"]["dispatched"] == 7
    missing = CliRunner().invoke(main, args, env={"GRID_HOME": str(tmp_path / "none"),
                                                  "GRID_STORE_URL": ""})
    assert missing.exit_code == 1
    assert f"no read store at {tmp_path / 'none' / 'data' / 'store.db'}" in missing.output
    assert "grid up" in missing.output


def issue18_events() -> tuple[list[dict], list[dict], Any, Any, str]:
    """(events, work orders, joint case, hotline case, street) from the engine: a joint case
    (群租: a lead and two assisting departments) and a hotline case closed, called back
    not satisfied and reopened (2026-11-23/24)."""
    import uuid as _uuid

    from grid.models import Action, Command, Report
    from grid.service import Engine

    engine = Engine.load()
    at = datetime(2026, 11, 23, 10, tzinfo=CST)

    def opened(type_code: str, **kw):
        r = Report.model_validate({
            "report_id": str(_uuid.uuid4()), "source": "supervisor", "reporter_id": "sup-7",
            "reported_at": at, "location": {"lon": 121.514, "lat": 31.299},
            "type_code": type_code, **kw})
        return engine.on_located(engine.decide(r, engine.locator.locate(121.514, 31.299), at),
                                 None, [], at)

    hot_events: list = []  # the hotline case's events (Effects.events), in order

    def do(case, action, actor, role, when=at, **kw):
        fx = engine.on_command(Command(command_id=str(_uuid.uuid4()), case_id=case.case_id,
                                       action=action, actor=actor, role=role, **kw), case, when)
        hot_events.extend(fx.events)
        return fx

    joint = opened("0914", description="群租")
    street = joint.case.placement.street
    hot = opened("0604", source="hotline_12345", reporter_id="hotline-12345",
                 description="占用公共部位",
                 ticket={"hotline": "12345", "ticket_no": "SH12345-20261123-0007"})
    case = hot.case
    for action, actor, role, kw in (
            (Action.DISPOSE, case.department, "department", {"evidence_photos": ["x"]}),
            (Action.VERIFY, "sup-7", "supervisor", {"passed": True}),
            (Action.CLOSE, "cc", "command_center", {})):
        case = do(case, action, actor, role, **kw).case
    do(case, Action.CALLBACK, "hotline-12345", "hotline", at + timedelta(days=1),
       satisfaction="not_satisfied", reason="又堆回来了")
    events = [e.model_dump(mode="json", by_alias=True)
              for e in (*joint.events, *hot.events, *hot_events)]
    orders = [w.model_dump(mode="json", by_alias=True)
              for w in (*joint.work_orders, *hot.work_orders)]
    return events, orders, joint, hot, street


def test_units_assisting_work_orders_and_the_callback_are_stored(store_url):
    """Issue 18's facts in the store: the lead's unit, every work order with its unit and
    role, a unit listing the cases it holds a part of, satisfaction and reopening."""
    events, orders, joint, hot, street = issue18_events()
    w = StoreWriter(connect(store_url))
    w.load_positions([])
    w.apply(records(events) + [Record(T.DISPATCH, 0, i, orjson.dumps(o))
                               for i, o in enumerate(orders)])
    rs = ReadStore(w.engine)
    p = projection(events)
    for cid in (joint.case.case_id, hot.case.case_id):
        assert rs.get(cid).to_dict(NOW) == p.cases[cid].to_dict(NOW)
    j = rs.get(joint.case.case_id)
    assert (j.department, j.unit) == ("housing", f"{street}.housing")
    h = rs.get(hot.case.case_id)
    assert (h.state, h.satisfaction, h.reopens, h.closed_at) == (
        "rework", "not_satisfied", 1, None)
    with w.engine.connect() as conn:
        roles = sorted(conn.execute(select(S.work_orders.c.department, S.work_orders.c.unit,
                                           S.work_orders.c.role).where(
            S.work_orders.c.case_id == joint.case.case_id)).all())
    assert roles == [("housing", f"{street}.housing", "lead"),
                     ("public_security", f"{street}.public_security", "assisting"),
                     ("urban_enforcement", f"{street}.urban_enforcement", "assisting")]
    police, _, _ = rs.page(holder=("public_security", f"{street}.public_security"))
    assert [c.case_id for c in police] == [joint.case.case_id]  # assisting: listed
    other, _, _ = rs.page(holder=("public_security", "310110999.public_security"))
    assert other == []
    led, _, total = rs.page(unit=f"{street}.housing")
    assert [c.case_id for c in led] == [joint.case.case_id] and total == 1
    from grid.report import evaluate, evaluation_of

    day = date(2026, 11, 23)
    want = evaluate(events, "310110", day, day + timedelta(days=7)).to_dict()
    got = evaluation_of("310110", day, day + timedelta(days=7), rs.evaluation).to_dict()
    assert got == want
    units = {(u["department"], u["unit"]): u for u in got["units"]}
    assert units[("public_security", f"{street}.public_security")]["assisting"] == 1
    assert sum(u["callbacks"] for u in got["units"]) == 1
    assert sum(u["not_satisfied"] for u in got["units"]) == 1


def test_unit_figures_from_columns_filled_by_the_migration(store_url):
    """Migration 0004 fills the unit/role columns of events stored before it from their
    bodies: the evaluation by unit is the same as from the log, and as from rows the
    writer filled."""
    from alembic import command

    from grid.report import evaluate, evaluation_of
    from store.db import alembic_config, upgrade

    events, _, joint, _, street = issue18_events()
    w = StoreWriter(connect(store_url))
    w.load_positions([])
    w.apply(records(events))
    rs = ReadStore(w.engine)
    day = date(2026, 11, 23)
    want = evaluate(events, "310110", day, day + timedelta(days=7)).to_dict()
    assert evaluation_of("310110", day, day + timedelta(days=7), rs.evaluation).to_dict() \
        == want
    e = S.case_events.c
    cols = select(e.type, e.district, e.department, e.unit, e.unit_name, e.parts).where(
        e.case_id == joint.case.case_id, e.type == "dispatched")
    with w.engine.connect() as conn:
        written = conn.execute(cols).all()
    assert written == [("dispatched", "310110", "housing", f"{street}.housing",
                        written[0].unit_name, 2)]
    assert written[0].unit_name  # the registry names the unit
    command.downgrade(alembic_config(w.engine), "0003")  # a store from before: no columns
    upgrade(w.engine)  # 0004 adds them and fills them from the bodies
    with w.engine.connect() as conn:
        assert conn.execute(cols).all() == written
    assert evaluation_of("310110", day, day + timedelta(days=7), rs.evaluation).to_dict() \
        == want
    assert sum(u["assisting"] for u in want["units"]) == 2


@pytest.mark.parametrize("first,last", [(date(2026, 3, 1), date(2026, 3, 31)),
                                        (date(2026, 2, 1), date(2026, 3, 5))])
def test_city_ranking_from_the_store_equals_the_one_from_the_log(store_url, events, first,
                                                                  last):
    from click.testing import CliRunner

    from grid.cli import main
    from grid.report import city_evaluate, city_evaluation_of

    _, rs = loaded(store_url, events)
    want = city_evaluate(events, first, last)
    got = city_evaluation_of(first, last, rs.district_evaluation)
    assert got.to_dict() == want.to_dict()
    args = ["report", "--city", "--from", first.isoformat(), "--to", last.isoformat(),
            "--format", "json"]
    out = CliRunner().invoke(main, [*args, "--store", store_url])
    assert out.exit_code == 0, out.output
    ranked = orjson.loads(out.output)["districts"]
    assert [(d["rank"], d["key"]) for d in ranked] == [
        (i, f.key) for i, f in enumerate(want.ranking(), 1)]
    if first == date(2026, 3, 1):  # D1 (Changning) closed its one case; Yangpu 4 of 7
        assert [(d["key"], d["name"], d["closure_rate"]) for d in ranked] == [
            ("310105", "长宁区", 1.0), ("310110", "杨浦区", round(4 / 7, 4))]


def test_nul_characters_are_stored_as_replacement_characters(store_url, events):
    e = orjson.loads(orjson.dumps(events[0]))
    e["data"]["report"]["description"] = "井盖\x00缺失"
    e["reason"] = "a\x00b"
    w = StoreWriter(connect(store_url))
    w.load_positions([])
    out = w.apply([Record(T.CASE_EVENTS, 0, 0, orjson.dumps(e))])
    assert out.skipped == 0 and len(out.events) == 1
    c = ReadStore(w.engine).get(e["case_id"])
    assert c.description == "井盖\ufffd缺失"
    with w.engine.connect() as conn:
        assert conn.scalar(select(S.case_events.c.reason)) == "a\ufffdb"


def test_a_record_the_store_refuses_is_skipped_alone_and_the_rest_applied(store_url, events):
    poison = next(e for e in events if e["type"] == "reported")["case_id"]

    def names(kind: str, code: str | None) -> str | None:
        if kind == "street" and code and poison.startswith(code):
            raise ValueError("a row the database refuses")
        return None

    first_street = poison.split("-")[0]
    w = StoreWriter(connect(store_url), names=names)
    w.load_positions([])
    recs = [Record(T.CASE_EVENTS, 0, i, orjson.dumps(e)) for i, e in enumerate(events)]
    out = w.apply(recs)
    refused = [e for e in events if e["case_id"].startswith(first_street)]
    assert refused, "the fixture has cases in that street"
    # every event of a case in the refused street fails alone; every other one is stored
    stored_cases = {c for c in {e["case_id"] for e in events}
                    if ReadStore(w.engine).get(c) is not None}
    assert stored_cases == {e["case_id"] for e in events} - {e["case_id"] for e in refused}
    assert out.skipped >= 1
    assert StoreWriter(w.engine).load_positions([(T.CASE_EVENTS, 0)]) == {
        (T.CASE_EVENTS, 0): len(events)}


def test_the_first_page_counts_its_matches_up_to_the_cap(store_url, events, monkeypatch):
    import store.reader

    _, rs = loaded(store_url, events)
    assert rs.page(limit=2)[2] == 11
    monkeypatch.setattr(store.reader, "TOTAL_CAP", 3)
    page, cursor, total = rs.page(limit=2)
    assert (len(page), total) == (2, 4)  # "more than 3"
    assert rs.page(limit=2, cursor=cursor)[2] is None


def test_scoped_reads_add_up_to_the_city(store_url, events):
    """Issue 22: the dashboard's questions per district and per street — counters, tier flow,
    case count, open per area and cell, overdue, marked cases, department figures, alerts —
    add up to the city's, and live district figures equal the projection's."""
    _, rs = loaded(store_url, events)
    p = projection(events)
    districts = sorted({c.district for c in p.cases.values()})
    assert districts == ["310105", "310110"]
    streets = sorted({c.street for c in p.cases.values()})
    assert len(streets) > 2 and all(streets)
    assert rs.count() == sum(rs.count(d) for d in districts) == \
        sum(rs.count(None, s) for s in streets) == 11

    def total(rows: list[dict[str, int]]) -> dict[str, int]:
        return {k: sum(r[k] for r in rows) for k in rows[0]}

    for day in (date(2026, 2, 27), date(2026, 3, 2), date(2026, 3, 10)):
        city = rs.counters(day, NOW)
        assert city == total([rs.counters(day, NOW, d) for d in districts]) == \
            total([rs.counters(day, NOW, None, s) for s in streets]), day
        flow = rs.tier_flow(day)
        for tier, f in flow.items():
            assert f == total([rs.tier_flow(day, d)[tier] for d in districts]), (day, tier)
    assert rs.counters(date(2026, 3, 2), NOW)["reported"] > 0
    by_street = rs.open_by_street(NOW)
    assert rs.open_by_district(NOW) == {
        d: total([v for s, v in by_street.items() if s.startswith(d)])
        for d in districts if any(s.startswith(d) for s in by_street)}
    for s in streets:
        assert sum(rs.open_by_cell(None, s).values()) == by_street.get(s, {}).get("open", 0)
        assert sum(v["open"] for v in rs.open_by_community(NOW, s).values()) == \
            by_street.get(s, {}).get("open", 0)
        assert {c.case_id for c in rs.overdue(NOW, None, s)} == \
            {c.case_id for c in p.overdue(NOW) if c.street == s}
        assert all(a["case_id"].startswith(s) for a in rs.recent_alerts(50, None, s))
    marked = rs.marked(NOW)
    assert marked and all(c.priority == "urgent" or c.lateness(NOW) for c in marked)
    assert {c.case_id for c in marked} == {
        c.case_id for d in districts for c in rs.marked(NOW, d)}
    got = rs.district_figures(*MARCH, now=NOW)
    want = p.district_figures(*MARCH, now=NOW)
    assert {k: v.to_dict() for k, v in got.items()} == {k: v.to_dict() for k, v in want.items()}
    for d in districts:  # a district's department figures are its streets' added up
        whole = rs.department_figures(*MARCH, now=NOW, district=d)
        parts = [rs.department_figures(*MARCH, now=NOW, street=s)
                 for s in streets if s.startswith(d)]
        for dept, f in whole.items():
            for field in ("dispatched", "closed", "closed_on_time", "open", "overdue"):
                assert getattr(f, field) == sum(getattr(x[dept], field) for x in parts
                                                if dept in x), (d, dept, field)



def _connect_together(url: str, barrier: Any, out: Any) -> None:
    """In a separate process: wait for the others, then migrate ``url`` and report the
    revision it ended on (or the error)."""
    from sqlalchemy import text

    barrier.wait()
    try:
        with connect(url).connect() as conn:
            out.put(str(conn.execute(text("SELECT version_num FROM alembic_version"))
                        .scalar_one()))
    except Exception as e:  # reported, so that the test shows which error
        out.put(f"{type(e).__name__}: {e}"[:300])


def test_workers_starting_together_migrate_one_store_once(store_url):
    """Six processes open one fresh store at the same moment (the workers of ``grid up``
    do): each ends on the newest revision; none dies on a table another one just created."""
    import multiprocessing

    from alembic.script import ScriptDirectory

    from store.db import alembic_config

    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_connect_together, args=(store_url, barrier, out))
             for _ in range(6)]
    for p in procs:
        p.start()
    got = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    head = ScriptDirectory.from_config(alembic_config(connect(store_url, migrate=False))) \
        .get_current_head()
    assert got == [head] * 6


def test_the_writer_looks_events_up_by_index_however_many_ids_it_asks(postgres):
    """A batch's lookups of stored events (by event id, the top seq and the later events of
    its cases) probe the indexes once per id. Written as ``= ANY(:ids)``, the planner took a
    batch's 10,000 ids for 10,000 hits and scanned the whole table instead, once the ids were
    a few percent of it: a cost that grew with the history."""
    import store.writer as W
    from tests.conftest import pg_database

    with pg_database(postgres) as url:
        engine = connect(url)
        with engine.begin() as conn:  # 200,000 stored events of 40,000 cases
            conn.exec_driver_sql(
                "INSERT INTO case_events (event_id, case_id, seq, type, at, body) "
                "SELECT 'c' || (i / 5) || ':' || (i %% 5 + 1), 'c' || (i / 5), i %% 5 + 1, "
                "'accepted', now(), '{}' FROM generate_series(0, 199999) AS i")
            conn.exec_driver_sql("ANALYZE case_events")
        events = [f"c{i}:{s}" for i in range(39000, 41000) for s in range(1, 6)]
        cases = [f"c{i}" for i in range(30000, 41000)]

        def plan(conn: Any, sql: str, ids: list[str]) -> str:
            rows = conn.exec_driver_sql("EXPLAIN " + sql, (W._pg_array(ids),))
            return "\n".join(r[0] for r in rows)

        with engine.begin() as conn:
            for sql, ids in ((W._STORED_SQL, events), (W._TOP_SQL, cases),
                             (W._LATER_SQL, cases)):
                p = plan(conn, sql, ids)
                assert "Seq Scan on case_events" not in p, p
                assert "Index" in p and "case_events" in p, p
            assert "Seq Scan on case_events" in plan(  # the form it replaced
                conn, "SELECT event_id FROM case_events WHERE event_id = ANY(%s::varchar[])",
                events)
            # and the answers: 5,000 of the 10,000 event ids are stored
            assert len(W._stored(conn, events)) == 5000
            top = W._top_seqs(conn, cases)
            assert len(top) == 10000 and set(top.values()) == {5}
            later = list(W._later_events(conn, ["c7", "c39999", "c40000"]))
            assert [(c, s) for c, s, _ in later] == [(f"c{n}", s) for n in (39999, 7)
                                                     for s in range(1, 6)]
        engine.dispose()


def test_a_migration_that_fails_half_way_leaves_the_store_as_it_was(store_url):
    """Migrations run in one transaction, on SQLite as on PostgreSQL: a worker killed while
    it migrates (CI saw one) must not leave tables that make the next start fail with
    'table alerts already exists'. Here the first migration fails at its fifth table (one of
    that name is there already): none of the four before it stays, nor a version stamp."""
    import sqlalchemy as sa

    bare = connect(store_url, migrate=False)
    with bare.begin() as conn:
        conn.execute(sa.text("CREATE TABLE work_orders (x INTEGER)"))
    with pytest.raises(sa.exc.DBAPIError, match="work_orders"):
        connect(store_url)
    assert sorted(sa.inspect(bare).get_table_names()) == ["work_orders"]
    with bare.begin() as conn:
        conn.execute(sa.text("DROP TABLE work_orders"))
    engine = connect(store_url)  # and the next start migrates it
    assert {"alerts", "case_events", "cases", "report_cases", "work_orders",
            "alembic_version"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()
    bare.dispose()
