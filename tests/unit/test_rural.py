"""Rural and fringe areas in the shipped data (issue 18): suburban Qingpu (310118) beside
Yangpu, so differentiated supervision (差别化监管) applies by default."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from grid.models import Report
from grid.service import Engine

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def _point(engine: Engine, zone_type: str) -> tuple[float, float]:
    """A point inside the first shipped zone of ``zone_type`` that lies in no other zone."""
    zones = engine.locator.layers["zones"]
    for geom in zones[zones["zone_type"] == zone_type].sort_values("id").geometry:
        pt = geom.representative_point()
        if engine.locator.locate(pt.x, pt.y).zones == [zone_type]:
            return pt.x, pt.y
    raise AssertionError(f"no clean {zone_type} point")  # pragma: no cover


def _decide(engine: Engine, lon: float, lat: float, type_code: str, description: str = ""):
    r = Report.model_validate(dict(
        report_id=str(uuid.uuid4()), source="supervisor", reporter_id="sup-7", reported_at=NOW,
        location={"lon": lon, "lat": lat}, type_code=type_code, description=description))
    return engine.decide(r, engine.locator.locate(lon, lat), NOW).decision


def test_shipped_data_has_a_suburban_district_with_towns_villages_rural_and_fringe(engine):
    loc = engine.locator
    assert loc.district_names["310118"] == "青浦区"
    assert len([s for s in loc.streets() if s.startswith("310118")]) == 11
    types = {t for z, t in loc.zone_types().items() if z.startswith("310118")}
    assert {"rural", "urban_rural_fringe", "residential_compound"} <= types
    assert not {t for z, t in loc.zone_types().items()
                if z.startswith("310110")} & {"rural", "urban_rural_fringe"}


def test_a_rural_point_gets_rural_limits_with_the_shipped_data(engine):
    lon, lat = _point(engine, "rural")
    place = engine.locator.locate(lon, lat)
    assert place.district == "310118" and place.cell and place.zones == ["rural"]
    rural = _decide(engine, lon, lat, "0201")  # road damaged: ordinary, 3 days (24 h)
    city = _decide(engine, 121.514, 31.299, "0201")  # the same in Yangpu, no zone
    assert "deadline.rural" in rural.rules and "deadline.rural" not in city.rules
    assert any("limits relaxed by deadline.rural" in x and "差别化监管" in x
               for x in rural.explanation)
    assert (rural.calendar, city.calendar) == ("24h", "24h")
    assert city.deadlines["dispose"] - NOW == timedelta(days=3)
    assert rural.deadlines["dispose"] - NOW == timedelta(days=6)  # doubled
    assert (rural.unit, rural.unit_name) == ("310118.roads", "青浦区道路市政养护")


def test_rural_safety_types_keep_their_limits(engine):
    lon, lat = _point(engine, "rural")
    rural = _decide(engine, lon, lat, "0912")  # fire lane blocked: a safety type
    city = _decide(engine, 121.514, 31.299, "0912")
    assert "deadline.rural" not in rural.rules
    assert rural.deadlines["dispose"] - NOW == city.deadlines["dispose"] - NOW


def test_village_market_stalls_are_high_priority_without_alert_within_a_day(engine):
    lon, lat = _point(engine, "rural")
    d = _decide(engine, lon, lat, "0901", "村口赶集摊贩聚集")
    assert (d.priority, d.alert, d.winner) == ("high", False, "route.base")
    assert d.deadlines["dispose"] - NOW == timedelta(days=1)
    assert "route.rural.stalls" in d.rules and "deadline.rural.stalls" in d.rules


def test_urban_rural_fringe_is_a_key_area(engine):
    lon, lat = _point(engine, "urban_rural_fringe")
    d = _decide(engine, lon, lat, "0201")
    assert d.priority == "high"
    assert "area.urban-rural-fringe" in d.rules and "deadline.priority-high" in d.rules


def test_the_demo_feed_samples_each_shipped_district_equally(engine):
    from collections import Counter

    from streams.simulate import sample_points

    pts = sample_points(engine.locator, 101)
    placed = engine.locator.locate_many([p[0] for p in pts], [p[1] for p in pts], "wgs84")
    assert all(p is not None and p.cell for p in placed)
    assert Counter(p.district for p in placed) == {"310110": 51, "310118": 50}
