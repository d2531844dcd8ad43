"""The unit grid cells of a district and their queen adjacency (libpysal weights), for the
hotspot statistic (:func:`grid.analytics.hotspots`). Cached per layer set and district."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd

from geodata.locator import DATA_DIR
from geodata.schema import layer_path, read_layer


@lru_cache(maxsize=8)
def district_layer(layer: str, district: str, directory: str | None = None
                   ) -> gpd.GeoDataFrame:
    """The features of ``layer`` (cells, streets…) in ``district`` (code prefix), ordered by
    code (EPSG:4326)."""
    d = Path(directory) if directory else DATA_DIR
    p = layer_path(d, layer)
    if p is None:
        raise FileNotFoundError(f"{d}: no {layer} layer")
    gdf = read_layer(p, layer)
    return gdf[gdf["code"].str.startswith(district)].sort_values("code") \
        .reset_index(drop=True)


def district_cells(district: str, directory: str | None = None) -> gpd.GeoDataFrame:
    """The unit grid cells of ``district``, ordered by code."""
    return district_layer("cells", district, directory)


@lru_cache(maxsize=4)
def cell_weights(district: str, directory: str | None = None) -> Any:
    """Queen contiguity (shared edge or corner) of the district's cells, ids = cell codes."""
    from libpysal.weights import Queen

    cells = district_cells(district, directory)
    if cells.empty:
        raise ValueError(f"no cells of district {district} in the layer set")
    return Queen.from_dataframe(cells, ids=cells["code"].tolist(), use_index=False,
                                silence_warnings=True)
