"""Responsible units (issue 18): the shipped registry, the decision naming department and unit,
component owners by object code / id prefix and the meter, unit-level scope."""

from __future__ import annotations

import filecmp
import uuid
from datetime import UTC, datetime

import pytest

from geodata.locator import DATA_DIR
from geodata.registry import Registry, RegistryError
from geodata.registry_build import build_registry
from grid import auth
from grid.models import Action, Command, Report
from grid.service import Engine

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def _report(lon: float, lat: float, type_code: str, **kw) -> Report:
    data = dict(report_id=str(uuid.uuid4()), source="supervisor", reporter_id="sup-7",
                reported_at=NOW, location={"lon": lon, "lat": lat}, type_code=type_code)
    return Report.model_validate({**data, **kw})


def _inside(engine: Engine, zone_id: str) -> tuple[float, float]:
    zones = engine.locator.layers["zones"]
    p = zones[zones["id"] == zone_id].geometry.iloc[0].representative_point()
    return p.x, p.y


def _open(engine: Engine, r: Report):
    place = engine.locator.locate(r.location.lon, r.location.lat)
    msg = engine.decide(r, place, NOW)
    return engine.on_located(msg, None, [], NOW)


# --- the registry data --------------------------------------------------------------------


def test_shipped_registry_is_what_the_generator_writes(tmp_path):
    counts = build_registry(DATA_DIR, tmp_path)
    assert counts == {"units": 170, "compounds": 96, "owners": 50}  # Yangpu and Qingpu
    for name in ("units.csv", "compounds.csv", "owners.csv"):
        assert filecmp.cmp(tmp_path / name, DATA_DIR / "registry" / name, shallow=False), name


def test_registry_lists_street_units_compounds_and_owners(engine):
    reg = engine.registry
    assert reg.unit("310110001.housing").name_zh == "杨浦区街镇01房管办事处"
    assert reg.unit("310110001.urban_enforcement").name_zh == "杨浦区街镇01城管执法中队"
    assert reg.unit("310110.water").name_zh == "杨浦区供水管理所"
    companies = [u for u in reg.units_of("property_management") if u.district == "310110"]
    assert len(companies) == 12 and all(u.street is None for u in companies)
    assert reg.unit("310118.property_management.01").name_zh == "上海青浦安居物业管理有限公司"
    assert reg.compounds_of("310110.property_management.01") == [
        "310110-Z0001", "310110-Z0013", "310110-Z0025"]


def test_registry_refuses_an_unknown_unit(tmp_path):
    (tmp_path / "units.csv").write_text(
        "unit_id,name_zh,name_en,department,district,street\n"
        "310110.water,供水,Water,water,310110,\n", encoding="utf-8")
    (tmp_path / "compounds.csv").write_text(
        "zone_id,name_zh,street,unit_id\n310110-Z0001,小区,310110008,310110.nobody\n",
        encoding="utf-8")
    with pytest.raises(RegistryError, match=r"compounds.csv:2: unknown unit '310110.nobody'"):
        Registry.load(tmp_path)
    assert len(Registry.load(tmp_path / "missing")) == 0  # no registry: an empty one


# --- the decision names department and unit ------------------------------------------------


def test_manhole_with_water_object_code_goes_to_the_water_company(engine):
    r = _report(121.514, 31.299, "0101", component_code="3101100101000123")
    fx = _open(engine, r)
    d = fx.case.decision
    assert (d.department, d.unit, d.unit_name) == ("water", "310110.water", "杨浦区供水管理所")
    assert d.winner == "route.owner.object-code"
    assert "unit 310110.water 杨浦区供水管理所 <- owner 3101100101" in d.explanation
    wo = fx.work_orders[0]
    assert (wo.department, wo.unit, wo.role) == ("water", "310110.water", "lead")
    assert fx.case.unit == "310110.water"
    # a storm-water manhole code goes to drainage, a gas one to gas
    for code, dept in (("3101100103000001", "drainage"), ("3101100111000001", "gas")):
        d = engine.decide(_report(121.514, 31.299, "0101", component_code=code),
                          engine.locator.locate(121.514, 31.299), NOW).decision
        assert (d.department, d.unit) == (dept, f"310110.{dept}")


def test_component_id_prefix_names_the_owning_unit(engine):
    d = engine.decide(_report(121.514, 31.299, "0101", component_id="SS-310110-00017"),
                      engine.locator.locate(121.514, 31.299), NOW).decision
    assert (d.department, d.winner, d.unit) == ("water", "route.owner.water", "310110.water")
    assert "unit 310110.water 杨浦区供水管理所 <- owner SS-" in d.explanation


