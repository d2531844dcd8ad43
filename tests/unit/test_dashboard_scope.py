"""Which scope the dashboard shows a user (streams.dashboard.Dashboard.scope_for): the city,
a district or a street, what each may switch to, and 403/422 with a reason otherwise."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
from aiohttp import web

from geodata.locator import Locator
from grid.auth import Principal
from grid.taxonomy import load_taxonomy
from streams.dashboard import Dashboard, Scope

CITY = Principal("city-cc", "command_center")
YANGPU = Principal("yangpu-cc", "command_center", districts=frozenset({"310110"}))
STREET = Principal("wall-07", "viewer", streets=frozenset({"310110007"}))
PATROL = Principal("p14", "viewer", patrol_areas=frozenset({"310110012-P14"}))


@pytest.fixture(scope="module")
def dash() -> Dashboard:
    loc = Locator.load(None)  # the shipped set: Yangpu and Qingpu
    app = SimpleNamespace(engine=SimpleNamespace(taxonomy=load_taxonomy(), locator=loc))
    return Dashboard(app, registry=None)  # type: ignore[arg-type]


def refused(fn, *args) -> tuple[int, str]:
    with pytest.raises(web.HTTPException) as err:
        fn(*args)
    return err.value.status, orjson.loads(err.value.body)["error"]


def test_each_user_starts_at_its_own_level(dash):
    assert dash.loaded == ["310110", "310118"]
    assert dash.scope_for(CITY) == Scope("city")
    assert dash.scope_for(YANGPU) == Scope("district", "310110")
    assert dash.scope_for(STREET) == Scope("street", "310110", "310110007")
    assert refused(dash.scope_for, PATROL)[0] == 403


def test_who_may_switch_where(dash):
    assert dash.scope_for(CITY, "310118") == Scope("district", "310118")
    assert dash.scope_for(CITY, None, "310118003") == Scope("street", "310118", "310118003")
    assert dash.scope_for(YANGPU, None, "310110003") == Scope("street", "310110", "310110003")
    status, why = refused(dash.scope_for, YANGPU, "310118")
    assert status == 403 and "310118" in why and "districts 310110" in why
    assert refused(dash.scope_for, STREET, "310110")[0] == 403  # not the whole district
    assert refused(dash.scope_for, STREET, None, "310110008")[0] == 403
    assert refused(dash.scope_for, CITY, "3101")[1] == "district '3101': a 6-digit district code"
    assert refused(dash.scope_for, CITY, "310118", "310110007") == (
        422, "street 310110007 is not in district 310118")
    c = dash.choices(CITY, Scope("city"))
    assert c["city"] and [d["code"] for d in c["districts"]] == ["310110", "310118"]
    assert c["districts"][1]["name"] == "青浦区" and c["streets"] == []
    c = dash.choices(YANGPU, Scope("district", "310110"))
    assert not c["city"] and [d["code"] for d in c["districts"]] == ["310110"]
    assert len(c["streets"]) == 12 and all(s["code"].startswith("310110") for s in c["streets"])
    c = dash.choices(STREET, Scope("street", "310110", "310110007"))
    assert [s["code"] for s in c["streets"]] == ["310110007"] and c["districts"] == []


def test_scope_words_and_membership(dash):
    row = dash.scope_row(Scope("street", "310118", "310118003"))
    assert row["label"] == "青浦区 › 青浦区街镇03 (310118003)" and row["title"] == "青浦区街镇03"
    assert dash.scope_row(Scope("city"))["label"] == "上海市 Shanghai"
    assert Scope("district", "310110").holds("310110", "310110002")
    assert not Scope("district", "310110").holds("310118", "310118002")
    assert not Scope("street", "310110", "310110007").holds("310110", "310110002")
    assert Scope("city").holds(None, None)
