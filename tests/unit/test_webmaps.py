"""Per-level map files (geodata.webmaps): what ``grid geodata web`` writes for the shipped
two-district layers, and that a layer set without them is served the same from memory."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import orjson
import pytest

from geodata.locator import DATA_DIR
from geodata.schema import read_layer, write_layer
from geodata.webmaps import DISTRICT_CELLS_MAX, WebMaps, build_web, file_name


@pytest.fixture(scope="module")
def layers(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("web") / "layers"
    shutil.copytree(DATA_DIR, d, ignore=shutil.ignore_patterns("web"))
    build_web(d, log=lambda m: None)
    return d


def fc(gz: bytes) -> dict:
    return orjson.loads(gzip.decompress(gz))


def test_one_file_per_level_and_parent(layers):
    m = json.loads((layers / "web" / "manifest.json").read_text())
    streets = read_layer(layers / "streets.parquet", "streets")
    cells = read_layer(layers / "cells.parquet", "cells")
    assert m["files"][file_name("districts")] == 16
    assert {k for k in m["files"] if k.startswith("streets-")} == \
        {"streets-310110.geojson.gz", "streets-310118.geojson.gz"}
    assert sum(v for k, v in m["files"].items() if k.startswith("cells-")) == len(cells)
    assert sum(1 for k in m["files"] if k.startswith("cells-")) == len(streets) == 23
    maps = WebMaps(layers, {})
    assert maps.prebuilt and maps.stale_reason is None
    qingpu = fc(maps.get("streets", "310118"))["features"]
    assert len(qingpu) == 11 and all(f["properties"]["code"].startswith("310118")
                                     for f in qingpu)
    assert all(f["properties"]["name"].startswith("青浦区街镇") for f in qingpu)
    one = fc(maps.get("cells", "310110001"))["features"]
    assert one and {f["properties"]["code"][:9] for f in one} == {"310110001"}
    assert set(one[0]["properties"]) == {"code"}
    assert maps.get("cells", "310110999") is None  # no such street


def test_coordinates_are_rounded_per_level(layers):
    maps = WebMaps(layers, {})
    for layer, code, decimals in (("districts", None, 4), ("streets", "310110", 5),
                                  ("cells", "310118001", 5)):
        text = gzip.decompress(maps.get(layer, code)).decode()
        longest = max(len(x) for x in re.findall(r"\.(\d+)", text))
        assert longest <= decimals, (layer, longest)


def test_stale_files_are_not_used_and_memory_gives_the_same(layers, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(layers, d)
    streets = read_layer(d / "streets.parquet", "streets")
    write_layer(streets[streets["code"] != "310118011"], d, "streets")
    maps = WebMaps(d, {})
    assert not maps.prebuilt and "changed" in maps.stale_reason
    got = fc(maps.get("streets", "310118"))["features"]
    assert len(got) == 10 and "310118011" not in {f["properties"]["code"] for f in got}
    fresh = WebMaps(layers, {})
    built = WebMaps(None, {"districts": read_layer(layers / "districts.parquet", "districts")})
    assert not built.prebuilt
    assert fc(built.get("districts")) == fc(fresh.get("districts"))


def test_a_district_s_cells_in_one_piece_only_while_small(layers):
    maps = WebMaps(layers, {})
    yangpu = [s for s in read_layer(layers / "streets.parquet", "streets")["code"]
              if s.startswith("310110")]
    qingpu = [s for s in read_layer(layers / "streets.parquet", "streets")["code"]
              if s.startswith("310118")]
    cells = fc(maps.district_cells("310110", yangpu))["features"]
    assert len(cells) == 9312 <= DISTRICT_CELLS_MAX
    assert maps.district_cells("310118", qingpu) is None  # 76,712 cells: per street
    with pytest.raises(KeyError, match="no map layer"):
        maps.get("roads", "310110")
