"""Validation of a layer set: geometry validity, code hierarchy, containment and tiling.

Areas are computed in EPSG:32651. A gap or overlap smaller than ``tolerance_m2`` (default
1 m² per parent or pair — floating-point noise of clipping) is not reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geodata.coords import metric_to_wgs84
from geodata.schema import (
    CODE_DIGITS,
    LAYERS,
    METRIC_EPSG,
    PARENT,
    PARENT_COLUMN,
    PATROL_ID,
    ZONE_TYPES,
    LayerError,
    layer_path,
    read_layer,
)

DEFAULT_TOLERANCE_M2 = 1.0


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" or "warning"
    layer: str
    feature: str
    message: str
    where: tuple[float, float] | None = None  # WGS-84 lon, lat

    def __str__(self) -> str:
        at = f" near {self.where[0]:.6f},{self.where[1]:.6f}" if self.where else ""
        return f"{self.severity.upper()} {self.layer} {self.feature}: {self.message}{at}"


def _where(geom: Any) -> tuple[float, float] | None:
    if geom is None or geom.is_empty:
        return None
    p = shapely.point_on_surface(shapely.make_valid(geom))
    lon, lat = metric_to_wgs84([p.x], [p.y])
    return round(float(lon[0]), 6), round(float(lat[0]), 6)


def _geometry(layer: str, gdf: gpd.GeoDataFrame, key: str) -> Iterator[Problem]:
    g = gdf.geometry.values
    for i in np.flatnonzero(shapely.is_missing(g) | shapely.is_empty(g)):
        yield Problem("error", layer, str(gdf[key].iloc[i]), "empty or missing geometry")
    tid = shapely.get_type_id(g)
    for i in np.flatnonzero(~np.isin(tid, (3, 6)) & ~shapely.is_missing(g)):
        yield Problem("error", layer, str(gdf[key].iloc[i]),
                      f"geometry is a {shapely.get_type_id(g[i])} type, not a polygon")
    bad = np.flatnonzero(~shapely.is_valid(g) & ~shapely.is_missing(g))
    for i in bad:
        yield Problem("error", layer, str(gdf[key].iloc[i]),
                      f"invalid geometry: {shapely.is_valid_reason(g[i])}", _where(g[i]))


def _codes(layer: str, gdf: gpd.GeoDataFrame, parents: gpd.GeoDataFrame | None
           ) -> Iterator[Problem]:
    digits = CODE_DIGITS[layer]
    codes = gdf["code"].astype(str)
    for c in codes[~codes.str.fullmatch(rf"\d{{{digits}}}")]:
        yield Problem("error", layer, c, f"code must be {digits} digits")
    for c in codes[codes.duplicated()].unique():
        yield Problem("error", layer, c, "duplicate code")
    if layer in PARENT_COLUMN:
        col = PARENT_COLUMN[layer]
        pdig = CODE_DIGITS[PARENT[layer]]
        parent = gdf[col].astype(str)
        for c, p in zip(codes[codes.str[:pdig] != parent], parent[codes.str[:pdig] != parent],
                        strict=True):
            yield Problem("error", layer, c,
                          f"code does not start with its {col} code {p} "
                          f"(a {layer[:-1]} code is its {col} code + {digits - pdig} digits)")
        if parents is not None:
            known = set(parents["code"].astype(str))
            for c, p in zip(codes, parent, strict=True):
                if p not in known:
                    yield Problem("error", layer, c,
                                  f"{col} {p} is not in the {PARENT[layer]} layer")


def _containment(layer: str, child: gpd.GeoDataFrame, parent: gpd.GeoDataFrame,
                 tol: float) -> Iterator[Problem]:
    """Children outside their parent, and gaps/overlaps of children within each parent."""
    col = PARENT_COLUMN[layer]
    pgeom = dict(zip(parent["code"].astype(str), parent.geometry.values, strict=True))
    cg = child.geometry.values
    pc = child[col].astype(str).to_numpy()
    has = np.array([p in pgeom for p in pc], dtype=bool)
    valid = shapely.is_valid(cg) & has
    idx = np.flatnonzero(valid)
    pg = np.array([pgeom[p] for p in pc[idx]], dtype=object)
    shapely.prepare(pg)
    out_idx = idx[~shapely.covers(pg, cg[idx])]
    if len(out_idx):
        pgo = np.array([pgeom[p] for p in pc[out_idx]], dtype=object)
        diff = shapely.difference(cg[out_idx], pgo)
        for i, d, a in zip(out_idx, diff, shapely.area(diff), strict=True):
            if a > tol:
                yield Problem("error", layer, str(child["code"].iloc[i]),
                              f"{a:.1f} m² lies outside its {col} {pc[i]}", _where(d))
    # overlaps between children (pairs), then gaps per parent
    tree = shapely.STRtree(cg[valid])
    vidx = np.flatnonzero(valid)
    a, b = tree.query(cg[valid], predicate="overlaps")
    keep = a < b
    a, b = vidx[a[keep]], vidx[b[keep]]
    if len(a):
        inter = shapely.intersection(cg[a], cg[b])
        for i, j, g, ar in zip(a, b, inter, shapely.area(inter), strict=True):
            if ar > tol:
                yield Problem("error", layer, str(child["code"].iloc[i]),
                              f"overlaps {child['code'].iloc[j]} by {ar:.1f} m²", _where(g))
    groups: dict[str, list[int]] = {}
    for i in vidx:
        groups.setdefault(pc[i], []).append(int(i))
    for p, members in sorted(groups.items()):
        gap = shapely.difference(pgeom[p], shapely.union_all(cg[members]))
        if gap.area > tol:
            parts = sorted((q for q in shapely.get_parts(gap) if q.area > tol),
                           key=lambda q: -q.area) or [gap]
            yield Problem("error", PARENT[layer], p,
                          f"{layer} leave a gap of {gap.area:.1f} m² in {len(parts)} place(s) "
                          f"(largest {parts[0].area:.1f} m²)", _where(parts[0]))


def check(directory: str | Path, tolerance_m2: float = DEFAULT_TOLERANCE_M2) -> list[Problem]:
    """All problems of the layer set in ``directory`` (empty list: it passes)."""
    d = Path(directory)
    problems: list[Problem] = []
    layers: dict[str, gpd.GeoDataFrame] = {}
    for layer in LAYERS:
        p = layer_path(d, layer)
        if p is None:
            if layer == "districts":
                problems.append(Problem("error", layer, "-", f"no districts layer in {d}"))
            continue
        try:
            layers[layer] = read_layer(p, layer).to_crs(METRIC_EPSG)
        except LayerError as exc:
            problems.append(Problem("error", layer, "-", str(exc)))
    for layer, gdf in layers.items():
        key = "id" if layer in ("patrol_areas", "zones") else "code"
        problems += _geometry(layer, gdf, key)
        if layer in CODE_DIGITS:
            problems += _codes(layer, gdf, layers.get(PARENT.get(layer, "")))
    for layer in ("streets", "communities", "cells"):
        if layer in layers and PARENT[layer] in layers:
            problems += _containment(layer, layers[layer], layers[PARENT[layer]], tolerance_m2)
    if "districts" in layers:
        problems += _district_overlaps(layers["districts"], tolerance_m2)
    if "cells" in layers:
        problems += _patrol_areas(layers["cells"], layers.get("patrol_areas"))
    if "zones" in layers:
        problems += _zones(layers["zones"])
    problems += _registry(d, layers)
    return problems


def _district_overlaps(dg: gpd.GeoDataFrame, tolerance_m2: float) -> list[Problem]:
    """Districts overlapping each other by more than ``tolerance_m2``."""
    problems: list[Problem] = []
    a, b = shapely.STRtree(dg.geometry.values).query(dg.geometry.values, predicate="overlaps")
    for i, j in zip(a, b, strict=True):
        if i < j:
            ar = dg.geometry.values[i].intersection(dg.geometry.values[j]).area
            if ar > tolerance_m2:
                problems.append(Problem(
                    "error", "districts", str(dg["code"].iloc[i]),
                    f"overlaps district {dg['code'].iloc[j]} by {ar:.1f} m²"))
    return problems


def _patrol_areas(cells: gpd.GeoDataFrame, areas: gpd.GeoDataFrame | None) -> list[Problem]:
    """Each cell's patrol area is '<street code of the cell>-Pnn' and in the patrol_areas
    layer (when there is one)."""
    problems: list[Problem] = []
    pa = cells["patrol_area"].astype(str)
    street = cells["code"].astype(str).str[:9]
    bad = ~pa.str.fullmatch(PATROL_ID.pattern) | (pa.str[:9] != street)
    for c, p in zip(cells["code"][bad], pa[bad], strict=True):
        problems.append(Problem("error", "cells", str(c),
                                f"patrol area {p!r} is not '<street code of the cell>-Pnn'"))
    if areas is not None:
        known = set(areas["id"].astype(str))
        for c, p in zip(cells["code"], pa, strict=True):
            if p not in known:
                problems.append(Problem("error", "cells", str(c),
                                        f"patrol area {p} is not in the patrol_areas layer"))
    return problems


def _zones(z: gpd.GeoDataFrame) -> list[Problem]:
    """Zone types the rules know, zone ids unique."""
    problems: list[Problem] = []
    for zid, zt in zip(z["id"], z["zone_type"], strict=True):
        if zt not in ZONE_TYPES:
            problems.append(Problem("warning", "zones", str(zid),
                                    f"zone type {zt!r} is not one the rules know "
                                    f"({', '.join(ZONE_TYPES)})"))
    for dup in z["id"][z["id"].duplicated()].unique():
        problems.append(Problem("error", "zones", str(dup), "duplicate zone id"))
    return problems


def _registry(d: Path, layers: dict[str, gpd.GeoDataFrame]) -> list[Problem]:
    """The responsible-unit registry (``registry/``), if any, against the layers: units of
    known departments in known districts and streets, compounds that are residential-compound
    zones; a street without a housing office, enforcement team, police station or office is
    a warning (that department's desk dispatches there)."""
    from geodata.registry import Registry, RegistryError
    from geodata.registry_build import STREET_UNITS
    from grid.taxonomy import default_taxonomy

    if not (d / "registry").is_dir():
        return []
    try:
        reg = Registry.load(d / "registry")
    except RegistryError as exc:
        return [Problem("error", "registry", "-", str(exc))]
    out: list[Problem] = []
    depts = default_taxonomy().departments
    col = {k: set(layers[k][c].astype(str)) if k in layers else None
           for k, c in (("districts", "code"), ("streets", "code"))}
    zones = (dict(zip(layers["zones"]["id"].astype(str), layers["zones"]["zone_type"],
                      strict=True)) if "zones" in layers else {})
    for u in reg.units.values():
        if u.department not in depts:
            out.append(Problem("error", "registry", u.unit_id,
                               f"unknown department {u.department!r}"))
        if col["districts"] is not None and u.district not in col["districts"]:
            out.append(Problem("error", "registry", u.unit_id, f"unknown district {u.district}"))
        if u.street and col["streets"] is not None and u.street not in col["streets"]:
            out.append(Problem("error", "registry", u.unit_id, f"unknown street {u.street}"))
    for c in reg.compounds.values():
        if zones.get(c.zone_id) != "residential_compound":
            out.append(Problem("error", "registry", c.zone_id,
                               "compound is not a residential_compound zone of the layer set"))
    held = {(u.department, u.street) for u in reg.units.values() if u.street}
    for street in sorted(col["streets"] or ()):
        missing = [dep for dep in STREET_UNITS if (dep, street) not in held]
        if missing and len(reg):
            out.append(Problem("warning", "registry", street,
                               f"no unit for {', '.join(missing)}: its desk dispatches"))
    return out
