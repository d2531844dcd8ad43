"""The dashboard's case lists and alert lines over the in-memory projection (the read store
answers the same questions): titles with names, the 200-case cap, bad parameters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from grid import auth
from grid.projection import Projection
from grid.report import read_jsonl
from grid.service import Engine
from streams import dashboard as D

LOG = Path(__file__).parent.parent / "fixtures" / "events" / "district.jsonl"
CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 4, 20, tzinfo=CST)


@pytest.fixture(scope="module")
def dash() -> D.Dashboard:
    p = Projection()
    with LOG.open("rb") as f:
        p.apply_all(read_jsonl(f))
    engine = Engine.load()
    g = SimpleNamespace(engine=engine, read_store=p, clock=SimpleNamespace(now=lambda: NOW))
    return D.Dashboard(g, auth.TokenRegistry({}))


def test_street_list_is_titled_by_name_and_filters(dash):
    name = dash._names("streets")["310110002"]
    body, status = dash.case_list_data({"street": "310110002"}, "310110", NOW)
    assert status == 200
    assert body["title"] == f"街镇 Street: {name} (310110002) · 在办 open"
    assert body["total"] == 3 and not body["more"]
    assert {r["street_name"] for r in body["items"]} == {name}
    assert all(r["type_zh"] for r in body["items"] if r["type_code"])
    late, _ = dash.case_list_data({"street": "310110002", "overdue": "1"}, "310110", NOW)
    assert late["title"].endswith("· 超期 overdue") and late["total"] == 3
    every, _ = dash.case_list_data({"street": "310110001", "state": "all"}, "310110", NOW)
    assert every["total"] > 0 and any(r["state"] == "closed" for r in every["items"])


def test_department_counter_and_search_lists(dash):
    body, _ = dash.case_list_data({"department": "sanitation"}, "310110", NOW)
    assert body["title"].startswith("部门 Department: 环卫作业 ")
    assert all(r["department"] == "sanitation" for r in body["items"])
    body, _ = dash.case_list_data({"counter": "overdue"}, "310110", NOW)
    assert body["title"] == "今日 Today: 超期 overdue now · 杨浦区 (310110)" and body["total"] == 3
    body, _ = dash.case_list_data({"q": "fixture B"}, "310110", NOW)
    assert [r["description"] for r in body["items"]] == [
        "fixture B4", "fixture B2", "fixture B1", "fixture B3"]


def test_lists_cap_at_200_and_refuse_bad_parameters(dash, monkeypatch):
    monkeypatch.setattr(D, "LIST_MAX", 2)
    body, _ = dash.case_list_data({"q": "fixture"}, "310110", NOW)
    assert len(body["items"]) == 2 and body["more"] and body["total"] is None
    for q, word in (({"counter": "opened"}, "no counter 'opened'"),
                    ({"street": "310110001", "state": "closed"}, "open or all"),
                    ({}, "one of street, department, counter or q")):
        body, status = dash.case_list_data(q, "310110", NOW)
        assert status == 422 and word in body["error"], q


def test_alert_line_names_type_and_street(dash):
    name = dash._names("streets")["310110002"]
    row = dash.alert_row({"kind": "warning", "type_code": "0101", "street": "310110002",
                          "message": "deadline warning 预警: stage dispose — …"})
    assert row["type_zh"] == "井盖缺失/损坏" and row["street_name"] == name
    assert row["text"] == (f"预警 Deadline warning: 井盖缺失/损坏 Manhole cover missing or damaged"
                           f" — {name} (310110002) · deadline warning 预警: stage dispose — …")
