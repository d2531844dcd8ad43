"""What a newcomer reads in the first minutes (issue 19): names beside codes, Shanghai
times, explanations in words, the banner's commands, following one's own report, and
simulated departments that behave like real ones."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest

from grid.names import Names
from streams import topics as T


@pytest.fixture(scope="module")
def names() -> Names:
    return Names.load()


def test_names_beside_codes(names):
    assert names.type("0101") == "井盖缺失/损坏 Manhole cover missing or damaged (0101)"
    assert names.department("water") == "供水企业 Water supply company (water)"
    assert names.place("310110") == "杨浦区 (310110)"
    street = names.place("310110010")
    assert street.endswith(" (310110010)") and street.startswith("杨浦区")
    assert names.place("310110010009").endswith(" (310110010009)")
    assert names.type(None) == "unclassified 未分类" and names.place("999") == "999"


def test_tail_lines_use_names_and_shanghai_time(names):
    from streams.cli import due_text, summarize

    wo = {"schema": "grid.work-order/1", "priority": "urgent", "department": "water",
          "case_id": "C1", "type_code": "0101", "street": "310110010",
          "due": {"dispose": "2026-12-03T02:53:45+00:00", "verify": "2026-12-03T04:53:45+00:00"}}
    line = summarize(wo, names)
    assert "供水企业 Water supply company (water)" in line and "(0101)" in line
    assert "dispose by 12-03 10:53, verify by 12-03 12:53" in line  # +08:00
    assert "{" not in line  # no Python dict
    assert due_text({}) == "no deadline"
    ev = {"schema": "grid.case-event/1", "case_id": "C1", "seq": 1, "type": "reported",
          "state_from": None, "state_to": "reported", "actor": "sup-1", "reason": ""}
    assert summarize(ev) == "case C1 #1 reported: new case, reported by sup-1"
    alert = {"schema": "grid.alert/1", "kind": "supervision_order", "priority": "urgent",
             "case_id": "C1", "type_code": "0101", "street": "310110010",
             "message": "supervision order 督办: dispose overdue, escalated to city — "
                        "井盖缺失/损坏 … in 杨浦区街镇10 (310110010)"}
    line = summarize(alert, names)
    assert line == (f"ALERT supervision_order urgent · {names.type('0101')} · "
                    f"{names.place('310110010')} · supervision order 督办: dispose overdue, "
                    "escalated to city · case C1")


def test_submit_new_id_gives_fresh_ids_and_keeps_bad_input():
    from streams.cli import with_new_ids

    now = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
    raw = [orjson.dumps({"report_id": "fixed", "reported_at": "2026-01-01T00:00:00+08:00",
                         "type_code": "0101"}), b"not json"]
    a, b = with_new_ids(raw, now), with_new_ids(raw, now)
    first = orjson.loads(a[0])
    assert first["report_id"] not in ("fixed", orjson.loads(b[0])["report_id"])
    assert first["reported_at"] == now.isoformat() and first["type_code"] == "0101"
    assert a[1] == b"not json"


def test_follow_matches_output_to_the_submitted_reports():
    from streams.follow import Follower

    f = Follower(["r1", "r2", "r3"], lambda v: f"{v.get('type') or v.get('schema')}")
    wo = {"schema": "grid.work-order/1", "case_id": "C1"}
    assert f.feed(T.DISPATCH, wo) == []  # before its case's first event: it waits
    assert f.feed(T.CASE_EVENTS, {"case_id": "C9", "type": "reported",
                                  "data": {"report": {"report_id": "other"}}}) == []
    lines = f.feed(T.CASE_EVENTS, {"case_id": "C1", "type": "reported",
                                   "data": {"report": {"report_id": "r1"}}})
    assert lines == ["reported", "grid.work-order/1"]
    assert f.reports["r1"].case_id == "C1" and f.reports["r1"].settled
    assert f.feed(T.CASE_EVENTS, {"case_id": "C2", "type": "merged",
                                  "data": {"report_id": "r2"}}) == ["merged"]
    assert f.reports["r2"].merged and f.reports["r2"].settled and not f.done()
    assert f.feed(T.DLQ, {"report_id": "r3", "reason": "invalid_json", "message": "bad"}) == [
        "REFUSED invalid_json: bad"]
    assert f.done()


def test_why_says_the_decision_in_words():
    from streams.dashboard import why

    d = {"type_code": "0101", "type_zh": "井盖缺失/损坏", "type_en": "Manhole cover missing",
         "department": "water", "department_zh": "供水企业", "department_en": "Water supply",
         "priority": "urgent", "tier": "district",
         "deadlines": {"dispose": "2026-12-03T02:53:00+00:00"},
         "decision": {"handling": "key_supervision", "calendar": "24h", "explanation": [
             "type 0101 …: category 01", "department water <- route.owner.water",
             "tier district <- route.owner.water", "priority urgent <- route.key-supervision"]}}
    assert why(d) == [
        "Sent to 供水企业 Water supply (water): it is the department responsible for "
        "井盖缺失/损坏 Manhole cover missing (rule route.owner.water).",
        "Urgent 紧急 because 井盖缺失/损坏 Manhole cover missing is a key-supervision "
        "(重点监管) type (rule route.key-supervision).",
        "Handled in the district loop 大循环·区 (rule route.owner.water).",
        "To be disposed of by 2026-12-03 10:53 Shanghai time, counted around the clock."]
    assert why({"decision": None}) == []


def test_alerts_name_the_type_and_street(names):
    from grid.service import Engine

    engine = Engine.load()
    now = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    report = {"schema": "grid.report/1", "report_id": "6a1f0c2e-5d1a-4c7e-9b2f-0a1d2c3e4f19",
              "source": "supervisor", "reporter_id": "s-1", "reported_at": now.isoformat(),
              "type_code": "0101",
              "location": {"lon": 121.5262, "lat": 31.2708, "crs": "wgs84"},
              "description": "井盖缺失"}
    (msg,), _ = engine.intake([orjson.dumps(report)], now)
    fx = engine.on_located(msg, None, [], now)
    (alert,) = fx.alerts
    street = msg.placement.street
    assert alert.message == (
        "key supervision 重点监管: 井盖缺失/损坏 Manhole cover missing or damaged (0101) in "
        f"{names.place(street)} — on site by 11-21 12:00")  # 02:00 UTC + 2 h, Shanghai
    assert names.place_name(street)  # the street has a name, shown beside its code


def test_banner_commands_can_be_pasted(monkeypatch, tmp_path):
    from streams.run import banner

    monkeypatch.chdir(tmp_path)
    text = banner("kafka://127.0.0.1:9092", "kafka", 6066, "x60@1764723600.000", demo=True)
    assert "engine time runs 60x real time" in text
    for token in ("demo-command-center", "demo-city", "demo-hotline", "demo-viewer",
                  "demo-dept-water"):
        assert token in text
    cmd = next(line.split()[-1] for line in text.splitlines() if "submit" in line)
    assert cmd == "examples/manhole.json"
    g = next(line.split()[1] for line in text.splitlines() if "submit" in line)
    assert g.endswith("grid") and ("/" in g or g == "grid")  # a path unless on PATH
    assert "real time" in banner("kafka://h:1", "external", 6066, "system", demo=False)


def test_simulated_departments_are_not_all_punctual():
    from streams.simulate import Behaviour, plan

    rng = random.Random(1)
    fates = Counter(plan(rng, Behaviour(), first_order=True) for _ in range(10_000))
    assert set(fates) == {"ignore", "give_back", "extension", "late", "on_time"}
    assert 0.5 < fates["on_time"] / 10_000 < 0.75
    again = Counter(plan(rng, Behaviour(), first_order=False) for _ in range(2_000))
    assert "give_back" not in again  # a re-dispatched order is not returned again


def test_report_names_departments_and_streets(names):
    from datetime import date
    from pathlib import Path

    from grid.report import evaluate, read_jsonl, render

    log = Path(__file__).parent.parent / "fixtures" / "events" / "district.jsonl"
    with log.open("rb") as f:
        ev = evaluate(list(read_jsonl(f)), "310110", date(2026, 3, 1), date(2026, 3, 31))
    street_names = {"310110001": names.place_name("310110001"), "sanitation": "环卫作业"}
    table = render(ev, "table", street_names)
    assert f"310110001 {names.place_name('310110001')}" in table
    assert "sanitation 环卫作业" in table
    data = orjson.loads(render(ev, "json", street_names))
    assert {s["key"]: s["name"] for s in data["streets"]} == {
        "310110001": names.place_name("310110001"), "310110002": "310110002"}


def test_locate_names_the_street_and_community(names):
    from click.testing import CliRunner

    from geodata.cli import locate

    out = CliRunner().invoke(locate, ["121.5262", "31.2708", "--crs", "gcj02"]).output
    lines = dict(line.split(None, 1) for line in out.splitlines())
    street, street_name = lines["street"].split()
    assert street_name == names.place_name(street)
    community, community_name = lines["community"].split()
    assert community_name == names.place_name(community) and community.startswith(street)


def test_dashboard_links_go_to_the_running_grid_up(monkeypatch, tmp_path):
    from streams.cli import web_address

    monkeypatch.setenv("GRID_HOME", str(tmp_path))
    monkeypatch.delenv("GRID_WEB_PORT", raising=False)
    assert web_address() == "http://127.0.0.1:6066/"
    (tmp_path / "web").write_text("http://127.0.0.1:6191/\n")  # grid up --web-port 6191
    assert web_address() == "http://127.0.0.1:6191/"
    monkeypatch.setenv("GRID_WEB_PORT", "7000")
    assert web_address() == "http://127.0.0.1:7000/"
