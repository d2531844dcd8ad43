"""Locator on the shipped demo set (16 real districts, generated Yangpu layers)."""

from pathlib import Path

import numpy as np
import pytest
import shapely

from geodata import coords
from geodata.gridindex import SquareIndex
from geodata.locator import Locator, OutsideCoverage
from geodata.schema import DISTRICT_NAMES, ZONE_TYPES
from grid.models import Placement


@pytest.fixture(scope="module")
def loc():
    return Locator.load(None)


def test_right_district_for_a_point_inside_each_of_the_16(loc):
    d = loc.layers["districts"]
    pts = shapely.point_on_surface(d.geometry.values)
    lon, lat = shapely.get_x(pts), shapely.get_y(pts)
    assert len(d) == 16 and loc.districts() == sorted(DISTRICT_NAMES)
    got = loc.locate_many(lon, lat, "wgs84")
    assert [p.district for p in got] == list(d["code"])
    glon, glat = coords.wgs84_to_gcj02(lon, lat)
    got = loc.locate_many(glon, glat, "gcj02")
    assert [p.district for p in got] == list(d["code"])
    assert all(p.crs == "gcj02" for p in got)
    blon, blat = coords.wgs84_to_bd09(lon, lat)
    for code, x, y in zip(d["code"], blon, blat, strict=True):
        p = loc.locate(x, y, "bd09")
        assert p.district == code and p.district_name == DISTRICT_NAMES[code] and p.crs == "bd09"


def test_yangpu_point_gets_a_15_digit_cell_that_contains_it(loc):
    p = loc.locate(121.52, 31.29)
    assert p.district == "310110" and len(p.cell) == 15
    assert p.cell.startswith(p.community) and p.community.startswith(p.street)
    assert p.street.startswith(p.district) and p.street in loc.streets()
    assert p.patrol_area.startswith(p.street + "-P")
    cells = loc.geojson("cells", district=p.street, simplify_m=0)
    geom = next(f for f in cells["features"] if f["properties"]["code"] == p.cell)["geometry"]
    assert shapely.geometry.shape(geom).buffer(1e-6).contains(shapely.Point(121.52, 31.29))
    assert p.snapped_m is None


def test_gcj02_input_is_converted_before_lookup(loc):
    wgs = loc.locate(121.52, 31.29)
    lon, lat = coords.wgs84_to_gcj02(121.52, 31.29)
    gcj = loc.locate(lon[0], lat[0], "gcj02")
    assert gcj.cell == wgs.cell and gcj.lon == pytest.approx(121.52, abs=1e-8)


def test_placements_are_valid_models(loc):
    rng = np.random.default_rng(3)
    ps = loc.locate_many(rng.uniform(121.50, 121.55, 300), rng.uniform(31.27, 31.31, 300))
    for p in ps:
        assert p is not None
        assert Placement.model_validate(p.model_dump()) == p
        assert p.partition_key == (p.street or p.district)


def test_streets_and_catalogue(loc):
    s = loc.streets()
    assert len(s) == 23 and all(len(c) == 9 and c[:6] in ("310110", "310118") for c in s)
    assert sum(c.startswith("310110") for c in s) == 12  # Yangpu; the rest are Qingpu's
    assert loc.n_cells > 5000
    assert all(pa.startswith(tuple(s)) for pa in loc.patrol_areas())
    assert set(loc.zone_types().values()) <= set(ZONE_TYPES)


def test_zones_are_reported(loc):
    zones = loc.layers["zones"]
    row = zones[zones["zone_type"] == "hospital"].iloc[0]
    pt = row.geometry.representative_point()
    p = loc.locate(pt.x, pt.y)
    assert "hospital" in p.zones and row["id"] in p.zone_ids
    assert set(p.zones) <= set(ZONE_TYPES)


def test_district_without_cells_gives_cell_none(loc):
    p = loc.locate(121.437, 31.188)  # Xuhui: real boundary, no generated layers shipped
    assert p.district == "310104" and p.cell is None and p.street is None


