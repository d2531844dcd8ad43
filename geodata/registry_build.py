"""Generate a plausible responsible-unit registry for a layer set (``registry/*.csv``).

Like the street and community layers, real unit lists are not public: this writes a
synthetic registry, byte-identical from run to run, for every district that has streets:

* per street: its housing office (房管办事处), enforcement team (城管执法中队), police station
  (派出所) and street office / town government;
* per district: one unit of every other department (utilities with their usual names);
* property companies, each managing every n-th residential compound (zones of type
  ``residential_compound``, about three compounds per company);
* component owners: the id prefixes of docs/rules.md (``SS-`` water, ``WS-``/``YS-``
  drainage, ``DL-`` power, ``RQ-`` gas, ``TX-`` telecom, ``LD-`` lighting) and the object-code
  prefixes (district + owned subclass of ``grid/data/national.yaml``) → the district's
  utility.
"""

from __future__ import annotations

import csv
from pathlib import Path

import geopandas as gpd

from geodata.registry import COMPOUND_FIELDS, OWNER_FIELDS, UNIT_FIELDS
from geodata.schema import layer_path, read_layer

STREET_UNITS = {  # department -> (name suffix zh, name suffix en)
    "housing": ("房管办事处", "housing office"),
    "urban_enforcement": ("城管执法中队", "enforcement team"),
    "public_security": ("派出所", "police station"),
    "street_office": ("办事处", "street office"),
}
DISTRICT_NAMES_ZH = {  # department -> name after the district's name
    "water": "供水管理所", "drainage": "排水管理所", "power": "供电公司", "gas": "燃气管理所",
    "telecom": "通信管线联合办公室", "street_lighting": "路灯管理所",
}
PREFIXES = {"SS-": "water", "WS-": "drainage", "YS-": "drainage", "DL-": "power",
            "RQ-": "gas", "TX-": "telecom", "LD-": "street_lighting"}
COMPANY_WORDS = ("安居", "恒泰", "申江", "瑞丰", "永和", "东岸", "嘉实", "汇文", "景和", "沪东",
                 "明德", "同润", "康宁", "兴业", "长阳", "江湾")
PER_COMPANY = 3  # compounds per property company (about)


def build_registry(layers: str | Path, out: str | Path | None = None) -> dict[str, int]:
    """Write ``units.csv``, ``compounds.csv`` and ``owners.csv`` for the layer set in
    ``layers`` into ``out`` (default ``<layers>/registry``); returns row counts."""
    from grid.national import default_national
    from grid.taxonomy import default_taxonomy

    d = Path(layers)
    out = Path(out) if out is not None else d / "registry"
    districts, streets, zones = (_layer(d, n) for n in ("districts", "streets", "zones"))
    if streets is None or districts is None:
        raise ValueError(f"{d}: needs districts and streets layers")
    dnames = dict(zip(districts["code"], districts["name"], strict=True))
    depts = default_taxonomy().departments
    units: list[dict[str, str]] = []
    compounds: list[dict[str, str]] = []
    owners: list[dict[str, str]] = []
    streets = streets.sort_values("code")
    for dist in sorted(set(streets["district"])):
        dname = dnames.get(dist, dist)
        in_d = streets[streets["district"] == dist]
        for code, name in zip(in_d["code"], in_d["name"], strict=True):
            for dept, (zh, en) in STREET_UNITS.items():
                units.append(dict(unit_id=f"{code}.{dept}", name_zh=f"{name}{zh}",
                                  name_en=f"{name} {en}", department=dept, district=dist,
                                  street=code))
        for dept in depts.values():
            if dept.id in STREET_UNITS or dept.id == "property_management":
                continue
            zh = DISTRICT_NAMES_ZH.get(dept.id, dept.name_zh)
            units.append(dict(unit_id=f"{dist}.{dept.id}", name_zh=f"{dname}{zh}",
                              name_en=f"{dist} {dept.name_en}", department=dept.id,
                              district=dist, street=""))
        compounds += _compounds(dist, dname, zones, in_d, units)
        for prefix, dept in PREFIXES.items():
            owners.append(dict(district=dist, prefix=prefix, unit_id=f"{dist}.{dept}"))
        for sub, obj in default_national().objects.items():
            if obj.owner:
                owners.append(dict(district=dist, prefix=f"{dist}{sub}",
                                   unit_id=f"{dist}.{obj.owner}"))
    out.mkdir(parents=True, exist_ok=True)
    for name, cols, rows in (("units.csv", UNIT_FIELDS, units),
                             ("compounds.csv", COMPOUND_FIELDS, compounds),
                             ("owners.csv", OWNER_FIELDS, owners)):
        with (out / name).open("w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    return {"units": len(units), "compounds": len(compounds), "owners": len(owners)}


def _compounds(dist: str, dname: str, zones: gpd.GeoDataFrame | None, streets: gpd.GeoDataFrame,
               units: list[dict[str, str]]) -> list[dict[str, str]]:
    if zones is None:
        return []
    z = zones[(zones["district"] == dist) & (zones["zone_type"] == "residential_compound")]
    z = z.sort_values("id")
    if z.empty:
        return []
    pts = gpd.GeoDataFrame({"id": z["id"].to_numpy()},
                           geometry=z.geometry.representative_point().to_numpy(), crs=z.crs)
    joined = gpd.sjoin(pts, streets[["code", "name", "geometry"]], predicate="within",
                       how="left").drop_duplicates("id").set_index("id")
    n = max(1, -(-len(z) // PER_COMPANY))
    for k in range(n):
        word = COMPANY_WORDS[k % len(COMPANY_WORDS)] + ("" if k < len(COMPANY_WORDS)
                                                         else str(k // len(COMPANY_WORDS)))
        units.append(dict(unit_id=f"{dist}.property_management.{k + 1:02d}",
                          name_zh=f"上海{dname.removesuffix('区')}{word}物业管理有限公司",
                          name_en=f"Shanghai {dist} {word} Property Management Co.",
                          department="property_management", district=dist, street=""))
    rows = []
    for i, zid in enumerate(z["id"]):
        street = joined.at[zid, "code"] if zid in joined.index else None
        street = street if isinstance(street, str) else ""
        sname = joined.at[zid, "name"] if street else ""
        rows.append(dict(zone_id=zid, name_zh=f"{sname}住宅小区{i + 1:02d}", street=street,
                         unit_id=f"{dist}.property_management.{i % n + 1:02d}"))
    return rows


def _layer(d: Path, layer: str) -> gpd.GeoDataFrame | None:
    p = layer_path(d, layer)
    return read_layer(p, layer) if p is not None else None
