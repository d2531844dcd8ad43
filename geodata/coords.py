"""Chinese map coordinate systems: WGS-84 (GPS), GCJ-02 (AMap, Tencent, most phones in
China) and BD-09 (Baidu), plus metric projection and distances.

The GCJ-02 and BD-09 forward transforms are the published ones (as in eviltransform and
coordtransform); the inverses are computed by fixed-point iteration to < 1e-9 degrees.
Everything is vectorised over numpy arrays; scalars work too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Crs = Literal["wgs84", "gcj02", "bd09"]
CRS_NAMES: tuple[str, ...] = ("wgs84", "gcj02", "bd09")
METRIC_EPSG = 32651  # UTM zone 51N: metres over Shanghai
EARTH_RADIUS_M = 6_371_008.8

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by GCJ-02
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0
_TOL_DEG = 1e-10
_MAX_ITER = 30

Floats = NDArray[np.float64]


class CoordinateError(ValueError):
    """A coordinate that is not a finite lon/lat in range, or an unknown CRS."""


def validate(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    """Return lon/lat as float arrays; raise :class:`CoordinateError` on NaN, inf or range."""
    x = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    y = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    if x.shape != y.shape:
        raise CoordinateError(f"lon and lat differ in shape: {x.shape} vs {y.shape}")
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CoordinateError(
            f"{int(bad.sum())} coordinate(s) are NaN or infinite (first at index {i}: "
            f"lon={x[i]!r}, lat={y[i]!r}); send a real position"
        )
    bad = (np.abs(x) > 180) | (np.abs(y) > 90)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CoordinateError(
            f"{int(bad.sum())} coordinate(s) out of range (first at index {i}: lon={x[i]}, "
            f"lat={y[i]}); lon must be in [-180, 180] and lat in [-90, 90] — swapped lon/lat?"
        )
    return x, y


def check_crs(crs: str) -> Crs:
    c = str(crs).lower().replace("-", "").replace("_", "")
    if c not in CRS_NAMES:
        raise CoordinateError(f"unknown crs {crs!r}; use one of {', '.join(CRS_NAMES)}")
    return c  # type: ignore[return-value]


def out_of_china(lon: Floats, lat: Floats) -> NDArray[np.bool_]:
    """The published rough China box; GCJ-02 applies no offset outside it."""
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _delta(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    x, y = lon - 105.0, lat - 35.0
    sx = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx + common
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx + common
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sq = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sq) * np.pi)
    dlon = (dlon * 180.0) / (_A / sq * np.cos(rad) * np.pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def _gcj(x: Floats, y: Floats) -> tuple[Floats, Floats]:
    dx, dy = _delta(x, y)
    return x + dx, y + dy


def _bd(x: Floats, y: Floats) -> tuple[Floats, Floats]:
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    return _gcj(*validate(lon, lat))


def _invert(forward: Callable[[Floats, Floats], tuple[Floats, Floats]], lon: Floats, lat: Floats,
            start: tuple[Floats, Floats]) -> tuple[Floats, Floats]:
    gx, gy = start
    for _ in range(_MAX_ITER):
        fx, fy = forward(gx, gy)
        ex, ey = fx - lon, fy - lat
        gx, gy = gx - ex, gy - ey
        if max(np.abs(ex).max(initial=0.0), np.abs(ey).max(initial=0.0)) < _TOL_DEG:
            break
    return gx, gy


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    """Inverse of :func:`wgs84_to_gcj02` by iteration (error < 1e-9 degrees)."""
    x, y = validate(lon, lat)
    dx, dy = _delta(x, y)
    return _invert(_gcj, x, y, (x - dx, y - dy))


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    return _bd(*validate(lon, lat))


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    """Inverse of :func:`gcj02_to_bd09`: the published approximation, refined by iteration."""
    bx, by = validate(lon, lat)
    x, y = bx - 0.0065, by - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return _invert(_bd, bx, by, (z * np.cos(theta), z * np.sin(theta)))


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def to_wgs84(lon: ArrayLike, lat: ArrayLike, crs: str | ArrayLike = "wgs84"
             ) -> tuple[Floats, Floats]:
    """Convert from ``crs`` (one name, or an array of per-point names) to WGS-84."""
    x, y = validate(lon, lat)
    if isinstance(crs, str):
        c = check_crs(crs)
        if c == "gcj02":
            return gcj02_to_wgs84(x, y)
        if c == "bd09":
            return bd09_to_wgs84(x, y)
        return x, y
    names = np.asarray(crs, dtype=object)
    if names.shape != x.shape:
        raise CoordinateError(f"crs array has shape {names.shape}, points have {x.shape}")
    ox, oy = x.copy(), y.copy()
    for name in {str(n) for n in np.unique(names.astype(str))}:
        c = check_crs(name)
        sel = names.astype(str) == name
        if c != "wgs84":
            ox[sel], oy[sel] = to_wgs84(x[sel], y[sel], c)
    return ox, oy


@lru_cache(maxsize=4)
def _transformer(src: int, dst: int) -> Any:  # a pyproj Transformer
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def wgs84_to_metric(lon: ArrayLike, lat: ArrayLike) -> tuple[Floats, Floats]:
    """WGS-84 lon/lat to EPSG:32651 metres."""
    x, y = _transformer(4326, METRIC_EPSG).transform(np.asarray(lon), np.asarray(lat))
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def metric_to_wgs84(x: ArrayLike, y: ArrayLike) -> tuple[Floats, Floats]:
    lon, lat = _transformer(METRIC_EPSG, 4326).transform(np.asarray(x), np.asarray(y))
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """:func:`distance_m` for one pair of points in plain floats: 0.9 µs against 18 µs for
    the numpy form on scalars (duplicate search calls it per candidate)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def distance_m(lon1: ArrayLike, lat1: ArrayLike, lon2: ArrayLike, lat2: ArrayLike) -> Any:
    """Great-circle (haversine) distance in metres between WGS-84 points; vectorised.

    Returns a float for scalar input, else an array. Good to ~0.5 % — ample for
    duplicate detection within tens or hundreds of metres.
    """
    p1, p2 = np.radians(np.asarray(lat1, float)), np.radians(np.asarray(lat2, float))
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2, float) - np.asarray(lon1, float))
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    return float(d) if np.ndim(d) == 0 else d
