"""Tokens → principals, token configuration errors, and the API's permission rules."""

from __future__ import annotations

import hashlib
import json

import pytest

from grid.auth import (
    AuthError,
    Forbidden,
    Principal,
    bearer_token,
    check_action,
    check_read,
    check_report,
    check_work_orders,
    demo_tokens,
    describe,
    load_registry,
    parse_entries,
)
from grid.models import Action, Placement

P14 = Placement(lon=121.526, lat=31.259, crs="wgs84", district="310110", street="310110012",
                patrol_area="310110012-P14")
P17 = Placement(lon=121.515, lat=31.295, crs="wgs84", district="310110", street="310110008",
                patrol_area="310110008-P17")
HUANGPU = Placement(lon=121.48, lat=31.23, crs="wgs84", district="310101")

SUP = Principal("sup-1", "supervisor", patrol_areas=frozenset({"310110012-P14"}))
ROADS = Principal("roads", "department", department="roads")
CC = Principal("yangpu-cc", "command_center", districts=frozenset({"310110"}))
CITY = Principal("city-cc", "command_center")
VIEWER = Principal("v", "viewer", districts=frozenset({"310110"}))
HOTLINE = Principal("hotline", "integration", source="hotline_12345")


def test_supervisor_reports_only_in_patrol_area():
    check_report(SUP, P14)
    with pytest.raises(Forbidden, match="310110012-P14"):
        check_report(SUP, P17)
    check_report(HOTLINE, HUANGPU)  # integrations report anywhere the engine covers
    for p in (VIEWER, CC, ROADS):
        with pytest.raises(Forbidden, match="may not submit reports"):
            check_report(p, P14)


def test_department_acts_only_on_its_own_work_orders():
    check_action(ROADS, Action.ACCEPT, P14, "roads")
    check_action(ROADS, Action.DISPOSE, HUANGPU, "roads")
    with pytest.raises(Forbidden, match="own work orders"):
        check_action(ROADS, Action.ACCEPT, P14, "water")
    with pytest.raises(Forbidden, match="may not 'close'"):
        check_action(ROADS, Action.CLOSE, P14, "roads")  # closing is the command center's


def test_command_center_scope_is_its_district_or_the_city():
    check_action(CC, Action.CLOSE, P14, "roads")
    with pytest.raises(Forbidden, match="310110"):
        check_action(CC, Action.CLOSE, HUANGPU, "roads")
    check_action(CITY, Action.CLOSE, HUANGPU, "roads")
    with pytest.raises(Forbidden):
        check_action(CC, Action.ACCEPT, P14, "roads")


def test_supervisor_verifies_in_scope_and_viewer_never_acts():
    check_action(SUP, Action.VERIFY, P14, "roads")
    check_action(SUP, Action.SELF_DISPOSE, P14, None)
    with pytest.raises(Forbidden):
        check_action(SUP, Action.VERIFY, P17, "roads")
    for action in Action:
        with pytest.raises(Forbidden):
            check_action(VIEWER, action, P14, "roads")


def test_read_rules():
    check_read(VIEWER, P14)
    with pytest.raises(Forbidden):
        check_read(VIEWER, HUANGPU)
    check_read(ROADS, HUANGPU, "roads")
    with pytest.raises(Forbidden, match="own cases"):
        check_read(ROADS, P14, "water")
    check_read(CITY, HUANGPU)
    check_work_orders(ROADS, "roads")
    with pytest.raises(Forbidden):
        check_work_orders(ROADS, "water")
    check_work_orders(CC, "water")
    with pytest.raises(Forbidden):
        check_work_orders(SUP, "roads")


def test_covers_accepts_summary_dicts():
    assert CC.covers({"district": "310110", "street": "310110001"})
    assert not CC.covers({"district": "310101"})
    assert SUP.covers({"patrol_area": "310110012-P14"})
    assert CITY.covers(None)
    assert not SUP.covers(None)


def test_registry_from_env_json_and_hashed_tokens():
    secret = "hotline-key-123"
    env = {"GRID_TOKENS": json.dumps([
        {"token": "sup-token-1", "name": "sup-1", "role": "supervisor",
         "patrol_areas": ["310110012-P14"]},
        {"token_sha256": hashlib.sha256(secret.encode()).hexdigest(), "name": "hotline",
         "role": "integration", "source": "hotline_12345"},
    ])}
    reg = load_registry(env)
    assert reg.origin == "env" and len(reg) == 2
    assert reg.lookup("sup-token-1").patrol_areas == frozenset({"310110012-P14"})
    hot = reg.lookup(secret)
    assert hot.role == "integration" and hot.source == "hotline_12345"
    assert reg.lookup("sup-token-2") is None and reg.lookup(None) is None
    assert not reg.demo


