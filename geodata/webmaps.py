"""Per-level map files for the dashboard: simplified, compact, gzipped GeoJSON. Pure (files).

The dashboard draws one level at a time — the city's districts, one district's streets, one
street's communities and cells — so a layer set gets, in ``<dir>/web/``:

==============================  =====================  ===========  =========
file                            features               simplified   decimals
==============================  =====================  ===========  =========
``districts.geojson.gz``        the 16 districts       80 m         4 (~10 m)
``streets-<district>.geojson.gz``  a district's streets  15 m         5 (~1 m)
``communities-<street>.geojson.gz``  a street's communities  5 m     5
``cells-<street>.geojson.gz``   a street's cells       —            5
``manifest.json``               version, source digests, counts per file
==============================  =====================  ===========  =========

Districts and streets are simplified as a coverage (shared edges stay shared: no gaps).
Properties: ``code`` and ``name`` (cells: ``code``). ``grid geodata build`` writes them;
``grid geodata web DIR`` (re)writes them for an existing layer set. :class:`WebMaps` serves
them, and builds a missing or stale file in memory on first use (slower: the whole cell layer
is read once).
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import orjson
import shapely

from geodata.locator import file_digest
from geodata.schema import METRIC_EPSG, layer_path, read_layer

WEB_DIR = "web"
VERSION = 1
SOURCES = ("districts", "streets", "communities", "cells")
# layer -> (simplify metres, decimals, coverage-simplify)
LEVELS: dict[str, tuple[float, int, bool]] = {
    "districts": (80.0, 4, True),
    "streets": (15.0, 5, True),
    "communities": (5.0, 5, False),
    "cells": (0.0, 5, False),
}
DISTRICT_CELLS_MAX = 30_000  # a district's whole cell layer is served only up to this


def file_name(layer: str, code: str | None = None) -> str:
    """``districts.geojson.gz`` or ``<layer>-<code>.geojson.gz``."""
    return f"{layer}.geojson.gz" if layer == "districts" else f"{layer}-{code}.geojson.gz"


def feature_collection(gdf: gpd.GeoDataFrame, layer: str, props: tuple[str, ...]) -> bytes:
    """``gdf`` (EPSG:4326) as a compact GeoJSON FeatureCollection, simplified and rounded as
    :data:`LEVELS` says for ``layer``; empty geometries are left out."""
    simplify_m, decimals, coverage = LEVELS[layer]
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    if simplify_m > 0 and len(geoms):
        metric = np.asarray(gpd.GeoSeries(geoms, crs=4326).to_crs(METRIC_EPSG).values)
        try:
            simple = (shapely.coverage_simplify(metric, simplify_m) if coverage
                      else shapely.simplify(metric, simplify_m, preserve_topology=True))
        except shapely.errors.GEOSException:  # not a valid coverage: one by one
            simple = shapely.simplify(metric, simplify_m, preserve_topology=True)
        geoms = np.asarray(gpd.GeoSeries(simple, crs=METRIC_EPSG).to_crs(4326).values)
    if len(geoms):
        geoms = shapely.transform(geoms, lambda xy: np.round(xy, decimals))
    texts = shapely.to_geojson(geoms) if len(geoms) else []
    # GEOS writes some rounded values back as 31.280639999999998: print them short again
    long_ = re.compile(rb"-?\d+\.\d{%d,}" % (decimals + 1))

    def short(m: re.Match[bytes]) -> bytes:
        return repr(round(float(m.group()), decimals)).encode()

    empty = shapely.is_empty(geoms) if len(geoms) else []
    cols = [gdf[c].astype(str).tolist() for c in props]
    parts = []
    for i, text in enumerate(texts):
        if empty[i] or text is None:
            continue
        p = orjson.dumps({c: col[i] for c, col in zip(props, cols, strict=True)})
        parts.append(b'{"type":"Feature","properties":' + p + b',"geometry":'
                     + long_.sub(short, text.encode()) + b"}")
    return b'{"type":"FeatureCollection","features":[' + b",".join(parts) + b"]}"


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def source_digests(directory: Path) -> dict[str, str]:
    """sha256 of each source layer file (name -> digest): the manifest's staleness check."""
    out = {}
    for layer in SOURCES:
        p = layer_path(directory, layer)
        if p is not None:
            out[p.name] = file_digest(p)
    return out


def _props(gdf: gpd.GeoDataFrame) -> tuple[str, ...]:
    return ("code", "name") if "name" in gdf.columns else ("code",)


