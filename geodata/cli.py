"""``grid geodata build|web|check|info`` and ``grid locate``."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from geodata.locator import Locator

DATA_HELP = "layer-set directory (default: $GRID_GEODATA, else the shipped Yangpu demo set)"


SHIPPED_DISTRICTS = ("310110", "310118")  # Yangpu (urban), Qingpu (suburban, rural zones)


def cache_dir() -> Path:
    """Where generated layer sets go: $GRID_CACHE or ~/.cache/grid, then geodata/."""
    return Path(os.environ.get("GRID_CACHE") or Path.home() / ".cache" / "grid") / "geodata"


def city_dir() -> Path:
    """The whole-city layer set built by ``grid geodata build --city``."""
    return cache_dir() / "city"


@click.group()
def geodata() -> None:
    """Spatial layers: build (generate), web (dashboard maps), check (validate), info."""


@geodata.command()
@click.option("--district", "districts", multiple=True, metavar="CODE",
              help="generate this district's layers (repeatable), e.g. 310110")
@click.option("--city", is_flag=True, help="generate all 16 districts (~900k cells)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="output directory (default: the package data for the demo set, "
                   "$GRID_CACHE/geodata/city for --city, $GRID_CACHE/geodata/<codes> else)")
def build(districts: tuple[str, ...], city: bool, out: Path | None) -> None:
    """Regenerate layers reproducibly (fixed seed) from the real district boundaries.

    Without options: the shipped demo set (16 districts + layers of urban Yangpu 310110 and
    suburban Qingpu 310118, with its towns, villages, rural and urban-fringe zones).
    """
    from geodata import build as gen
    from geodata.locator import DATA_DIR

    if city and districts:
        raise click.UsageError("give --city or --district, not both")
    if city:
        todo, out = None, out or city_dir()
    elif districts:
        todo, out = list(districts), out or cache_dir() / "-".join(districts)
    else:
        todo, out = list(SHIPPED_DISTRICTS), out or DATA_DIR
    t = time.perf_counter()
    try:
        counts = gen.build(out, todo, log=lambda m: click.echo(m, err=True))
    except (RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    counts.update(_registry(out))
    if out != DATA_DIR:  # the shipped set stays small: the dashboard builds its maps in memory
        counts.update({f"web {k}": v for k, v in _web(out).items()})
    click.echo(f"wrote {out} in {time.perf_counter() - t:.1f} s: "
               + ", ".join(f"{k} {v}" for k, v in counts.items()))


def _registry(directory: Path) -> dict[str, int]:
    from geodata.registry_build import build_registry

    return {f"registry {k}": v for k, v in build_registry(directory).items()}


def _web(directory: Path) -> dict[str, int]:
    from geodata.webmaps import build_web

    return build_web(directory, log=lambda m: click.echo(m, err=True))


@geodata.command()
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))
def web(directory: str | None) -> None:
    """(Re)write the dashboard's per-level map files of a layer set (DIRECTORY/web/: the
    districts, each district's streets, each street's communities and cells, simplified and
    gzipped; default: $GRID_GEODATA). ``grid geodata build`` does this too."""
    d = Path(directory or os.environ.get("GRID_GEODATA") or "")
    if not directory and not os.environ.get("GRID_GEODATA"):
        raise click.UsageError("give the layer-set DIRECTORY (or set GRID_GEODATA)")
    t = time.perf_counter()
    counts = _web(d)
    click.echo(f"wrote {d / 'web'} in {time.perf_counter() - t:.1f} s: "
               + ", ".join(f"{k} {v} file(s)" for k, v in counts.items()))


@geodata.command()
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))
def registry(directory: str | None) -> None:
    """(Re)generate the responsible-unit registry of a layer set (DIRECTORY/registry/*.csv;
    default: the shipped set). ``grid geodata build`` does this too."""
    from geodata.locator import DATA_DIR

    d = Path(directory) if directory else DATA_DIR
    try:
        counts = _registry(d)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {d / 'registry'}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@geodata.command()
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--tolerance-m2", default=1.0, show_default=True,
              help="gaps/overlaps up to this area (m², per parent or pair) are float noise")
def check(directory: str | None, tolerance_m2: float) -> None:
    """Validate a layer set: codes, hierarchy, tiling, geometry. Exit 1 on errors."""
    from geodata.check import check as run
    from geodata.locator import DATA_DIR

    d = directory or os.environ.get("GRID_GEODATA") or DATA_DIR
    problems = run(d, tolerance_m2)
    for p in problems:
        click.echo(str(p))
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    click.echo(f"{d}: {errors} error(s), {warnings} warning(s) "
               f"(tolerance {tolerance_m2:g} m²)", err=bool(errors))
    if errors:
        sys.exit(1)


@geodata.command()
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def info(directory: str | None, fmt: str) -> None:
    """Counts per layer and the bounding box (WGS-84)."""
    from geodata.locator import Locator

    t = time.perf_counter()
    loc = Locator.load(directory or os.environ.get("GRID_GEODATA") or None)
    data = loc.info() | {"load_s": round(time.perf_counter() - t, 2)}
    if fmt == "json":
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    click.echo(f"layer set: {data['directory']}  (loaded in {data['load_s']} s)")
    for k, v in data["counts"].items():
        click.echo(f"  {k:<13} {v:>9,}")
    b = data["bbox"]
    click.echo(f"  bbox (WGS-84) lon {b[0]}..{b[2]}, lat {b[1]}..{b[3]}")


OUT_COLUMNS = ("district", "district_name", "street", "community", "cell", "patrol_area",
               "zones", "zone_ids", "crs", "snapped_m", "error")


@click.command()
@click.argument("lon", type=float, required=False)
@click.argument("lat", type=float, required=False)
@click.option("--crs", type=click.Choice(["wgs84", "gcj02", "bd09"]), default="wgs84",
              show_default=True, help="CRS of the input (per-row 'crs' column wins in bulk)")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--data", type=click.Path(exists=True, file_okay=False), envvar="GRID_GEODATA",
              help=DATA_HELP)
@click.option("--snap-m", default=30.0, show_default=True, help="snap tolerance in metres")
@click.option("--input", "input_", type=click.Path(exists=True, dir_okay=False),
              help="bulk: CSV with columns lon, lat[, crs]")
@click.option("--output", type=click.Path(dir_okay=False), help="bulk: CSV to write (- = stdout)")
def locate(lon: float | None, lat: float | None, crs: str, fmt: str, data: str | None,
           snap_m: float, input_: str | None, output: str | None) -> None:
    """Place a point (LON LAT) or a CSV of points in district/street/community/cell."""
    from geodata.coords import CoordinateError
    from geodata.locator import Locator, OutsideCoverage

    if input_ is None and (lon is None or lat is None):
        raise click.UsageError("give LON LAT, or --input points.csv")
    loc = Locator.load(data, snap_m=snap_m)
    if input_ is not None:
        _bulk(loc, input_, output or "-", crs)
        return
    try:
        p = loc.locate(lon, lat, crs)
    except (CoordinateError, OutsideCoverage) as exc:
        if fmt == "json":
            click.echo(json.dumps({"error": str(exc), "crs": crs}, ensure_ascii=False))
        raise click.ClickException(str(exc)) from exc
    d = p.model_dump()
    if fmt == "json":
        click.echo(json.dumps(d, ensure_ascii=False))
        return
    from grid.names import Names

    names = Names.of_locator(loc)  # places only
    for k in ("district", "district_name", "street", "community", "cell", "patrol_area",
              "zones", "zone_ids", "crs", "lon", "lat", "snapped_m"):
        name = names.place_name(d[k]) if k in ("street", "community") else None
        click.echo(f"{k:<14}{d[k]}" + (f"  {name}" if name else ""))


def _bulk(loc: Locator, input_: str, output: str, crs: str) -> None:
    import numpy as np
    import pandas as pd

    df = pd.read_csv(input_, dtype=str, keep_default_na=False)
    missing = {"lon", "lat"} - set(df.columns)
    if missing:
        raise click.ClickException(f"{input_}: missing column(s) {', '.join(sorted(missing))}")
    lon = pd.to_numeric(df["lon"], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(df["lat"], errors="coerce").to_numpy(float)
    crs_col = (df["crs"].str.strip().str.lower().replace("", crs) if "crs" in df.columns
               else pd.Series([crs] * len(df)))
    err = np.full(len(df), "", dtype=object)
    err[~(np.isfinite(lon) & np.isfinite(lat))] = "not a finite number"
    err[(err == "") & ((np.abs(lon) > 180) | (np.abs(lat) > 90))] = "out of range"
    err[(err == "") & ~crs_col.isin(["wgs84", "gcj02", "bd09"]).to_numpy()] = "unknown crs"
    ok = np.flatnonzero(err == "")
    res = loc.locate_many(lon[ok], lat[ok], crs_col.to_numpy(object)[ok]) if len(ok) else []
    cols = {c: [None] * len(df) for c in OUT_COLUMNS}
    for i, p in zip(ok, res, strict=True):
        if p is None:
            err[i] = "outside coverage"
            continue
        d = p.model_dump()
        for c in OUT_COLUMNS[:-1]:
            v = d[c]
            cols[c][i] = ";".join(v) if isinstance(v, list) else v
    cols["error"] = list(err)
    cols["crs"] = [c if c is not None else k for c, k in zip(cols["crs"], crs_col, strict=True)]
    out = df.assign(**{c: v for c, v in cols.items()})
    if output == "-":
        out.to_csv(sys.stdout, index=False)
    else:
        out.to_csv(output, index=False)
        n_bad = int((err != "").sum())
        click.echo(f"wrote {output}: {len(df)} rows, {len(df) - n_bad} located, {n_bad} not",
                   err=True)
