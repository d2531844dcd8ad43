"""Point assignment: WGS-84 / GCJ-02 / BD-09 point -> district, street, community, cell,
patrol area and zones (a :class:`grid.models.Placement`).

Rules (see docs/geodata.md):

* Cells are looked up in EPSG:32651 through :class:`geodata.gridindex.SquareIndex`
  (square arithmetic plus a shapely STRtree ``covered_by`` query).
* Tie-break: a point covered by several cells (on a shared edge or corner, boundary
  inclusive) goes to the cell with the lowest code. Same point, same cell, always.
* A point in no cell but within ``snap_m`` (default 30 m) of one snaps to the nearest cell
  (lowest code on equal distance) and reports ``snapped_m``; a point inside a district is
  only snapped to cells of that district.
* A point inside a district but outside the cell coverage gets its district (and street
  and community when those layers cover it) with ``cell=None``.
* A point outside every district (and further than ``snap_m`` from all of them) is
  outside coverage: :meth:`Locator.locate` raises :class:`OutsideCoverage`,
  :meth:`Locator.locate_many` puts ``None`` at that position.
"""

from __future__ import annotations

import gc
import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.geometry
from numpy.typing import ArrayLike

from geodata import coords
from geodata.gridindex import SquareIndex
from geodata.registry import Registry
from geodata.schema import METRIC_EPSG, layer_path, read_layer, read_layers
from grid.models import Placement

DATA_DIR = Path(__file__).parent / "data"
INDEX_FILE = "cells.index.npz"
DEFAULT_SNAP_M = 30.0
CELL_SQUARE_M = 100.0
ZONE_SQUARE_M = 250.0
PRECISION_M = 0.001  # metric coordinates are snapped to 1 mm when compiling the cell index

_FIELDS = frozenset(Placement.model_fields)


class OutsideCoverage(ValueError):
    """The point is outside every district of the loaded layer set."""


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compile_cells(cells: gpd.GeoDataFrame, metric: np.ndarray | None = None
                  ) -> tuple[SquareIndex, np.ndarray, np.ndarray, list[str]]:
    """Cell index from a cells layer: (index, int64 codes, patrol index per cell, patrol ids).

    ``metric``: the exact EPSG:32651 geometries when the caller has them (the generator);
    otherwise the layer is reprojected and snapped to 1 mm, which restores the exact 100 m
    grid corners after a WGS-84 round trip.
    """
    order = np.argsort(cells["code"].astype(str).to_numpy(), kind="stable")
    cells = cells.iloc[order]
    if metric is None:
        metric = shapely.set_precision(cells.to_crs(METRIC_EPSG).geometry.values, PRECISION_M)
    else:
        metric = np.asarray(metric, dtype=object)[order]
    idx = SquareIndex.compile(np.asarray(metric), CELL_SQUARE_M, single=True)
    codes = cells["code"].astype(np.int64).to_numpy()
    if "patrol_area" not in cells:
        return idx, codes, np.full(len(codes), -1, np.int32), []
    pa = cells["patrol_area"].fillna("").astype(str).to_numpy()
    patrol_ids, inv = np.unique(pa, return_inverse=True)
    pidx = inv.astype(np.int32)
    pidx[pa == ""] = -1
    return idx, codes, pidx, [str(p) for p in patrol_ids]


def write_cell_index(directory: str | Path, cells: gpd.GeoDataFrame | None = None,
                     metric: np.ndarray | None = None) -> Path:
    """Compile the cell index of a layer set and store it next to its cells layer."""
    d = Path(directory)
    src = layer_path(d, "cells")
    if src is None:
        raise FileNotFoundError(f"{d}: no cells layer")
    cells = read_layer(src, "cells") if cells is None else cells
    idx, codes, pidx, patrol_ids = compile_cells(cells, metric)
    out = d / INDEX_FILE
    idx.save(out, codes=codes, patrol=pidx, patrol_ids=np.asarray(patrol_ids, dtype=str),
             source=np.asarray([src.name, file_digest(src)], dtype=str))
    return out


