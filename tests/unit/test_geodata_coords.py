"""Coordinate systems against published reference points."""

import numpy as np
import pytest

from geodata import coords
from geodata.coords import CoordinateError

# eviltransform test vectors (WGS-84 -> GCJ-02), given as (lat, lon) there.
EVIL = [
    ((31.1774276, 121.5272106), (31.17530398364597, 121.531541859215)),  # Shanghai
    ((22.543847, 113.912316), (22.540796131694766, 113.9171764808363)),  # Shenzhen
    ((39.911954, 116.377817), (39.91334545536069, 116.38404722455657)),  # Beijing
]


@pytest.mark.parametrize(("wgs", "gcj"), EVIL)
def test_wgs84_to_gcj02_reference(wgs, gcj):
    lon, lat = coords.wgs84_to_gcj02(wgs[1], wgs[0])
    assert lon[0] == pytest.approx(gcj[1], abs=1e-9)
    assert lat[0] == pytest.approx(gcj[0], abs=1e-9)


@pytest.mark.parametrize(("wgs", "gcj"), EVIL)
def test_gcj02_to_wgs84_inverts_to_1e6_degrees(wgs, gcj):
    lon, lat = coords.gcj02_to_wgs84(gcj[1], gcj[0])
    assert abs(lon[0] - wgs[1]) < 1e-6 and abs(lat[0] - wgs[0]) < 1e-6


def test_coordtransform_reference_points():
    # wandergis/coordtransform README values
    lon, lat = coords.wgs84_to_gcj02(116.404, 39.915)
    assert (lon[0], lat[0]) == pytest.approx((116.41024449916938, 39.91640428150164), abs=1e-9)
    lon, lat = coords.gcj02_to_bd09(116.404, 39.915)
    assert (lon[0], lat[0]) == pytest.approx((116.41036949371029, 39.92133699351021), abs=1e-9)
    # their bd09 -> gcj02 is a one-step approximation; ours iterates, so agree to ~5 cm
    lon, lat = coords.bd09_to_gcj02(116.404, 39.915)
    assert (lon[0], lat[0]) == pytest.approx((116.39762729119315, 39.90865673957631), abs=1e-6)


def test_round_trips_are_exact_over_shanghai():
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(120.8, 122.3, 1000), rng.uniform(30.6, 31.9, 1000)
    for fwd, inv in [(coords.wgs84_to_gcj02, coords.gcj02_to_wgs84),
                     (coords.gcj02_to_bd09, coords.bd09_to_gcj02),
                     (coords.wgs84_to_bd09, coords.bd09_to_wgs84)]:
        x, y = inv(*fwd(lon, lat))
        assert np.abs(x - lon).max() < 1e-8 and np.abs(y - lat).max() < 1e-8


def test_gcj_offset_in_shanghai_is_a_few_hundred_metres():
    lon, lat = coords.wgs84_to_gcj02(121.4737, 31.2304)
    d = coords.distance_m(121.4737, 31.2304, lon[0], lat[0])
    assert 300 < d < 700


def test_outside_china_is_not_offset():
    lon, lat = coords.wgs84_to_gcj02(-104.9903, 39.7392)  # Denver
    assert (lon[0], lat[0]) == (-104.9903, 39.7392)


def test_to_wgs84_per_point_crs():
    lon = np.array([121.5, 121.5, 121.5])
    lat = np.array([31.2, 31.2, 31.2])
    x, y = coords.to_wgs84(lon, lat, ["wgs84", "gcj02", "bd09"])
    assert x[0] == 121.5
    assert x[1] == pytest.approx(coords.gcj02_to_wgs84(121.5, 31.2)[0][0])
    assert x[2] == pytest.approx(coords.bd09_to_wgs84(121.5, 31.2)[0][0])


@pytest.mark.parametrize(("lon", "lat", "words"), [
    (float("nan"), 31.2, "NaN or infinite"),
    (121.5, float("inf"), "NaN or infinite"),
    (181.0, 31.2, "out of range"),
    (31.2, 121.5, "swapped"),
])
def test_bad_coordinates_are_rejected(lon, lat, words):
    with pytest.raises(CoordinateError, match=words):
        coords.to_wgs84(lon, lat, "gcj02")


def test_unknown_crs_is_rejected():
    with pytest.raises(CoordinateError, match="unknown crs"):
        coords.to_wgs84(121.5, 31.2, "epsg:3857")


def test_distance_m():
    d = coords.distance_m(121.531541859215, 31.17530398364597,
                          116.38404722455657, 39.91334545536069)
    assert d == pytest.approx(1078164.0, rel=0.005)
    north = coords.distance_m(121.5, 31.2, 121.5, 31.2 + 100 / 111_195)
    assert north == pytest.approx(100, abs=0.1)
    arr = coords.distance_m([121.5, 121.5], [31.2, 31.2], [121.5, 121.501], [31.2, 31.2])
    assert arr.shape == (2,) and arr[0] == 0 and 90 < arr[1] < 100


def test_scalar_haversine_agrees_with_the_vectorised_distance():
    rng = np.random.default_rng(7)
    pts = np.column_stack([rng.uniform(120.8, 122.0, 200), rng.uniform(30.6, 31.9, 200),
                           rng.uniform(120.8, 122.0, 200), rng.uniform(30.6, 31.9, 200)])
    vec = coords.distance_m(pts[:, 0], pts[:, 1], pts[:, 2], pts[:, 3])
    assert [coords.haversine_m(*p) for p in pts] == pytest.approx(list(vec), abs=1e-6)
