"""The engine end to end on the real (embedded Tansu) broker, through a real worker process."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from streams import topics as T
from streams.kafka_io import collect, consume, produce_json
from tests.integration.conftest import make_report, submit, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.tansu]


def opened(bootstrap: str, report_id: str, timeout: float = 60) -> dict:
    """The 'reported' case event of a report (gives the case id)."""
    return wait_for(bootstrap, T.CASE_EVENTS,
                    lambda e: e["type"] == "reported"
                    and e["data"]["report"]["report_id"] == report_id, timeout=timeout)[0]


def case_events(bootstrap: str, case_id: str, until_type: str, timeout: float = 60) -> list[dict]:
    """All events of a case, read until one of type ``until_type`` arrives (same partition)."""
    got = asyncio.run(collect(bootstrap, T.CASE_EVENTS, lambda vs: any(
        v.get("case_id") == case_id and v.get("type") == until_type for v in vs),
        timeout=timeout))
    return [v for v in got if v.get("case_id") == case_id]


async def whole_log(bootstrap: str, topic: str) -> list:
    """Every message of ``topic``, read until none comes for 2 s."""
    return [r.value async for r in consume(bootstrap, topic, idle=2.0)]


def command(bootstrap: str, case_id: str, action: str, actor: str, role: str, **kw) -> None:
    cmd = {"schema": "grid.command/1", "command_id": str(uuid.uuid4()), "case_id": case_id,
           "action": action, "actor": actor, "role": role, **kw}
    asyncio.run(produce_json(bootstrap, T.COMMANDS, [cmd],
                             key_fn=lambda c: c["case_id"].split("-")[0]))


def test_manhole_report_becomes_urgent_work_order_with_alert(broker, engine):
    r = make_report("0101", component_id="SS-40021", description="井盖缺失")
    submit(broker.bootstrap, [r])
    case_id = opened(broker.bootstrap, r["report_id"])["case_id"]
    wo = wait_for(broker.bootstrap, T.DISPATCH, lambda w: w["case_id"] == case_id)[0]
    assert wo["priority"] == "urgent"
    assert wo["department"] == "water"
    assert wo["rule"]
    alert = wait_for(broker.bootstrap, T.ALERTS,
                     lambda a: a["case_id"] == case_id and a["kind"] == "key_supervision")[0]
    assert alert["priority"] == "urgent"


def test_bad_input_goes_to_dlq_and_good_reports_still_flow(broker, engine):
    bad_id = str(uuid.uuid4())
    bad = make_report("0101", report_id=bad_id)
    bad["location"]["lat"] = 95.0
    good = make_report("0601", description="路边有垃圾")
    marker = uuid.uuid4().hex
    raw_junk = b'{"schema": "grid.report/1", "note": "' + marker.encode() + b'", "report_id": '
    submit(broker.bootstrap, [raw_junk, bad, good])
    dlq = wait_for(broker.bootstrap, T.DLQ,
                   lambda d: d.get("report_id") == bad_id
                   or marker in d.get("original_excerpt", ""), n=2)
    reasons = {d["reason"] for d in dlq}
    assert reasons == {"validation", "invalid_json"}
    by_id = next(d for d in dlq if d.get("report_id") == bad_id)
    assert any("location.lat" in e["field"] for e in by_id["errors"])
    assert opened(broker.bootstrap, good["report_id"])


def test_same_report_twice_yields_one_case(broker, engine):
    r = make_report("0602", description="楼道堆物")
    submit(broker.bootstrap, [r, r])
    marker = make_report("0601")  # processed after both copies (same street partition)
    submit(broker.bootstrap, [marker])
    opened(broker.bootstrap, marker["report_id"])
    case_id = opened(broker.bootstrap, r["report_id"])["case_id"]
    events = case_events(broker.bootstrap, case_id, "dispatched")
    # the second copy is the same report, not a duplicate of it: no merge, and whatever it
    # re-emits (at-least-once) carries the first copy's ids, so there is one case
    assert [e for e in events if e["type"] == "merged"] == []
    reported = [e for e in events if e["type"] == "reported"]
    assert {e["event_id"] for e in reported} == {f"{case_id}:1"}
    assert {e["data"]["report"]["report_id"] for e in reported} == {r["report_id"]}
    wos = wait_for(broker.bootstrap, T.DISPATCH, lambda w: w["case_id"] == case_id)
    assert {w["work_order_id"] for w in wos} == {f"{case_id}:1"}
    assert len({(w["department"], w["priority"], w["issued_at"]) for w in wos}) == 1


def test_full_lifecycle_by_commands_ends_closed(broker, engine):
    r = make_report("0101", component_id="DL-7781")
    submit(broker.bootstrap, [r])
    case_id = opened(broker.bootstrap, r["report_id"])["case_id"]
    wo = wait_for(broker.bootstrap, T.DISPATCH, lambda w: w["case_id"] == case_id)[0]
    dept = wo["department"]
    assert dept == "power"
    command(broker.bootstrap, case_id, "close", "cc", "command_center")  # illegal now
    command(broker.bootstrap, case_id, "accept", dept, "department")
    command(broker.bootstrap, case_id, "dispose", dept, "department",
            evidence_photos=["https://img/x.jpg"])
    command(broker.bootstrap, case_id, "verify", "sup-1", "supervisor", passed=True)
    command(broker.bootstrap, case_id, "close", "cc", "command_center")
    events = case_events(broker.bootstrap, case_id, "closed")
    types = [e["type"] for e in sorted(events, key=lambda e: (e["seq"] or 10**6))]
    rejected = [e for e in events if e["type"] == "command_rejected"]
    assert rejected and "'close' is not allowed in state 'dispatched'" in rejected[0]["reason"]
    history = [t for t in types if t != "command_rejected"]
    assert history == ["reported", "filed", "dispatched", "accepted", "disposed", "verified",
                       "closed"]


def test_self_disposed_poster_closes_without_work_order(broker, engine):
    r = make_report("0701", self_disposed=True, evidence_photos=["https://img/e.jpg"])
    submit(broker.bootstrap, [r])
    case_id = opened(broker.bootstrap, r["report_id"])["case_id"]
    events = case_events(broker.bootstrap, case_id, "self_closed")
    assert [e["type"] for e in events] == ["reported", "self_closed"]
    marker = make_report("0101", component_id="SS-1")
    submit(broker.bootstrap, [marker])
    mid = opened(broker.bootstrap, marker["report_id"])["case_id"]
    wos = wait_for(broker.bootstrap, T.DISPATCH, lambda w: w["case_id"] in (case_id, mid))
    assert [w["case_id"] for w in wos] == [mid]


def test_duplicate_report_is_merged(broker, engine):
    first = make_report("0603", description="毁绿")
    submit(broker.bootstrap, [first])
    case_id = opened(broker.bootstrap, first["report_id"])["case_id"]
    lon, lat = first["location"]["lon"] + 0.0002, first["location"]["lat"] + 0.0002  # ~30 m
    second = make_report("0603", lon=lon, lat=lat, description="毁绿 again")
    submit(broker.bootstrap, [second])
    merged = wait_for(broker.bootstrap, T.CASE_EVENTS,
                      lambda e: e["case_id"] == case_id and e["type"] == "merged")
    assert {(e["event_id"], e["data"]["report_id"]) for e in merged} == {
        (merged[0]["event_id"], second["report_id"])}
    # the second report opened no case of its own (the whole log, read until it ends)
    log = asyncio.run(whole_log(broker.bootstrap, T.CASE_EVENTS))
    assert merged[0] in log
    assert [e for e in log if isinstance(e, dict) and e["type"] == "reported"
            and e["data"]["report"]["report_id"] == second["report_id"]] == []


def test_overdue_case_gets_supervision_order(broker, engine):
    r = make_report("0101", component_id="RQ-5")
    submit(broker.bootstrap, [r])
    case_id = opened(broker.bootstrap, r["report_id"])["case_id"]
    # 2 h on-site limit at 600x engine time passes in ~12 s; the timer then escalates.
    # Key-supervision cases are handled at district tier, so the order goes up to the city.
    order = wait_for(broker.bootstrap, T.ALERTS,
                     lambda a: a["case_id"] == case_id and a["kind"] == "supervision_order",
                     timeout=90)[0]
    assert order["level"] == "city"
    warned = wait_for(broker.bootstrap, T.ALERTS,
                      lambda a: a["case_id"] == case_id and a["kind"] == "warning")
    assert warned


def test_joint_hotline_case_work_orders_by_unit_replies_and_callback(broker, engine):
    """Issue 18 on a real broker: a 12345 群租 report -> lead + 2 assisting work orders keyed
    by unit, a reply per change on grid.hotline-replies.v1, a callback that reopens it."""
    ticket = {"hotline": "12345", "ticket_no": f"T{uuid.uuid4().hex[:12]}"}
    r = make_report("0914", source="hotline_12345", reporter_id="hotline-12345",
                    description="群租", ticket=ticket)
    submit(broker.bootstrap, [r])
    case_id = opened(broker.bootstrap, r["report_id"])["case_id"]
    street = case_id.split("-")[0]
    orders = wait_for(broker.bootstrap, T.DISPATCH, lambda w: w["case_id"] == case_id, n=3)
    assert {(w["department"], w["role"], w["unit"]) for w in orders} == {
        ("housing", "lead", f"{street}.housing"),
        ("public_security", "assisting", f"{street}.public_security"),
        ("urban_enforcement", "assisting", f"{street}.urban_enforcement")}
    for actor, action, kw in (
            (f"{street}.housing", "dispose", {"evidence_photos": ["https://img/a.jpg"]}),
            ("public_security", "report_part", {"reason": "人员已登记"}),
            ("urban_enforcement", "report_part", {"reason": "无违法搭建"})):
        command(broker.bootstrap, case_id, action, actor, "department", **kw)
    command(broker.bootstrap, case_id, "verify", "sup-1", "supervisor", passed=True)
    command(broker.bootstrap, case_id, "close", "cc", "command_center")
    command(broker.bootstrap, case_id, "callback", "hotline-12345", "hotline",
            satisfaction="not_satisfied", reason="还有人住")
    replies = wait_for(broker.bootstrap, T.HOTLINE_REPLIES,
                       lambda m: m["ticket_no"] == ticket["ticket_no"]
                       and m["event"] == "reopened", timeout=60)
    assert replies[0]["state"] == "rework" and replies[0]["status"] == "open"
    all_replies = wait_for(broker.bootstrap, T.HOTLINE_REPLIES,
                           lambda m: m["ticket_no"] == ticket["ticket_no"], n=7)
    by_seq = sorted(all_replies, key=lambda m: int(m["reply_id"].rsplit(":", 1)[1]))
    assert [m["event"] for m in by_seq] == [
        "filed", "dispatched", "disposed", "verified", "closed", "callback", "reopened"]
    assert by_seq[1]["unit_name"].endswith("房管办事处")
    assert by_seq[5]["satisfaction"] == "not_satisfied"
    events = case_events(broker.bootstrap, case_id, "reopened")
    types = [e["type"] for e in sorted(events, key=lambda e: e["seq"] or 10**6)]
    # 群租 is a staged legal process: the early disposal closes its open stage (issue 17)
    assert types == ["reported", "filed", "dispatched", "legal_stage_closed", "lead_disposed",
                     "part_reported", "part_reported", "disposed", "verified", "closed",
                     "callback", "reopened"]
