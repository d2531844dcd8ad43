"""``grid bench paint``: the dashboard's first paint per level on a running worker, in
Debian's headless Chromium (Playwright), with the whole-city layers loaded (issue 22).

For each level — the city, a district (default: Pudong 310115, the largest: 36 streets,
~121,000 cells), a street (default: the layer set's street with the most cells, 24,995 in
the generated city layers) — a new browser context
(cold cache) signs in, opens the level's URL and reads from the page: the time from
navigation start until the map was first drawn (``window.gridMapDrawn``), until the first
summary arrived, the bytes of the map files over the wire, and the longest main-thread task
(PerformanceObserver ``longtask``); then the same page again in the same context (warm
cache: the map files are revalidated with their ETag). The baseline, side by side: what the
dashboard did before per-level files — the district's whole cell layer made from the layers
on the first request (``Locator.geojson``, 3 m simplification, orjson) — timed in this
process, beside reading the pre-built file of the same level.
"""

from __future__ import annotations

import gzip
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PROBE = """() => {
  const res = performance.getEntriesByType('resource');
  const maps = res.filter((r) => r.name.includes('/dashboard/api/map/')
                                 || r.name.includes('.geojson'));
  const summary = res.find((r) => r.name.includes('/summary.json'));
  return {drawn_ms: window.gridMapDrawn,
          summary_ms: summary ? summary.responseEnd : null,
          map_bytes: maps.reduce((a, r) => a + (r.transferSize || 0), 0),
          map_decoded: maps.reduce((a, r) => a + (r.decodedBodySize || 0), 0),
          longest_task_ms: Math.max(0, ...(window.__longtasks || [])),
          features: map.streets.length, cells: map.cells.length};
}"""
LONGTASKS = """window.__longtasks = [];
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) window.__longtasks.push(e.duration);
}).observe({type: 'longtask', buffered: true});"""


def _open(ctx: Any, url: str) -> dict[str, Any]:
    pg = ctx.new_page()
    pg.add_init_script(LONGTASKS)
    t = time.perf_counter()
    pg.goto(url, wait_until="domcontentloaded")
    pg.wait_for_function("window.gridMapDrawn !== undefined", timeout=120_000)
    if "street=" in url:
        pg.wait_for_function("map.cells.length > 0", timeout=120_000)
    out = pg.evaluate(PROBE)
    out["wall_s"] = round(time.perf_counter() - t, 3)
    pg.close()
    return out


def paint(url: str, token: str, district: str, street: str | None, runs: int,
          geodata: str | None, log=print) -> dict[str, Any]:
    """First paint per level (cold and warm), ``runs`` times each; medians and all runs."""
    from playwright.sync_api import sync_playwright

    levels = {"city": "/", "district": f"/?district={district}"}
    if street is None and geodata:
        street = _biggest_street(geodata, district)
    if street:
        levels["street"] = f"/?district={street[:6]}&street={street}"
    out: dict[str, Any] = {"url": url, "levels": {}, "street": street}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            for level, path in levels.items():
                cold, warm = [], []
                for _ in range(runs):
                    ctx = b.new_context(viewport={"width": 1600, "height": 1000}, bypass_csp=True)
                    pg = ctx.new_page()
                    pg.goto(f"{url}/login", wait_until="domcontentloaded")
                    pg.fill("#token", token)
                    pg.click("button[type=submit]")
                    pg.wait_for_url(f"{url}/")
                    pg.close()
                    cold.append(_open(ctx, url + path))
                    warm.append(_open(ctx, url + path))
                    ctx.close()
                med = {k: statistics.median(r[k] for r in cold) for k in
                       ("drawn_ms", "summary_ms", "wall_s", "longest_task_ms")}
                out["levels"][level] = {"path": path, "cold": cold, "warm": warm,
                                        "median_cold": med,
                                        "median_warm_drawn_ms": statistics.median(
                                            r["drawn_ms"] for r in warm)}
                log(f"{level:<9} {path:<40} first paint {med['drawn_ms']:.0f} ms cold, "
                    f"{out['levels'][level]['median_warm_drawn_ms']:.0f} ms warm; map "
                    f"{cold[0]['map_bytes'] / 1e3:.0f} kB over the wire; longest task "
                    f"{med['longest_task_ms']:.0f} ms; {cold[0]['features']} areas, "
                    f"{cold[0]['cells']} cells")
        finally:
            b.close()
    if geodata:
        out["baseline"] = baseline(geodata, district, street, log)
    return out


def _biggest_street(geodata: str, district: str) -> str:
    m = json.loads((Path(geodata) / "web" / "manifest.json").read_text())
    cells = {k[6:-11]: v for k, v in m["files"].items() if k.startswith("cells-")}
    return max(cells, key=lambda s: (cells[s], s))


def baseline(geodata: str, district: str, street: str | None, log=print) -> dict[str, Any]:
    """The district's whole cell layer as the dashboard made it before (``Locator.geojson``
    on the cell file) beside reading this level's pre-built files."""
    import orjson

    from geodata.locator import Locator

    t = time.perf_counter()
    loc = Locator.load(geodata)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    old = orjson.dumps(loc.geojson("cells", district, simplify_m=3.0, precision=5))
    old_s = time.perf_counter() - t
    web = Path(geodata) / "web"
    t = time.perf_counter()
    new = (web / f"streets-{district}.geojson.gz").read_bytes()
    new_s = time.perf_counter() - t
    res = {"locator_load_s": round(load_s, 2),
           "old_district_cells_s": round(old_s, 2), "old_bytes": len(old),
           "old_gzip_bytes": len(gzip.compress(old, 6)),
           "new_district_streets_s": round(new_s, 4), "new_bytes": len(new)}
    if street:
        t = time.perf_counter()
        cells = (web / f"cells-{street}.geojson.gz").read_bytes()
        res |= {"new_street_cells_s": round(time.perf_counter() - t, 4),
                "new_street_cells_bytes": len(cells)}
    log(f"baseline: district {district} cells built from the layers {old_s:.1f} s, "
        f"{len(old) / 1e6:.1f} MB ({res['old_gzip_bytes'] / 1e6:.1f} MB gzip) vs the pre-built "
        f"streets file {new_s * 1e3:.1f} ms, {len(new) / 1e3:.0f} kB")
    return res
