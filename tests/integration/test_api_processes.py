"""Issue 17 over HTTP: a legal-process case advanced stage by stage by the department holding
it, and a fire transferred to 119 then followed up by the command center (two real workers on
the embedded broker, as in test_api)."""

from __future__ import annotations

import pytest

from tests.integration.test_api import api, report  # noqa: F401  (the module's workers)

pytestmark = pytest.mark.integration


def test_a_legal_case_advances_stage_by_stage_over_http(api):  # noqa: F811
    r = report("0801", description="违法搭建阳光房")
    assert api.post_report(r).status_code == 202
    case = api.case_of(r["report_id"])
    cid = case["case_id"]
    assert case["state"] == "dispatched" and case["department"] == "urban_enforcement"
    assert api.act(cid, "dept-roads", action="advance_stage", reason="x").status_code == 403
    no = api.act(cid, "dept-urban_enforcement", action="advance_stage")
    assert no.status_code == 409 and "needs a reason" in no.json()["error"]
    ok = api.act(cid, "dept-urban_enforcement", action="advance_stage", reason="已立案")
    assert ok.status_code == 200, ok.text
    [closed] = ok.json()["events"]
    assert closed["type"] == "legal_stage_closed" and closed["data"]["stage"] == "investigation"
    assert closed["data"]["next"]["stage"] == "notice"
    wrong = api.act(cid, "dept-urban_enforcement", action="advance_stage", reason="告知书已送达",
                    next_stage="court")
    assert wrong.status_code == 409
    assert "after notice comes decision" in wrong.json()["error"]
    bad = api.act(cid, "dept-urban_enforcement", action="advance_stage", reason="x",
                  next_stage="Court!")
    assert bad.status_code == 422


def test_a_fire_is_transferred_and_followed_up_over_http(api):  # noqa: F811
    r = report("1007", description="垃圾房起火")
    assert api.post_report(r).status_code == 202
    case = api.case_of(r["report_id"])
    cid = case["case_id"]
    assert case["state"] == "transferred"
    assert api.act(cid, "cc-yangpu", action="dispatch", department="sanitation"
                   ).status_code == 409
    assert api.act(cid, "dept-sanitation", action="follow_up", type_code="0601"
                   ).status_code == 403
    unknown = api.act(cid, "cc-yangpu", action="follow_up", type_code="9999")
    assert unknown.status_code == 422 and "unknown type code" in unknown.json()["error"]
    ok = api.act(cid, "cc-yangpu", action="follow_up", type_code="0601",
                 reason="明火已扑灭，清理过火垃圾")
    assert ok.status_code == 200, ok.text
    assert [e["type"] for e in ok.json()["events"]] == ["follow_up_opened", "dispatched"]
    assert ok.json()["state"] == "dispatched"
    assert ok.json()["events"][1]["data"]["department"] == "sanitation"
