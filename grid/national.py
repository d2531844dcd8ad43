"""The national classification (GB/T 30428.2) and component object codes. Pure.

``grid/data/national.yaml`` holds the 6 component and 6 event classes and the component
subclasses whose owner follows from an object code; ``grid/data/national_crosswalk.csv``
maps each base type onto its class and subclass(es). :func:`grid.taxonomy.load_taxonomy`
attaches both to every type and refuses a type without a class.

An object code (部件标识码) is 16 digits: district (6) + class (2) + subclass (2) + serial (6).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from grid.models import Kind

DATA_DIR = Path(__file__).parent / "data"
CLASSES_FILE = DATA_DIR / "national.yaml"
CROSSWALK_FILE = DATA_DIR / "national_crosswalk.csv"
OBJECT_CODE_RE = re.compile(r"^(\d{6})(\d{2})(\d{2})(\d{6})$")
KIND_ZH = {"component": "部件", "event": "事件"}


@dataclass(frozen=True, slots=True)
class NationalClass:
    kind: Kind
    code: str  # 2 digits, unique within the kind
    name_zh: str
    name_en: str

    @property
    def label_zh(self) -> str:
        """``部件·公用设施``: the class names repeat across kinds (市容环境)."""
        return f"{KIND_ZH[self.kind]}·{self.name_zh}"

    @property
    def label_en(self) -> str:
        return f"{self.kind.capitalize()}s · {self.name_en}"


@dataclass(frozen=True, slots=True)
class ObjectClass:
    """A component subclass an object code can name, and the department owning it."""

    subclass: str  # 4 digits: class + subclass
    name_zh: str
    name_en: str
    owner: str | None


@dataclass(frozen=True, slots=True)
class ObjectCode:
    district: str
    subclass: str  # 4 digits
    serial: str

    @property
    def national_class(self) -> str:
        return self.subclass[:2]


@dataclass(frozen=True, slots=True)
class Crosswalk:
    """One type's place in the national classification."""

    type_code: str
    national_class: str
    national_subclasses: tuple[str, ...]
    subclass_name_zh: str


class National:
    """Classes, object subclasses and the crosswalk of the base types."""

    def __init__(self, classes: dict[tuple[str, str], NationalClass],
                 objects: dict[str, ObjectClass], crosswalk: dict[str, Crosswalk]) -> None:
        self.classes = classes  # (kind, code) -> class
        self.objects = objects
        self.crosswalk = crosswalk

    def cls(self, kind: str, code: str) -> NationalClass | None:
        return self.classes.get((kind, code))

    def owner_of(self, object_code: str | None) -> str | None:
        """The owner department of a component object code's subclass (``None``: unknown)."""
        oc = parse_object_code(object_code)
        obj = self.objects.get(oc.subclass) if oc else None
        return obj.owner if obj else None


def parse_object_code(code: str | None) -> ObjectCode | None:
    """The parts of a 16-digit object code; ``None`` for anything else."""
    m = OBJECT_CODE_RE.match(code or "")
    return ObjectCode(m[1], m[2] + m[3], m[4]) if m else None


def _read_classes(path: Path) -> tuple[dict[tuple[str, str], NationalClass],
                                       dict[str, ObjectClass]]:
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    classes = {}
    for kind in ("component", "event"):
        for c in data["classes"][kind]:
            classes[(kind, str(c["code"]))] = NationalClass(kind, str(c["code"]),
                                                            c["name_zh"], c["name_en"])
    objects = {}
    for o in data.get("objects") or []:
        sub = str(o["subclass"])
        if ("component", sub[:2]) not in classes:
            raise ValueError(f"{path}: object subclass {sub!r}: unknown component class")
        objects[sub] = ObjectClass(sub, o["name_zh"], o["name_en"], o.get("owner"))
    return classes, objects


def _read_crosswalk(path: Path) -> dict[str, Crosswalk]:
    out = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            subs = tuple(s for s in row["national_subclasses"].split("|") if s)
            out[row["type_code"]] = Crosswalk(row["type_code"], row["national_class"], subs,
                                              row["subclass_name_zh"])
    return out


@cache
def default_national() -> National:
    """The shipped classes and crosswalk (cached)."""
    classes, objects = _read_classes(CLASSES_FILE)
    return National(classes, objects, _read_crosswalk(CROSSWALK_FILE))


__all__ = ["Crosswalk", "National", "NationalClass", "ObjectClass", "ObjectCode",
           "default_national", "parse_object_code"]
