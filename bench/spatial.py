"""Spatial benchmark: ``Locator.locate_many`` against ``geopandas.sjoin`` on the same
points and the same cells, plus the locator's load time and peak RSS.

    python -m bench.spatial                       # whole city from the cache (build it first:
                                                  #   grid geodata build --city)
    python -m bench.spatial --data geodata/data   # shipped Yangpu demo set
    python -m bench.spatial --points 1000000 --repeat 3 --batch 10000

Points are uniform random inside the cell coverage (WGS-84 lon/lat arrays). Both sides
start from those arrays: sjoin gets ``points_from_xy`` + a GeoDataFrame (its spatial index
over the cells is built before timing); locate_many converts the CRS itself and returns
``Placement`` objects with zones (``locate_arrays`` is the same work without building
Python objects). Timed once with all points in one call (best of ``--repeat``) and once in
batches of ``--batch`` points, the way the stream worker calls it; results are freed
outside the timing on both sides. Load time and peak RSS come from a fresh subprocess.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LOAD_SNIPPET = """
import json, resource, sys, time
t = time.perf_counter()
from geodata.locator import Locator
loc = Locator.load(sys.argv[1])
print(json.dumps({"load_s": time.perf_counter() - t, "cells": loc.n_cells,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure_load(data: Path) -> dict:
    """Load the locator in a fresh interpreter (imports included) and report time and RSS."""
    out = subprocess.run([sys.executable, "-c", LOAD_SNIPPET, str(data)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def random_points(cells_gdf, n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Uniform points inside the cell coverage: random cells by area, then inside them."""
    import shapely

    rng = np.random.default_rng(seed)
    g = cells_gdf.geometry.values
    area = shapely.area(g)
    pick = rng.choice(len(g), size=n * 2, p=area / area.sum())
    b = shapely.bounds(g[pick])
    x = rng.uniform(b[:, 0], b[:, 2])
    y = rng.uniform(b[:, 1], b[:, 3])
    inside = shapely.contains_xy(g[pick], x, y)
    return x[inside][:n], y[inside][:n]


def run(data: Path, n: int, repeat: int, batch: int = 10_000) -> dict:
    import geopandas as gpd

    from geodata.locator import Locator
    from geodata.schema import layer_path, read_layer

    load = measure_load(data)
    loc = Locator.load(data)
    t = time.perf_counter()
    cells = read_layer(layer_path(data, "cells"), "cells")
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    cells.sindex  # noqa: B018 - build the sjoin index outside the timing
    sindex_s = time.perf_counter() - t
    lon, lat = random_points(cells, n)
    n = len(lon)
    best = {"locate_many": np.inf, "locate_arrays": np.inf, "sjoin": np.inf}
    placements = joined = None
    for _ in range(repeat):
        del placements, joined
        gc.collect()
        t = time.perf_counter()
        placements = loc.locate_many(lon, lat, "wgs84")
        best["locate_many"] = min(best["locate_many"], time.perf_counter() - t)
        placements_cells = [p.cell if p else None for p in placements]
        t = time.perf_counter()
        loc.locate_arrays(lon, lat, "wgs84")
        best["locate_arrays"] = min(best["locate_arrays"], time.perf_counter() - t)
        gc.collect()
        t = time.perf_counter()
        pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
        joined = gpd.sjoin(pts, cells[["code", "geometry"]], predicate="within", how="left")
        best["sjoin"] = min(best["sjoin"], time.perf_counter() - t)
    batched = {}
    for name, fn in (("locate_many", lambda a, b: loc.locate_many(a, b, "wgs84")),
                     ("sjoin", lambda a, b: gpd.sjoin(
                         gpd.GeoDataFrame(geometry=gpd.points_from_xy(a, b), crs=4326),
                         cells[["code", "geometry"]], predicate="within", how="left"))):
        gc.collect()
        spent = 0.0
        for i in range(0, n, batch):
            t = time.perf_counter()
            res = fn(lon[i:i + batch], lat[i:i + batch])
            spent += time.perf_counter() - t
            del res
        batched[name] = n / spent
    joined = joined[~joined.index.duplicated(keep="first")]
    theirs = joined["code"].astype(object).where(joined["code"].notna(), None).tolist()
    agree = float(np.mean([a == b for a, b in zip(placements_cells, theirs, strict=True)]))
    rate = {k: n / v for k, v in best.items()}
    return {
        "data": str(data), "cells": loc.n_cells, "points": n, "repeat": repeat,
        "points_per_s": {k: round(v) for k, v in rate.items()},
        "ratio_locate_many_vs_sjoin": round(rate["locate_many"] / rate["sjoin"], 2),
        "ratio_locate_arrays_vs_sjoin": round(rate["locate_arrays"] / rate["sjoin"], 2),
        "batch": batch, "batched_points_per_s": {k: round(v) for k, v in batched.items()},
        "batched_ratio": round(batched["locate_many"] / batched["sjoin"], 2),
        "same_cell_as_sjoin": round(agree, 6),
        "load_s": round(load["load_s"], 2), "load_peak_rss_mb": round(load["peak_rss_mb"]),
        "sjoin_read_cells_s": round(read_s, 2), "sjoin_build_sindex_s": round(sindex_s, 2),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    from geodata.cli import city_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None,
                    help="layer set (default: the whole-city cache, $GRID_CACHE/geodata/city)")
    ap.add_argument("--points", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=10_000, help="batch size of the batched run")
    args = ap.parse_args(argv)
    data = args.data or city_dir()
    if not (data / "districts.parquet").exists() and not any(data.glob("districts.*")):
        print(f"{data}: no layer set; build it with `grid geodata build --city`", file=sys.stderr)
        return 2
    r = run(data, args.points, args.repeat, args.batch)
    pps = r["points_per_s"]
    print(f"layer set {r['data']}: {r['cells']:,} cells, {r['points']:,} points, "
          f"best of {r['repeat']}")
    print(f"  locate_many    {pps['locate_many']:>12,} points/s  (Placement objects)")
    print(f"  locate_arrays  {pps['locate_arrays']:>12,} points/s  (index arrays)")
    print(f"  geopandas.sjoin{pps['sjoin']:>12,} points/s")
    print(f"  ratio locate_many/sjoin {r['ratio_locate_many_vs_sjoin']}x, "
          f"locate_arrays/sjoin {r['ratio_locate_arrays_vs_sjoin']}x, "
          f"same cell as sjoin for {r['same_cell_as_sjoin']:.4%} of points")
    b = r["batched_points_per_s"]
    print(f"  in batches of {r['batch']:,}: locate_many {b['locate_many']:,} points/s, "
          f"sjoin {b['sjoin']:,} points/s, ratio {r['batched_ratio']}x")
    print(f"  locator load {r['load_s']} s, peak RSS {r['load_peak_rss_mb']} MB "
          f"(fresh process, imports included); sjoin side: read cells {r['sjoin_read_cells_s']} s,"
          f" build sindex {r['sjoin_build_sindex_s']} s")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