def build_web(directory: str | Path, log: Callable[[str], Any] = print) -> dict[str, int]:
    """Write ``<directory>/web/`` for the layer set in ``directory``; returns files per layer.
    The manifest is written last, so a half-written directory reads as stale."""
    d = Path(directory)
    out = d / WEB_DIR
    out.mkdir(exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    t0 = time.perf_counter()
    files: dict[str, int] = {}

    def write(name: str, body: bytes, n: int) -> None:
        (out / name).write_bytes(_gz(body))
        files[name] = n

    layers = {}
    for layer in SOURCES:
        p = layer_path(d, layer)
        if p is not None:
            layers[layer] = read_layer(p, layer)
    dist = layers["districts"]
    write(file_name("districts"), feature_collection(dist, "districts", _props(dist)), len(dist))
    counts = {"districts": 1}
    for layer, parent_len in (("streets", 6), ("communities", 9), ("cells", 9)):
        gdf = layers.get(layer)
        if gdf is None or not len(gdf):
            continue
        t = time.perf_counter()
        key = gdf["code"].astype(str).str[:parent_len]
        n = 0
        for code, part in gdf.groupby(key, sort=True):
            write(file_name(layer, str(code)), feature_collection(part, layer, _props(part)),
                  len(part))
            n += 1
        counts[layer] = n
        log(f"web maps: {layer}: {len(gdf)} features in {n} files "
            f"({time.perf_counter() - t:.1f} s)")
    manifest = {"version": VERSION, "sources": source_digests(d), "files": files,
                "levels": {k: {"simplify_m": v[0], "decimals": v[1]} for k, v in LEVELS.items()}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    log(f"web maps: wrote {len(files)} files to {out} in {time.perf_counter() - t0:.1f} s")
    return counts


class WebMaps:
    """The map files of one layer set: read from ``<dir>/web/`` when its manifest matches the
    layers, else built in memory on first use. Thread-safe; every answer is gzipped GeoJSON
    bytes, or ``None`` when the layer set has no such feature group."""

    def __init__(self, directory: str | Path | None, layers: dict[str, gpd.GeoDataFrame]
                 ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.layers = dict(layers)
        self._lock = threading.Lock()
        self._mem: dict[str, bytes | None] = {}
        self.manifest: dict[str, Any] | None = None
        self.stale_reason: str | None = None
        if self.directory is None:
            self.stale_reason = "no layer-set directory"
            return
        mpath = self.directory / WEB_DIR / "manifest.json"
        if not mpath.exists():
            self.stale_reason = f"no {mpath} (run: grid geodata web {self.directory})"
            return
        m = json.loads(mpath.read_text())
        if m.get("version") != VERSION:
            self.stale_reason = f"{mpath}: version {m.get('version')}, want {VERSION}"
        elif m.get("sources") != source_digests(self.directory):
            self.stale_reason = f"{mpath}: the layers changed since (grid geodata web)"
        else:
            self.manifest = m

    @property
    def prebuilt(self) -> bool:
        return self.manifest is not None

    def count(self, layer: str, code: str | None = None) -> int | None:
        """Features in one file per the manifest (None: unknown or not pre-built)."""
        if self.manifest is None:
            return None
        n: int | None = self.manifest["files"].get(file_name(layer, code))
        return n

    def get(self, layer: str, code: str | None = None) -> bytes | None:
        """The gzipped FeatureCollection of ``layer`` (``districts``; ``streets`` of a
        district; ``communities`` or ``cells`` of a street)."""
        if layer not in LEVELS:
            raise KeyError(f"no map layer {layer!r}: one of {', '.join(LEVELS)}")
        name = file_name(layer, code)
        if self.manifest is not None:
            assert self.directory is not None
            if name not in self.manifest["files"]:
                return None
            return (self.directory / WEB_DIR / name).read_bytes()
        with self._lock:
            if name not in self._mem:
                self._mem[name] = self._build(layer, code)
            return self._mem[name]

    def _layer(self, layer: str) -> gpd.GeoDataFrame | None:
        gdf = self.layers.get(layer)
        if gdf is None and self.directory is not None:
            p = layer_path(self.directory, layer)
            if p is not None:
                gdf = self.layers[layer] = read_layer(p, layer)
        return gdf

    def _build(self, layer: str, code: str | None) -> bytes | None:
        gdf = self._layer(layer)
        if gdf is None:
            return None
        if layer != "districts":
            gdf = gdf[gdf["code"].astype(str).str.startswith(code or "")]
            if not len(gdf):
                return None
        return _gz(feature_collection(gdf, layer, _props(gdf)))

    def district_cells(self, district: str, streets: list[str]) -> bytes | None:
        """All cells of a small district (≤ :data:`DISTRICT_CELLS_MAX`) as one gzipped
        FeatureCollection; None when it is larger or has none."""
        bodies = []
        total = 0
        for s in streets:
            if not s.startswith(district):
                continue
            n = self.count("cells", s)
            raw = None
            if n is None:
                gz = self.get("cells", s)
                if gz is None:
                    continue
                raw = gzip.decompress(gz)
                n = raw.count(b'"type":"Feature"')
            total += n
            if total > DISTRICT_CELLS_MAX:
                return None
            if raw is None:
                gz = self.get("cells", s)
                raw = gzip.decompress(gz) if gz else None
            if raw:
                inner = raw[len(b'{"type":"FeatureCollection","features":['):-2]
                if inner:
                    bodies.append(inner)
        if not bodies:
            return None
        return _gz(b'{"type":"FeatureCollection","features":[' + b",".join(bodies) + b"]}")
