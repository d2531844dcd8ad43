"""The responsible-unit registry (责任单位): which unit of a department acts at a place. Pure.

A layer set may hold a ``registry/`` directory of three CSV files (UTF-8, header row):

``units.csv``  ``unit_id, name_zh, name_en, department, district, street``
    Every unit: a street's housing office, enforcement team, police station or office
    (``street`` given), a district's utility or bureau (``street`` empty), a property
    company (``street`` empty; it is found through its compounds).
``compounds.csv``  ``zone_id, name_zh, street, unit_id``
    Residential compounds — the ``residential_compound`` zones of the layer set, by zone id —
    and the property company managing each.
``owners.csv``  ``district, prefix, unit_id``
    Component owners: a component id prefix (``SS-``) or object-code prefix (``3101100101``:
    district + subclass) in a district, and the unit owning such components (before the
    meter). The longest matching prefix wins.

:meth:`Registry.unit_for` resolves a department at a placement to a unit, in this order:
the component's owner (if it belongs to that department), the compound's property company
(``property_management`` only), the street's unit, the district's unit; else ``None``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from grid.models import Placement

UNIT_FIELDS = ("unit_id", "name_zh", "name_en", "department", "district", "street")
COMPOUND_FIELDS = ("zone_id", "name_zh", "street", "unit_id")
OWNER_FIELDS = ("district", "prefix", "unit_id")
FILES = {"units.csv": UNIT_FIELDS, "compounds.csv": COMPOUND_FIELDS,
         "owners.csv": OWNER_FIELDS}


class RegistryError(ValueError):
    """A registry file is malformed or refers to something unknown (names file and row)."""


@dataclass(frozen=True, slots=True)
class Unit:
    unit_id: str
    name_zh: str
    name_en: str
    department: str
    district: str
    street: str | None = None


@dataclass(frozen=True, slots=True)
class Compound:
    zone_id: str
    name_zh: str
    street: str
    unit_id: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """The unit found for a department at a place, and how (for the explanation)."""

    unit: Unit
    via: str  # e.g. "compound 310110-Z0003", "street 310110001", "owner SS-"


@dataclass
class Registry:
    units: dict[str, Unit] = field(default_factory=dict)
    compounds: dict[str, Compound] = field(default_factory=dict)
    owners: list[tuple[str, str, str]] = field(default_factory=list)  # district, prefix, unit
    directory: Path | None = None

    def __post_init__(self) -> None:
        self._street = {(u.department, u.street): u for u in self.units.values() if u.street}
        self._district = {(u.department, u.district): u for u in self.units.values()
                          if not u.street and u.department != "property_management"}
        self.owners.sort(key=lambda o: -len(o[1]))
        # district -> (prefix, unit id), the longest prefix first
        self._owners: dict[str, list[tuple[str, str]]] = {}
        for district, prefix, unit_id in self.owners:
            self._owners.setdefault(district, []).append((prefix, unit_id))

    @classmethod
    def load(cls, directory: str | Path | None) -> Registry:
        """The registry in ``directory`` (an empty one when it does not exist)."""
        d = Path(directory) if directory is not None else None
        if d is None or not d.is_dir():
            return cls()
        rows = {name: _read(d / name, cols) for name, cols in FILES.items()}
        units: dict[str, Unit] = {}
        for where, r in rows["units.csv"]:
            if r["unit_id"] in units:
                raise RegistryError(f"{where}: unit {r['unit_id']!r} is listed twice")
            units[r["unit_id"]] = Unit(r["unit_id"], r["name_zh"], r["name_en"],
                                       r["department"], r["district"], r["street"] or None)
        compounds = {}
        for where, r in rows["compounds.csv"]:
            _known(units, r["unit_id"], where)
            compounds[r["zone_id"]] = Compound(r["zone_id"], r["name_zh"], r["street"],
                                               r["unit_id"])
        owners = []
        for where, r in rows["owners.csv"]:
            _known(units, r["unit_id"], where)
            owners.append((r["district"], r["prefix"].upper(), r["unit_id"]))
        return cls(units, compounds, owners, d)

    def __len__(self) -> int:
        return len(self.units)

    def unit(self, unit_id: str | None) -> Unit | None:
        return self.units.get(unit_id or "")

    def compound_of(self, placement: Placement) -> Compound | None:
        """The compound a placement lies in (its first ``residential_compound`` zone listed)."""
        return next((self.compounds[z] for z in placement.zone_ids if z in self.compounds),
                    None)

    def owner_of(self, district: str | None, *codes: str | None) -> tuple[Unit, str] | None:
        """The unit owning a component named by any of ``codes`` (object code, component id)
        in ``district``, and the matching prefix."""
        given = [c.upper() for c in codes if c]
        if not given or district is None:
            return None
        for prefix, unit_id in self._owners.get(district, ()):
            if any(c.startswith(prefix) for c in given):
                return self.units[unit_id], prefix
        return None

    def unit_for(self, department: str | None, placement: Placement,
                 component_id: str | None = None, component_code: str | None = None,
                 ) -> Resolution | None:
        """The unit of ``department`` that acts at ``placement`` (see module docstring)."""
        if not department:
            return None
        owned = self.owner_of(placement.district, component_code, component_id)
        if owned is not None and owned[0].department == department:
            return Resolution(owned[0], f"owner {owned[1]}")
        if department == "property_management":
            c = self.compound_of(placement)
            return Resolution(self.units[c.unit_id], f"compound {c.zone_id} {c.name_zh}") \
                if c else None
        u = self._street.get((department, placement.street))
        if u is not None:
            return Resolution(u, f"street {placement.street}")
        u = self._district.get((department, placement.district))
        return Resolution(u, f"district {placement.district}") if u is not None else None

    def units_of(self, department: str | None = None) -> list[Unit]:
        return [u for u in self.units.values() if department in (None, u.department)]

    def compounds_of(self, unit_id: str) -> list[str]:
        """Zone ids of the compounds a property company manages."""
        return sorted(c.zone_id for c in self.compounds.values() if c.unit_id == unit_id)


def _read(path: Path, cols: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in cols if c not in (reader.fieldnames or [])]
        if missing:
            raise RegistryError(f"{path}: missing column(s) {', '.join(missing)}")
        return [(f"{path}:{i + 2}", {k: (v or "").strip() for k, v in row.items() if k})
                for i, row in enumerate(reader)]


def _known(units: dict[str, Unit], unit_id: str, where: str) -> None:
    if unit_id not in units:
        raise RegistryError(f"{where}: unknown unit {unit_id!r} (not in units.csv)")


__all__ = ["Compound", "Registry", "RegistryError", "Resolution", "Unit"]