def test_registry_from_yaml_file(tmp_path):
    f = tmp_path / "tokens.yaml"
    f.write_text("tokens:\n  - {token: abcdefgh1, role: command_center, districts: ['310110']}\n"
                 "  - {token: abcdefgh2, role: department, department: water}\n")
    reg = load_registry({"GRID_TOKENS_FILE": str(f), "GRID_TOKENS": "[]"})
    assert reg.origin == f"file:{f}"
    assert reg.lookup("abcdefgh1").districts == frozenset({"310110"})
    assert reg.lookup("abcdefgh2").actor == "water"


def test_production_mode_has_no_default_tokens_and_demo_mode_has_documented_ones():
    prod = load_registry({"GRID_MODE": "production"})
    assert len(prod) == 0 and prod.lookup("demo-city") is None
    demo = load_registry({}, departments=["roads", "water"])
    assert demo.origin == "demo"
    assert demo.lookup("demo-city").role == "command_center"
    assert demo.lookup("demo-city").city_wide
    assert demo.lookup("demo-dept-roads").department == "roads"
    assert demo.lookup("demo-hotline").source == "hotline_12345"
    assert set(demo.demo) == set(demo_tokens(["roads", "water"]))
    text = describe(demo)
    assert "demo-supervisor" in text and "demo-dept-water" in text
    assert "no demo tokens" in describe(prod)


@pytest.mark.parametrize("entry, message", [
    ({"token": "abcdefgh", "role": "admin"}, "role must be one of"),
    ({"role": "viewer"}, "exactly one of token, token_sha256"),
    ({"token": "short", "role": "viewer"}, "at least 8"),
    ({"token": "abcdefgh", "role": "department"}, "needs `department`"),
    ({"token": "abcdefgh", "role": "supervisor"}, "needs patrol_areas"),
    ({"token": "abcdefgh", "role": "integration", "source": "fax"}, "source must be"),
    ({"token": "abcdefgh", "role": "viewer", "scope": "x"}, "unknown key"),
    ({"token": "abcdefgh", "role": "viewer", "districts": {"a": 1}}, "list of codes"),
])
def test_bad_token_entries_name_the_entry(entry, message):
    with pytest.raises(AuthError, match=message) as err:
        parse_entries([entry], "tokens.yaml")
    assert "tokens.yaml: tokens[0]" in str(err.value)


def test_duplicate_tokens_and_bad_sources_are_refused(tmp_path):
    with pytest.raises(AuthError, match="twice"):
        parse_entries([{"token": "abcdefgh", "role": "viewer"}] * 2, "env")
    with pytest.raises(AuthError, match="not JSON"):
        load_registry({"GRID_TOKENS": "{nope"})
    with pytest.raises(AuthError, match="list of tokens"):
        load_registry({"GRID_TOKENS": '{"a": 1}'})
    with pytest.raises(AuthError, match="GRID_TOKENS_FILE"):
        load_registry({"GRID_TOKENS_FILE": str(tmp_path / "missing.yaml")})


def test_bearer_header_parsing():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc  ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token(None, "key-1") == "key-1"
    assert bearer_token("Bearer ", None) is None


def test_public_view_never_shows_the_token():
    reg = load_registry({"GRID_TOKENS": json.dumps([
        {"token": "very-secret-token", "name": "cc", "role": "command_center"}])})
    view = reg.lookup("very-secret-token").public()
    assert "very-secret-token" not in json.dumps(view)
    assert view["city_wide"] and "close" in view["actions"]


def test_grid_tokens_command(monkeypatch):
    from click.testing import CliRunner

    from grid.cli import main

    monkeypatch.delenv("GRID_TOKENS", raising=False)
    monkeypatch.delenv("GRID_TOKENS_FILE", raising=False)
    monkeypatch.delenv("GRID_MODE", raising=False)
    out = CliRunner().invoke(main, ["tokens"])
    assert out.exit_code == 0 and "demo-dept-roads" in out.output
    monkeypatch.setenv("GRID_MODE", "production")
    out = CliRunner().invoke(main, ["tokens"])
    assert out.exit_code == 0 and "no demo tokens" in out.output


def test_integration_reads_only_the_cases_it_reported():
    check_read(HOTLINE, HUANGPU, "roads", reporters=["sup-9", "hotline"])
    with pytest.raises(Forbidden, match="reads only the cases it reported"):
        check_read(HOTLINE, P14, "water", reporters=["sup-0042"])
    with pytest.raises(Forbidden):
        check_read(HOTLINE, P14, "water")
