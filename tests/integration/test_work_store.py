"""What the work pages and the photo route read beyond the ReadStore (store/work.py), on
SQLite and a real PostgreSQL: a case's photos, its work-order holders, pending extension
requests, the cases that name a photo."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from grid.models import Action, Command, Report
from grid.service import Engine
from store import work as W
from store.db import connect
from store.reader import ReadStore
from store.writer import Record, StoreWriter
from streams import topics as T

pytestmark = pytest.mark.integration
CST = timezone(timedelta(hours=8))
AT = datetime(2026, 11, 23, 10, tzinfo=CST)
REPORT_PHOTO = "/api/v1/photos/" + "a" * 64 + ".jpg"
AFTER_PHOTO = "/api/v1/photos/" + "b" * 64 + ".jpg"
VERIFY_PHOTO = "/api/v1/photos/" + "c" * 64 + ".png"


def worked_cases() -> tuple[list[dict], list[dict], str, str]:
    """(events, work orders, worked case id, waiting case id) from the engine: a case reported
    with a photo, accepted, an extension asked and granted, disposed with an after-photo,
    verified with a photo; another whose extension request is still open."""
    engine = Engine.load()

    def opened(**kw):
        r = Report.model_validate({
            "report_id": str(uuid.uuid4()), "source": "supervisor", "reporter_id": "sup-7",
            "reported_at": AT, "location": {"lon": 121.514, "lat": 31.299},
            "type_code": "0601", **kw})
        return engine.on_located(engine.decide(r, engine.locator.locate(121.514, 31.299), AT),
                                 None, [], AT)

    emitted: list = []  # every event the commands caused (Effects.events), in order

    def do(case, action, actor, role, **kw):
        fx = engine.on_command(Command(command_id=str(uuid.uuid4()), case_id=case.case_id,
                                       action=action, actor=actor, role=role, **kw), case, AT)
        emitted.extend(fx.events)
        return fx.case

    first = opened(description="垃圾 with a photo", photos=[REPORT_PHOTO])
    case = first.case
    dept = case.department
    for action, actor, role, kw in (
            (Action.ACCEPT, dept, "department", {}),
            (Action.REQUEST_EXTENSION, dept, "department", {"extension_minutes": 60}),
            (Action.GRANT_EXTENSION, "cc", "command_center", {}),
            (Action.DISPOSE, dept, "department", {"evidence_photos": [AFTER_PHOTO]}),
            (Action.VERIFY, "sup-7", "supervisor", {"passed": True,
                                                    "evidence_photos": [VERIFY_PHOTO]})):
        case = do(case, action, actor, role, **kw)
    second = opened(description="垃圾 waiting for an extension", location={
        "lon": 121.52, "lat": 31.30})
    waiting = do(do(second.case, Action.ACCEPT, dept, "department"), Action.REQUEST_EXTENSION,
                 dept, "department", extension_minutes=90)
    events = [e.model_dump(mode="json", by_alias=True)
              for e in (*first.events, *second.events, *emitted)]
    orders = [w.model_dump(mode="json", by_alias=True)
              for w in (*first.work_orders, *second.work_orders)]
    return events, orders, case.case_id, waiting.case_id


def test_photos_holders_extensions_and_photo_cases(store_url):
    events, orders, worked, waiting = worked_cases()
    w = StoreWriter(connect(store_url))
    w.load_positions([])
    w.apply([Record(T.CASE_EVENTS, 0, i, orjson.dumps(e)) for i, e in enumerate(events)]
            + [Record(T.DISPATCH, 0, i, orjson.dumps(o)) for i, o in enumerate(orders)])
    rs = ReadStore(w.engine)
    dept = rs.get(worked).department
    photos = W.photos(rs, worked)
    assert [(p["url"], p["what"], p["type"]) for p in photos] == [
        (REPORT_PHOTO, "report", "reported"), (AFTER_PHOTO, "evidence", "disposed"),
        (VERIFY_PHOTO, "evidence", "verified")]
    assert photos[1]["actor"] == dept and photos[2]["role"] == "supervisor"
    assert W.photos(rs, waiting) == []
    held = W.holders(rs, [worked, waiting])
    assert dept in held[worked] and dept in held[waiting]
    # the granted request is no longer pending; the other one is, with its minutes
    assert W.pending_extensions(rs) == {waiting: 90}
    assert W.pending_extensions(rs, [worked]) == {}
    assert W.pending_extensions(rs, []) == {}
    found = W.cases_with_photo(rs, AFTER_PHOTO)
    assert len(found) == 1
    place, department, reporters, holders = found[0]
    assert place["district"] == "310110" and department == dept
    assert reporters == ("sup-7",) and dept in holders
    assert W.cases_with_photo(rs, "/api/v1/photos/" + "d" * 64 + ".jpg") == []
    assert W.cases_with_photo(rs, "%") == []  # a LIKE wildcard is a character here