FIXTURES = Path(__file__).parents[1] / "fixtures" / "geodata"
X0, Y0 = 359000.0, 3462000.0  # south-west corner of the fixture district (EPSG:32651)


@pytest.fixture(scope="module")
def small():
    """The 400 m x 400 m GeoJSON fixture: nothing around it, so snapping is testable."""
    return Locator.load(FIXTURES / "ok")


def _wgs(x, y):
    lon, lat = coords.metric_to_wgs84([x], [y])
    return float(lon[0]), float(lat[0])


def test_geojson_layer_set_loads_and_locates(small):
    p = small.locate(*_wgs(X0 + 150, Y0 + 350))  # west community, top row, 2nd column
    assert p.cell == "310110001001002" and p.patrol_area == "310110001-P01"
    p = small.locate(*_wgs(X0 + 100, Y0 + 100))
    assert p.zones == ["school"] and p.zone_ids == ["310110-Z0001"]


def test_point_just_outside_snaps_to_nearest_cell(small):
    p = small.locate(*_wgs(X0 - 12, Y0 + 150))
    assert p.cell == "310110001001005" and p.district == "310110"
    assert p.snapped_m == pytest.approx(12.0, abs=0.01)
    p = small.locate(*_wgs(X0 + 420, Y0 + 420))  # diagonal off the north-east corner
    assert p.cell == "310110001002002" and p.snapped_m == pytest.approx(28.28, abs=0.01)
    with pytest.raises(OutsideCoverage):
        small.locate(*_wgs(X0 + 450, Y0 + 410))  # 51 m away: beyond the 30 m tolerance


def test_point_far_outside_is_outside_coverage(small, loc):
    with pytest.raises(OutsideCoverage, match="outside every district"):
        small.locate(*_wgs(X0 - 200, Y0 + 150))
    lons, lats = zip(_wgs(X0 - 200, Y0), _wgs(X0 + 50, Y0 + 50), strict=True)
    got = small.locate_many(lons, lats)
    assert got[0] is None and got[1].cell == "310110001001007"
    with pytest.raises(OutsideCoverage, match="nearest district 310118"):
        loc.locate(120.0, 31.0)


def test_snap_tolerance_is_configurable():
    tight = Locator.load(FIXTURES / "ok", snap_m=5)
    with pytest.raises(OutsideCoverage):
        tight.locate(*_wgs(X0 - 12, Y0 + 150))


def test_no_snapping_across_a_district_border(loc):
    """A Hongkou point 10 m from Yangpu cells stays in Hongkou (no cells there)."""
    d = loc.layers["districts"].to_crs(32651)
    hk = d.geometry[d["code"] == "310109"].iloc[0]
    yp = d.geometry[d["code"] == "310110"].iloc[0]
    border = hk.boundary.intersection(yp.boundary.buffer(0.01))
    b = shapely.line_interpolate_point(shapely.get_parts(border)[0], 0.5, normalized=True)
    cands = [shapely.Point(b.x + dx, b.y + dy) for dx in (-10, 0, 10) for dy in (-10, 0, 10)]
    q = next(c for c in cands if hk.contains(c) and 5 < yp.distance(c) <= 15)
    lon, lat = coords.metric_to_wgs84([q.x], [q.y])
    p = loc.locate(lon[0], lat[0])
    assert p.district == "310109" and p.cell is None and p.snapped_m is None


def test_locate_many_mixed_crs_and_bad_input(loc):
    lon, lat = coords.wgs84_to_gcj02(121.52, 31.29)
    ps = loc.locate_many([121.52, lon[0]], [31.29, lat[0]], ["wgs84", "gcj02"])
    assert ps[0].cell == ps[1].cell and [p.crs for p in ps] == ["wgs84", "gcj02"]
    with pytest.raises(coords.CoordinateError):
        loc.locate_many([121.52, float("nan")], [31.29, 31.29])


