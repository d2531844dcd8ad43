"""Issue 17 in the read store (SQLite and a real PostgreSQL): a legal-process case's open
stage is the stage the store lists and finds overdue, with every stage kept on the row; a
transferred emergency is not open; both fold as the in-memory projection does."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from grid.models import Action, Command, Report
from grid.projection import Projection
from grid.service import Engine
from store.db import connect
from store.reader import ReadStore
from store.writer import Record, StoreWriter
from streams import topics as T

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=CST)  # a Monday


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def _report(type_code: str, description: str) -> Report:
    return Report.model_validate(dict(
        report_id=str(uuid.uuid4()), source="supervisor", reporter_id="sup-7", reported_at=NOW,
        location={"lon": 121.514, "lat": 31.299}, type_code=type_code, description=description))


def _open(engine: Engine, r: Report):
    place = engine.locator.locate(r.location.lon, r.location.lat)
    return engine.on_located(engine.decide(r, place, NOW), None, [], NOW)


def test_legal_stages_and_transfers_in_the_store(store_url, engine):
    legal = _open(engine, _report("0801", "违法搭建阳光房"))
    case = legal.case
    holder = case.unit or case.department
    fx = engine.on_command(Command(command_id="c1", case_id=case.case_id,
                                   action=Action.ADVANCE_STAGE, actor=holder, role="department",
                                   reason="已立案"), case, NOW + timedelta(hours=2))
    notice_due = fx.case.legal_stage.due
    fire = _open(engine, _report("1007", "仓库起火"))
    events = [e.model_dump(mode="json", by_alias=True)
              for e in (*legal.events, *fx.events, *fire.events)]
    w = StoreWriter(connect(store_url))
    w.load_positions([])
    w.apply([Record(T.CASE_EVENTS, 0, i, orjson.dumps(e)) for i, e in enumerate(events)])
    rs = ReadStore(w.engine)
    p = Projection()
    p.apply_all(events)
    at = notice_due + timedelta(hours=1)
    for cid in (case.case_id, fire.case.case_id):
        assert rs.get(cid).to_dict(at) == p.get(cid).to_dict(at), cid
    row = rs.get(case.case_id)
    assert (row.stage, row.legal_stage, row.due()) == ("notice", "notice", notice_due)
    assert [(x["stage"], x.get("on_time")) for x in row.legal_stages] == [
        ("investigation", True), ("notice", None)]
    assert [c.case_id for c in rs.overdue(at)] == [case.case_id]
    assert rs.overdue(notice_due - timedelta(minutes=1)) == []
    detail = rs.detail(case.case_id, at)
    assert detail["overdue"] is True and detail["stage"] == "notice"
    assert detail["decision"]["legal_rule"] == "legal.thirty-days"
    gone = rs.get(fire.case.case_id)
    assert gone.state == "transferred" and not gone.is_open
    assert fire.case.case_id not in {c.case_id for c in rs.open_cases()}
    assert rs.detail(fire.case.case_id)["decision"]["transfer"]["services"][0]["number"] == "119"
