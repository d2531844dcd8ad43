"""The unit grid cells of a district and their queen adjacency (libpysal weights), for the
hotspot statistic (:func:`grid.analytics.hotspots`). Cached per layer set and district."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd

from geodata.locator import DATA_DIR
from geodata.schema import layer_path, read_layer


@lru_cache(maxsize=4)
def district_cells(district: str, directory: str | None = None) -> gpd.GeoDataFrame:
    """The cells of ``district`` (code prefix), ordered by code (EPSG:4326)."""
    d = Path(directory) if directory else DATA_DIR
    p = layer_path(d, "cells")
    if p is None:
        raise FileNotFoundError(f"{d}: no cells layer")
    cells = read_layer(p, "cells")
    return cells[cells["code"].str.startswith(district)].sort_values("code") \
        .reset_index(drop=True)


@lru_cache(maxsize=4)
def cell_weights(district: str, directory: str | None = None) -> Any:
    """Queen contiguity (shared edge or corner) of the district's cells, ids = cell codes."""
    from libpysal.weights import Queen

    cells = district_cells(district, directory)
    if cells.empty:
        raise ValueError(f"no cells of district {district} in the layer set")
    return Queen.from_dataframe(cells, ids=cells["code"].tolist(), use_index=False,
                                silence_warnings=True)