def test_compound_property_company_gets_its_corridor_clutter_and_sees_only_its_own(engine):
    a_lon, a_lat = _inside(engine, "310110-Z0001")  # managed by company 01
    b_lon, b_lat = _inside(engine, "310110-Z0002")  # managed by company 02
    fa = _open(engine, _report(a_lon, a_lat, "0602", description="楼道堆物"))
    fb = _open(engine, _report(b_lon, b_lat, "0602", description="楼道堆物"))
    assert fa.case.decision.department == fb.case.decision.department == "property_management"
    assert fa.case.unit == "310110.property_management.01"
    assert fb.case.unit == "310110.property_management.02"
    assert fa.case.decision.unit_name == "上海杨浦安居物业管理有限公司"
    assert ("unit 310110.property_management.01 上海杨浦安居物业管理有限公司 <- compound "
            "310110-Z0001 杨浦区街镇08住宅小区01") in fa.case.decision.explanation

    pm01 = auth.Principal(name="anju", role="department", department="property_management",
                          unit="310110.property_management.01")
    auth.check_read(pm01, fa.case.placement, fa.case.department, (),
                    auth.holders_of(fa.case))
    with pytest.raises(auth.Forbidden, match=r"unit '310110\.property_management\.01' reads only"):
        auth.check_read(pm01, fb.case.placement, fb.case.department, (),
                        auth.holders_of(fb.case))
    with pytest.raises(auth.Forbidden, match="may act only on its own work orders"):
        auth.check_action(pm01, Action.ACCEPT, fb.case.placement, fb.case.department,
                          auth.holders_of(fb.case))
    orders = [*fa.work_orders, *fb.work_orders]
    assert [o.case_id for o in auth.visible_work_orders(pm01, orders)] == [fa.case.case_id]
    desk = auth.Principal(name="pm", role="department", department="property_management")
    assert len(auth.visible_work_orders(desk, orders)) == 2

    # the lifecycle agrees: company 01 accepts its order, not company 02's
    ok = engine.on_command(Command(command_id="a1", case_id=fa.case.case_id,
                                   action=Action.ACCEPT, actor=pm01.actor, role="department"),
                           fa.case, NOW)
    assert ok.case.state.value == "accepted"
    no = engine.on_command(Command(command_id="a2", case_id=fb.case.case_id,
                                   action=Action.ACCEPT, actor=pm01.actor, role="department"),
                           fb.case, NOW)
    assert no.events[0].type == "command_rejected"
    assert "'310110.property_management.01' is not responsible" in no.events[0].reason


def test_after_the_meter_in_a_compound_is_the_property_companys(engine):
    lon, lat = _inside(engine, "310110-Z0001")
    place = engine.locator.locate(lon, lat)
    before = engine.decide(_report(lon, lat, "0105", component_id="SS-310110-9",
                                   meter="before"), place, NOW).decision
    after = engine.decide(_report(lon, lat, "0105", component_id="SS-310110-9",
                                  meter="after"), place, NOW).decision
    assert (before.department, before.unit) == ("water", "310110.water")
    assert (after.department, after.unit) == ("property_management",
                                              "310110.property_management.01")
    assert after.winner == "route.owner.after-meter"


def test_street_units_for_housing_and_enforcement(engine):
    place = engine.locator.locate(121.514, 31.299)
    d = engine.decide(_report(121.514, 31.299, "0801"), place, NOW).decision
    assert d.department == "urban_enforcement"
    assert d.unit == f"{place.street}.urban_enforcement"
    assert d.unit_name.endswith("城管执法中队")


def test_unit_token_entries_are_parsed_and_checked():
    reg = auth.parse_entries([{"token": "pm-token-1", "role": "department",
                               "department": "property_management",
                               "unit": "310110.property_management.01"}], "test")
    p = reg.lookup("pm-token-1")
    assert (p.unit, p.actor, p.public()["unit"]) == ("310110.property_management.01",) * 3
    with pytest.raises(auth.AuthError, match=r"unit .* is for department tokens"):
        auth.parse_entries([{"token": "cc-token-1", "role": "command_center",
                             "unit": "x"}], "test")


def test_redispatch_goes_to_the_new_departments_unit_and_checks_a_named_unit(engine):
    fx = _open(engine, _report(121.514, 31.299, "0201"))  # road damaged -> roads
    street = fx.case.placement.street
    fx = engine.on_command(Command(command_id="r1", case_id=fx.case.case_id,
                                   action=Action.RETURN, actor="roads", role="department",
                                   reason="not ours"), fx.case, NOW)
    bad = engine.on_command(Command(command_id="d0", case_id=fx.case.case_id,
                                    action=Action.DISPATCH, actor="cc", role="command_center",
                                    department="street_office", unit="310110.water"),
                            fx.case, NOW)
    assert bad.events[0].type == "command_rejected"
    assert "unit '310110.water' is not a unit of 'street_office'" in bad.events[0].reason
    fx = engine.on_command(Command(command_id="d1", case_id=fx.case.case_id,
                                   action=Action.DISPATCH, actor="cc", role="command_center",
                                   department="street_office"), fx.case, NOW)
    wo = fx.work_orders[0]
    assert (wo.department, wo.unit) == ("street_office", f"{street}.street_office")
    assert wo.unit_name == f"杨浦区街镇{street[-2:]}办事处"
    assert fx.case.unit == f"{street}.street_office"


def test_intake_checks_the_object_codes_class(engine):
    from grid.intake import Rejection, parse_report

    base = dict(schema="grid.report/1", report_id=str(uuid.uuid4()), source="supervisor",
                reporter_id="sup-7", reported_at=NOW.isoformat(), type_code="0101",
                location={"lon": 121.514, "lat": 31.299})
    ok = parse_report({**base, "component_code": "3101100101000123"},
                      taxonomy=engine.taxonomy, now=NOW)
    assert isinstance(ok, Report) and ok.component_code == "3101100101000123"
    bad = parse_report({**base, "component_code": "3101100901000123"},
                       taxonomy=engine.taxonomy, now=NOW)
    assert isinstance(bad, Rejection)
    assert "digits 7-8 (09) are not a component class" in bad.message
    short = parse_report({**base, "component_code": "31011001"}, taxonomy=engine.taxonomy,
                         now=NOW)
    assert isinstance(short, Rejection) and "component_code" in short.message