def test_same_point_same_cell_on_shared_edges(loc):
    """Points on cell edges (here: on 100 m grid lines) always get one and the same cell."""
    x0, y0 = coords.wgs84_to_metric([121.52], [31.29])
    gx, gy = np.floor(x0[0] / 100) * 100, np.floor(y0[0] / 100) * 100
    xs = np.array([gx, gx + 50, gx, gx + 100, gx + 37.5])
    ys = np.array([gy + 50, gy, gy, gy + 100, gy + 100])
    lon, lat = coords.metric_to_wgs84(xs, ys)
    first = [p.cell for p in loc.locate_many(lon, lat)]
    assert all(first)
    for _ in range(3):
        assert [p.cell for p in loc.locate_many(lon, lat)] == first
        assert [loc.locate(a, b).cell for a, b in zip(lon, lat, strict=True)] == first


def test_tie_break_is_lowest_code_exactly_on_edges():
    """On the index itself (metric, exact): shared edge and corner go to the lowest id."""
    boxes = [shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100),
             shapely.box(0, 100, 100, 200), shapely.box(100, 100, 200, 200),
             shapely.Polygon([(200, 0), (260, 0), (240, 100), (200, 100)]),
             shapely.Polygon([(260, 0), (300, 0), (300, 100), (240, 100)])]
    idx = SquareIndex.compile(np.array(boxes, dtype=object), 100.0, single=True)
    x = np.array([100.0, 100.0, 50.0, 250.0, 150.0, 200.0, 250.0])
    y = np.array([50.0, 100.0, 100.0, 50.0, 150.0, 50.0, 99.0])
    assert idx.query_single(x, y).tolist() == [0, 0, 0, 4, 3, 1, 5]
    # strictly inside each box: its own id, whether full square or mixed
    assert idx.query_single(np.array([50, 150, 50, 150, 210, 290.0]),
                            np.array([50, 50, 150, 150, 50, 50.0])).tolist() == [0, 1, 2, 3, 4, 5]
    near, d = idx.nearest(np.array([-10.0, 50.0, 400.0]), np.array([50.0, -20.0, 50.0]), 30.0)
    assert near.tolist() == [0, 0, -1] and d[:2].tolist() == [10.0, 20.0]


def test_square_index_matches_plain_strtree_on_random_points(loc):
    rng = np.random.default_rng(7)
    cells = loc.layers.get("cells")
    if cells is None:
        from geodata.schema import read_layer
        cells = read_layer(loc.directory / "cells.parquet", "cells")
    cells = cells.sort_values("code")
    geoms = cells.to_crs(32651).geometry.values
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    x, y = rng.uniform(x0, x1, 20000), rng.uniform(y0, y1, 20000)
    p, t = shapely.STRtree(geoms).query(shapely.points(x, y), predicate="within")
    expect = np.full(len(x), -1)
    expect[p] = t
    got = loc._cells.query_single(x, y)
    assert (got == expect).mean() > 0.9999  # only float noise at 1 mm edges may differ
    assert (got >= 0).sum() > 4000  # the box spans Yangpu and Qingpu: ~24 % land in cells


def test_distance_helper(loc):
    assert loc.distance_m(121.5, 31.2, 121.5, 31.2009) == pytest.approx(100, abs=1)


def test_cell_geojson_is_compact_wgs84(loc):
    fc = loc.cell_geojson()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == loc.n_cells
    f = fc["features"][0]
    assert set(f["properties"]) >= {"code", "community", "patrol_area"}
    x, y = f["geometry"]["coordinates"][0][0][:2] if f["geometry"]["type"] == "Polygon" \
        else f["geometry"]["coordinates"][0][0][0][:2]
    assert 121.4 < x < 121.7 and 31.2 < y < 31.4 and round(x, 6) == x
    streets = loc.geojson("streets")
    assert len(streets["features"]) == 23
    assert len(loc.geojson("streets", district="310118")["features"]) == 11
    assert len(loc.geojson("patrol_areas", district="310110001")["features"]) > 5
