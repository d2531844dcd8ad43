"""The layer-set schema: which layers, which columns, which codes; reading and writing.

A layer set is a directory holding one file per layer, named ``<layer>.<ext>`` with ext
one of ``parquet`` (GeoParquet), ``gpkg`` or ``geojson``. Geometries are polygons in
EPSG:4326 or EPSG:4490 (other CRSs are reprojected to EPSG:4326 on read); metric work is
done in EPSG:32651.

=============  ==========================================  ==================================
layer          columns                                     code
=============  ==========================================  ==================================
districts      code, name                                  6 digits (admin code, 3101xx)
streets        code, name, district                        9 digits = district + 3
communities    code, name, street                          12 digits = street + 3
cells          code, community, patrol_area                15 digits = community + 3
patrol_areas   id, street, n_cells                         "<street>-P<nn>"
zones          id, zone_type, name, district               free id, zone_type from ZONE_TYPES
=============  ==========================================  ==================================
"""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd

LAYERS: tuple[str, ...] = ("districts", "streets", "communities", "cells", "patrol_areas", "zones")
EXTENSIONS: tuple[str, ...] = ("parquet", "geoparquet", "gpkg", "geojson", "json")
ACCEPTED_EPSG = (4326, 4490)
METRIC_EPSG = 32651

COLUMNS: dict[str, tuple[str, ...]] = {
    "districts": ("code", "name"),
    "streets": ("code", "name", "district"),
    "communities": ("code", "name", "street"),
    "cells": ("code", "community", "patrol_area"),
    "patrol_areas": ("id", "street", "n_cells"),
    "zones": ("id", "zone_type", "name", "district"),
}
CODE_DIGITS = {"districts": 6, "streets": 9, "communities": 12, "cells": 15}
PARENT = {"streets": "districts", "communities": "streets", "cells": "communities"}
PARENT_COLUMN = {"streets": "district", "communities": "street", "cells": "community"}
PATROL_ID = re.compile(r"^(\d{9})-P\d{2,4}$")

# Fixed vocabulary: the rules engine matches these strings.
ZONE_TYPES: tuple[str, ...] = (
    "residential_compound",
    "metro_station",
    "market",
    "hospital",
    "school",
    "urban_rural_fringe",
    "rural",
)

DISTRICT_NAMES: dict[str, str] = {
    "310101": "黄浦区",
    "310104": "徐汇区",
    "310105": "长宁区",
    "310106": "静安区",
    "310107": "普陀区",
    "310109": "虹口区",
    "310110": "杨浦区",
    "310112": "闵行区",
    "310113": "宝山区",
    "310114": "嘉定区",
    "310115": "浦东新区",
    "310116": "金山区",
    "310117": "松江区",
    "310118": "青浦区",
    "310120": "奉贤区",
    "310151": "崇明区",
}


class LayerError(ValueError):
    """A layer file that cannot be read in the schema."""


def layer_path(directory: str | Path, layer: str) -> Path | None:
    """The file holding ``layer`` in ``directory`` (first matching extension), or None."""
    d = Path(directory)
    for ext in EXTENSIONS:
        p = d / f"{layer}.{ext}"
        if p.exists():
            return p
    return None


def read_layer(path: str | Path, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read one layer (GeoParquet, GeoPackage or GeoJSON) as EPSG:4326 with string codes."""
    p = Path(path)
    try:
        parquet = p.suffix in (".parquet", ".geoparquet")
        gdf = gpd.read_parquet(p) if parquet else gpd.read_file(p)
    except Exception as exc:  # pyogrio/pyarrow raise many kinds
        raise LayerError(f"{p}: cannot read: {exc}") from exc
    if gdf.crs is None:
        gdf = gdf.set_crs(4326)
    elif gdf.crs.to_epsg() not in ACCEPTED_EPSG:
        gdf = gdf.to_crs(4326)
    elif gdf.crs.to_epsg() == 4490:  # CGCS2000: same as WGS-84 to well under a metre
        gdf = gdf.set_crs(4326, allow_override=True)
    layer = layer or p.stem
    missing = [c for c in COLUMNS.get(layer, ()) if c not in gdf.columns and c != "n_cells"]
    if missing:
        raise LayerError(f"{p}: layer {layer!r} lacks column(s) {', '.join(missing)}")
    for c in ("code", "id", "district", "street", "community", "patrol_area"):
        if c in gdf.columns:
            gdf[c] = gdf[c].astype("string").astype(object)
    return gdf


def read_layers(directory: str | Path, skip: tuple[str, ...] = ()) -> dict[str, gpd.GeoDataFrame]:
    """All layers present in a layer-set directory (missing layers are simply absent)."""
    out = {}
    for layer in LAYERS:
        p = None if layer in skip else layer_path(directory, layer)
        if p is not None:
            out[layer] = read_layer(p, layer)
    if "districts" not in out:
        raise LayerError(f"{directory}: no districts layer (districts.parquet/.gpkg/.geojson)")
    return out


def write_layer(gdf: gpd.GeoDataFrame, directory: str | Path, layer: str) -> Path:
    """Write a layer as compressed GeoParquet (EPSG:4326)."""
    p = Path(directory) / f"{layer}.parquet"
    gdf.to_crs(4326).to_parquet(p, compression="zstd", index=False, write_covering_bbox=False)
    return p