@dataclass
class _Polys:
    """A small polygon layer (districts, streets, communities) with an STRtree in metres."""

    codes: list[str]
    geoms: np.ndarray
    tree: shapely.STRtree = field(init=False)

    def __post_init__(self) -> None:
        self.tree = shapely.STRtree(self.geoms)

    @classmethod
    def of(cls, gdf: gpd.GeoDataFrame | None, key: str = "code") -> _Polys | None:
        if gdf is None or len(gdf) == 0:
            return None
        gdf = gdf.sort_values(key, kind="stable")
        return cls([str(c) for c in gdf[key]], np.asarray(gdf.to_crs(METRIC_EPSG).geometry.values))

    def covering(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Index of the lowest-code polygon covering each point, or -1."""
        out = np.full(len(x), np.iinfo(np.int64).max)
        if len(x):
            p, t = self.tree.query(shapely.points(x, y), predicate="covered_by")
            np.minimum.at(out, p, t)
        return np.where(out == np.iinfo(np.int64).max, -1, out)

    def nearest(self, x: np.ndarray, y: np.ndarray, max_m: float
                ) -> tuple[np.ndarray, np.ndarray]:
        best, dist = np.full(len(x), -1), np.full(len(x), np.inf)
        if len(x):
            (p, t), d = self.tree.query_nearest(shapely.points(x, y), max_distance=max_m,
                                                return_distance=True)
            best[p], dist[p] = t, d
        return best, dist


class Locator:
    """Assigns points to the layers of one layer set. Build with :meth:`load`."""

    def __init__(self, layers: dict[str, gpd.GeoDataFrame], directory: Path | None = None,
                 cell_index: tuple[Any, ...] | None = None, snap_m: float = DEFAULT_SNAP_M) -> None:
        self.directory = directory
        self.snap_m = float(snap_m)
        self.layers = layers
        d = layers["districts"].sort_values("code")
        self.district_names = {str(c): str(n) for c, n in zip(d["code"], d["name"], strict=True)}
        # crs -> (community, patrol area) key -> the fields shared by its cells' placements
        self._template_cache: dict[str | None, dict[int, dict[str, Any]]] = {}
        self._districts = _Polys.of(d)
        self._streets = _Polys.of(layers.get("streets"))
        self._communities = _Polys.of(layers.get("communities"))
        if cell_index is None and "cells" in layers:
            cell_index = compile_cells(layers["cells"])
        if cell_index is not None:
            self._cells, self._codes, self._patrol, self._patrol_ids = cell_index
        else:
            self._cells, self._codes, self._patrol, self._patrol_ids = None, None, None, []
        zones = layers.get("zones")
        if zones is not None and len(zones):
            zones = zones.sort_values("id", kind="stable")
            self._zone_ids = [str(z) for z in zones["id"]]
            self._zone_types = [str(t) for t in zones["zone_type"]]
            self._zone_index = {z: k for k, z in enumerate(self._zone_ids)}
            self._zones = SquareIndex.compile(
                np.asarray(zones.to_crs(METRIC_EPSG).geometry.values), ZONE_SQUARE_M, single=False)
            shapely.prepare(self._zones.tree_geoms)
        else:
            self._zone_ids, self._zone_types, self._zones = [], [], None
            self._zone_index = {}

    @cached_property
    def registry(self) -> Registry:
        """The responsible-unit registry of this layer set (``<dir>/registry``; empty if
        there is none): see :mod:`geodata.registry`."""
        return Registry.load(self.directory / "registry" if self.directory else None)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path | None = None, snap_m: float = DEFAULT_SNAP_M) -> Locator:
        """Load a layer set directory (None: the shipped demo set — 16 districts, Yangpu layers).

        Uses ``cells.index.npz`` when present and made from the same cells file (sha256);
        otherwise compiles the cell index in memory.
        """
        d = Path(path) if path is not None else DATA_DIR
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such layer-set directory")
        index_path = d / INDEX_FILE
        cell_index = None
        skip = ()
        if index_path.exists():
            idx, extra = SquareIndex.load(index_path)
            name, digest = (str(s) for s in extra["source"])
            src = d / name
            if src.exists() and file_digest(src) == digest:
                cell_index = (idx, extra["codes"], extra["patrol"],
                              [str(p) for p in extra["patrol_ids"]])
                skip = ("cells", "patrol_areas")
        layers = read_layers(d, skip=skip)
        return cls(layers, d, cell_index, snap_m)

    # ------------------------------------------------------------------ catalogue
    def districts(self) -> list[str]:
        """District codes (6 digits), sorted; names in :attr:`district_names`."""
        return sorted(self.district_names)

    def streets(self) -> list[str]:
        """All street codes (9 digits), sorted."""
        if self._streets is not None:
            return list(self._streets.codes)
        return sorted({str(c)[:9] for c in self._codes}) if self._codes is not None else []

    def communities(self) -> list[str]:
        return list(self._communities.codes) if self._communities is not None else []

    def patrol_areas(self) -> list[str]:
        return list(self._patrol_ids)

    def zone_types(self) -> dict[str, str]:
        """Zone id -> zone type."""
        return dict(zip(self._zone_ids, self._zone_types, strict=True))

    @property
    def n_cells(self) -> int:
        return 0 if self._codes is None else len(self._codes)

    @staticmethod
    def distance_m(lon1: ArrayLike, lat1: ArrayLike, lon2: ArrayLike, lat2: ArrayLike) -> Any:
        """Metres between WGS-84 points (haversine); see :func:`geodata.coords.distance_m`."""
        return coords.distance_m(lon1, lat1, lon2, lat2)

    # ------------------------------------------------------------------ locating
    def locate(self, lon: float, lat: float, crs: str = "wgs84") -> Placement:
        """Place one point; raise :class:`OutsideCoverage` outside every district."""
        p = self.locate_many([lon], [lat], crs)[0]
        if p is None:
            c = coords.check_crs(crs)
            x, y = coords.wgs84_to_metric(*coords.to_wgs84(lon, lat, c))
            (t,), (dist,) = self._districts.nearest(x, y, 1e7)
            near = f"; nearest district {self._districts.codes[t]} is {dist / 1000:.1f} km away" \
                if t >= 0 else ""
            raise OutsideCoverage(
                f"({lon}, {lat}) in {c} is outside every district of the loaded layer set"
                f" (snap tolerance {self.snap_m:g} m){near}")
        return p

    def locate_arrays(self, lons: ArrayLike, lats: ArrayLike, crs: str | ArrayLike = "wgs84",
                      engine: str = "squares") -> dict[str, np.ndarray]:
        """Vectorised core of :meth:`locate_many`, returning index arrays.

        Keys: ``lon``/``lat`` (WGS-84), ``cell`` (row in the cell table or -1), ``district``,
        ``street``, ``community`` (index into the sorted code lists, or -1 — for located
        cells these are derived from the cell code instead), ``snapped_m`` (NaN when not
        snapped), ``zone_pt``/``zone`` (pairs of point and zone index). ``engine``:
        ``"squares"`` (candidates per index square) or ``"strtree"`` (STRtree query) for the
        point-in-polygon step; both give the same answers.
        """
        crs_ = crs if isinstance(crs, str) else np.asarray(crs, dtype=object)
        lon, lat = coords.to_wgs84(lons, lats, crs_)
        x, y = coords.wgs84_to_metric(lon, lat)
        n = len(x)
        cell = self._cells.query_single(x, y, engine) if self._cells is not None else np.full(n, -1)
        district = np.full(n, -1)
        street = np.full(n, -1)
        community = np.full(n, -1)
        snapped = np.full(n, np.nan)
        miss = np.flatnonzero(cell < 0)
        if len(miss):
            mx, my = x[miss], y[miss]
            dist_i = self._districts.covering(mx, my)
            if self._cells is not None:
                near, nd = self._cells.nearest(mx, my, self.snap_m)
                ok = near >= 0
                if ok.any():
                    dcodes = np.asarray([*self._districts.codes, ""])
                    cell_d = (self._codes[np.where(ok, near, 0)] // 10**9).astype(str)
                    ok &= (dist_i < 0) | (cell_d == dcodes[dist_i])
                cell[miss[ok]] = near[ok]
                snapped[miss[ok]] = nd[ok]
                dist_i[ok] = -1
            district[miss] = dist_i
            rest = miss[(cell[miss] < 0) & (dist_i >= 0)]
            if len(rest):
                if self._streets is not None:
                    street[rest] = self._streets.covering(x[rest], y[rest])
                if self._communities is not None:
                    community[rest] = self._communities.covering(x[rest], y[rest])
            lost = miss[(cell[miss] < 0) & (dist_i < 0)]
            if len(lost):
                t, dd = self._districts.nearest(x[lost], y[lost], self.snap_m)
                district[lost] = t
                snapped[lost] = np.where(t >= 0, dd, np.nan)
        if self._zones is not None:
            zpt, zone = self._zones.query_pairs(x, y, engine)
        else:
            zpt, zone = np.zeros(0, np.int64), np.zeros(0, np.int64)
        return {"lon": lon, "lat": lat, "cell": cell, "district": district, "street": street,
                "community": community, "snapped_m": snapped, "zone_pt": zpt, "zone": zone}

    def locate_many(self, lons: ArrayLike, lats: ArrayLike, crs: str | ArrayLike = "wgs84"
                    ) -> list[Placement | None]:
        """Place many points at once (numpy-vectorised). ``crs`` is one name or one per point.

        Returns one entry per input point, in order: a :class:`Placement`, or ``None`` for a
        point outside coverage. Bad coordinates raise :class:`geodata.coords.CoordinateError`.
        """
        gc_was = gc.isenabled()
        gc.disable()  # millions of small objects: generational GC would dominate the time
        try:
            return self._placements(self.locate_arrays(lons, lats, crs), crs)
        finally:
            if gc_was:
                gc.enable()

    def _placements(self, r: dict[str, np.ndarray], crs: str | ArrayLike) -> list[Placement | None]:
        one_crs = coords.check_crs(crs) if isinstance(crs, str) else None
        n = len(r["lon"])
        cells = r["cell"]
        cov = np.flatnonzero(cells >= 0)
        codes = self._codes[cells[cov]]
        # One shared template per (community, patrol area) in the batch; points are visited
        # grouped by template (cache-friendly), results put back in input order.
        npa = len(self._patrol_ids) + 1
        inv, ukey = pd.factorize((codes // 1000) * npa + self._patrol[cells[cov]] + 1)
        templates = self._templates(ukey.tolist(), npa, one_crs)
        ti = np.empty(n, dtype=np.int64)
        ti[cov] = inv
        for i in np.flatnonzero(cells < 0).tolist():
            ti[i] = len(templates)
            templates.append(self._uncovered(r, i, one_crs))
        cell_code = np.zeros(n, dtype=np.int64)
        cell_code[cov] = codes
        # zones: index of the single zone of a point, -1 for none, -2 for several
        zpt, zone = r["zone_pt"], r["zone"]
        zk = np.full(n, -1, dtype=np.int64)
        nz = np.bincount(zpt, minlength=n)
        zk[zpt] = zone
        zk[nz > 1] = -2
        ztypes, zids = self._zone_types, self._zone_ids
        order = np.argsort(ti, kind="stable")
        out: list[Placement | None] = [None] * n
        new, setattr_ = object.__new__, object.__setattr__
        # Placement.model_construct without its per-call overhead: the values come from
        # validated layers and the coordinate checks, so validation would only cost time.
        for i, lon, lat, k, c, z in zip(
                order.tolist(), r["lon"][order].tolist(), r["lat"][order].tolist(),
                ti[order].tolist(), cell_code[order].tolist(), zk[order].tolist(), strict=True):
            t = templates[k]
            if t is None:
                continue
            d = t.copy()
            if c:
                d["cell"] = str(c)
            d["lon"] = lon
            d["lat"] = lat
            if z < 0:
                d["zones"] = []
                d["zone_ids"] = []
            else:
                d["zones"] = [ztypes[z]]
                d["zone_ids"] = [zids[z]]
            obj = new(Placement)
            setattr_(obj, "__dict__", d)
            setattr_(obj, "__pydantic_fields_set__", _FIELDS)
            setattr_(obj, "__pydantic_extra__", None)
            setattr_(obj, "__pydantic_private__", None)
            out[i] = obj
        self._finish(out, r["snapped_m"], crs, one_crs)
        self._several_zones(out, zpt, zone, nz)
        return out

    def _templates(self, keys: list[int], npa: int, one_crs: str | None
                   ) -> list[dict[str, Any] | None]:
        """One shared placement template per (community, patrol area) key, cached per CRS."""
        cache = self._template_cache.setdefault(one_crs, {})
        templates: list[dict[str, Any] | None] = []
        for k in keys:
            t = cache.get(k)
            if t is None:
                comm, pa = str(k // npa), k % npa - 1
                t = cache[k] = {
                    "district": comm[:6], "district_name": self.district_names.get(comm[:6]),
                    "street": comm[:9], "community": comm,
                    "patrol_area": self._patrol_ids[pa] if pa >= 0 else None, "crs": one_crs,
                    "snapped_m": None, "cell": None, "lon": None, "lat": None, "zones": None,
                    "zone_ids": None}  # every key present: copies never resize
            templates.append(t)
        return templates

    @staticmethod
    def _finish(out: list[Placement | None], snapped: np.ndarray, crs: str | ArrayLike,
                one_crs: str | None) -> None:
        """Snapping distances, and each point's own CRS when the batch mixes them."""
        for i in np.flatnonzero(~np.isnan(snapped)).tolist():
            if out[i] is not None:
                out[i].__dict__["snapped_m"] = round(float(snapped[i]), 2)
        if one_crs is None:
            for pl, c in zip(out, np.asarray(crs, dtype=object).tolist(), strict=True):
                if pl is not None:
                    pl.__dict__["crs"] = coords.check_crs(c)

    def _several_zones(self, out: list[Placement | None], zpt: np.ndarray, zone: np.ndarray,
                       nz: np.ndarray) -> None:
        """Points in several zones: every zone id (sorted by zone), their types sorted."""
        ztypes, zids = self._zone_types, self._zone_ids
        multi = np.isin(zpt, np.flatnonzero(nz > 1))
        if multi.any():
            order = np.lexsort((zone[multi], zpt[multi]))
            for p, z in zip(zpt[multi][order].tolist(), zone[multi][order].tolist(), strict=True):
                pl = out[p]
                if pl is not None:
                    pl.__dict__["zone_ids"].append(zids[z])
            for p in np.flatnonzero(nz > 1).tolist():
                pl = out[p]
                if pl is not None:
                    pl.__dict__["zones"] = sorted({ztypes[self._zone_index[z]]
                                                   for z in pl.zone_ids})

    def _uncovered(self, r: dict[str, np.ndarray], i: int, crs: str | None
                   ) -> dict[str, Any] | None:
        di = int(r["district"][i])
        if di < 0:
            return None
        code = self._districts.codes[di]
        si, ci = int(r["street"][i]), int(r["community"][i])
        return {"district": code, "district_name": self.district_names.get(code),
                "street": self._streets.codes[si] if si >= 0 else None,
                "community": self._communities.codes[ci] if ci >= 0 else None,
                "cell": None, "patrol_area": None, "snapped_m": None, "crs": crs}

    # ------------------------------------------------------------------ map output
    def geojson(self, layer: str = "cells", district: str | None = None,
                simplify_m: float = 2.0, precision: int = 6) -> dict[str, Any]:
        """A layer as a compact WGS-84 GeoJSON FeatureCollection (for the dashboard map).

        Geometries are simplified by ``simplify_m`` metres (topology-preserving) and
        coordinates rounded to ``precision`` decimals (6 = ~0.1 m). ``district`` filters
        by code prefix. The whole-city cell layer is large: filter it by district.
        """
        gdf = self.layers.get(layer)
        if gdf is None and self.directory is not None:
            p = layer_path(self.directory, layer)
            gdf = read_layer(p, layer) if p is not None else None
        if gdf is None:
            raise KeyError(f"no {layer!r} layer in this layer set")
        key = "id" if "id" in gdf.columns else "code"
        if district is not None:
            col = key if layer != "zones" else "district"
            gdf = gdf[gdf[col].astype(str).str.startswith(district)]
        g = gdf.to_crs(METRIC_EPSG).geometry
        if simplify_m > 0:
            g = g.simplify(simplify_m, preserve_topology=True)
        g = gpd.GeoSeries(g, crs=METRIC_EPSG).to_crs(4326)
        g = gpd.GeoSeries(shapely.set_precision(g.values, 10.0 ** -precision), crs=4326)
        props = gdf.drop(columns="geometry").astype(object).where(gdf.notna(), None)
        feats = [{"type": "Feature", "properties": rec, "geometry": shapely.geometry.mapping(geom)}
                 for rec, geom in zip(props.to_dict("records"), g.values, strict=True)]
        return {"type": "FeatureCollection", "features": feats}

    def cell_geojson(self, district: str | None = None, simplify_m: float = 2.0) -> dict[str, Any]:
        return self.geojson("cells", district, simplify_m)

    def info(self) -> dict[str, Any]:
        """Counts per layer and the WGS-84 bounding box."""
        counts = {name: len(gdf) for name, gdf in self.layers.items()}
        counts["cells"] = self.n_cells
        counts.setdefault("patrol_areas", len(self._patrol_ids))
        b = self.layers["districts"].total_bounds
        return {"directory": str(self.directory) if self.directory else None, "counts": counts,
                "bbox": [round(float(v), 6) for v in b]}
