"""The component/event taxonomy (10 categories, 120 types + 12 catch-alls), loaded from data
files, each type with its national class (GB/T 30428.2, :mod:`grid.national`).

The base lives in ``grid/data/taxonomy.yaml`` and ``grid/data/departments.yaml``.
Extension files (new domains, seed 003 §4) use the same top-level keys
(``departments``, ``categories``, ``types``) and are loaded on top; they may add, never
replace. Every problem raises :class:`TaxonomyError` naming the file and the entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator

from grid.models import Handling, Kind
from grid.national import CROSSWALK_FILE, National, NationalClass, default_national

DATA_DIR = Path(__file__).parent / "data"
BASE_FILES = (DATA_DIR / "departments.yaml", DATA_DIR / "taxonomy.yaml")
EXTENSIONS_DIR = DATA_DIR / "extensions"

DURATION_RE = re.compile(r"^\d+(m|h|d)$")
STAGES = ("file", "dispatch", "dispose", "verify")
REQUIRED_STAGES = ("dispatch", "dispose")
TOP_KEYS = ("departments", "categories", "types")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Calendar = Literal["24h", "working"]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


class TaxonomyError(ValueError):
    """A taxonomy file is missing, malformed or inconsistent."""


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Department(_Entry):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
    name_zh: Text
    name_en: Text


class Category(_Entry):
    code: Annotated[str, StringConstraints(pattern=r"^\d{2}$")]
    name_zh: Text
    name_en: Text
    kind: Kind


class IncidentType(_Entry):
    """One of the component/event types (部件/事件小类)."""

    code: Annotated[str, StringConstraints(pattern=r"^\d{4}$")]
    name_zh: Text
    name_en: Text
    kind: Kind
    category: Annotated[str, StringConstraints(pattern=r"^\d{2}$")]
    department: str
    handling: Handling
    deadlines: dict[str, str]
    calendar: Calendar
    closing_standard: Text
    keywords_zh: list[Keyword]
    keywords_en: list[Keyword]
    # GB/T 30428.2: the base types get them from grid/data/national_crosswalk.csv,
    # extension types give them here
    national_class: Annotated[str, StringConstraints(pattern=r"^\d{2}$")] | None = None
    national_subclasses: list[Annotated[str, StringConstraints(pattern=r"^\d{4}$")]] = []

    @field_validator("deadlines")
    @classmethod
    def _deadlines(cls, v: dict[str, str]) -> dict[str, str]:
        for stage, dur in v.items():
            if stage not in STAGES:
                raise ValueError(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")
            if not DURATION_RE.match(dur):
                raise ValueError(f"{stage}: {dur!r} is not a duration like '30m', '2h', '3d'")
        missing = [s for s in REQUIRED_STAGES if s not in v]
        if missing:
            raise ValueError(f"missing stage(s) {', '.join(missing)}")
        return v

    @field_validator("keywords_en")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [k.lower() for k in v]


class Taxonomy:
    """Categories, types and departments, validated together."""

    def __init__(
        self,
        categories: dict[str, Category],
        types: dict[str, IncidentType],
        departments: dict[str, Department],
        sources: tuple[Path, ...] = (),
        national: National | None = None,
    ) -> None:
        self.categories = categories
        self.types = types
        self.departments = departments
        self.sources = sources
        self.national = national or default_national()

    def type(self, code: str) -> IncidentType:
        """The type with this code; ``KeyError`` naming the code when unknown."""
        try:
            return self.types[code]
        except KeyError:
            raise KeyError(f"unknown type code {code!r}") from None

    def category_of(self, code: str) -> Category:
        return self.categories[self.type(code).category]

    def national_class(self, code: str) -> NationalClass:
        """The GB/T 30428.2 class of a type (every loaded type has one)."""
        t = self.type(code)
        return self.national.classes[(t.kind, t.national_class or "")]

    def object_owner(self, object_code: str | None) -> str | None:
        """The owner department named by a component object code's subclass, if any."""
        return self.national.owner_of(object_code)

    def types_in(self, category: str) -> list[IncidentType]:
        return [t for t in self.types.values() if t.category == category]

    def to_json(self) -> dict[str, Any]:
        """``{"categories": [...], "types": [...], "departments": [...], "national_classes":
        [...]}`` in code order."""
        return {
            "categories": [c.model_dump() for c in self.categories.values()],
            "types": [t.model_dump() for t in self.types.values()],
            "departments": [d.model_dump() for d in self.departments.values()],
            "national_classes": [{"kind": c.kind, "code": c.code, "name_zh": c.name_zh,
                                  "name_en": c.name_en}
                                 for c in self.national.classes.values()],
        }


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TaxonomyError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        data = yaml.load(text, Loader=_LOADER)  # a safe loader (C if available)
    except yaml.YAMLError as e:
        raise TaxonomyError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise TaxonomyError(f"{path}: expected a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(map(str, data)) - set(TOP_KEYS))
    if unknown:
        raise TaxonomyError(
            f"{path}: unknown top-level key(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(TOP_KEYS)})"
        )
    return data


def _label(key: str, index: int, raw: Any) -> str:
    ident = raw.get("id" if key == "departments" else "code") if isinstance(raw, dict) else None
    return f"{key}[{index}]" + (f" ({ident!r})" if ident is not None else "")


def _explain(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "entry"
        msg = e["msg"]
        if e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "string_type" and isinstance(e.get("input"), int):
            msg += " (quote codes in YAML: '0101', not 0101)"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def _entries(path: Path, data: dict[str, Any], key: str, model: type[_Entry]) -> list[Any]:
    raw_list = data.get(key) or []
    if not isinstance(raw_list, list):
        raise TaxonomyError(f"{path}: {key} must be a list")
    out = []
    for i, raw in enumerate(raw_list):
        where = f"{path}: {_label(key, i, raw)}"
        if not isinstance(raw, dict):
            raise TaxonomyError(f"{where}: expected a mapping, got {type(raw).__name__}")
        try:
            out.append(model.model_validate(raw))
        except ValidationError as e:
            raise TaxonomyError(f"{where}: {_explain(e)}") from None
    return out


def load_taxonomy(extra: Iterable[Path | str] = ()) -> Taxonomy:
    """Load the base taxonomy plus extension files (in order) and validate the whole."""
    files = [*BASE_FILES, *(Path(p) for p in extra)]
    departments: dict[str, Department] = {}
    categories: dict[str, Category] = {}
    types: dict[str, IncidentType] = {}
    origin: dict[str, Path] = {}
    parsed = [(path, _read(path)) for path in files]
    national = default_national()

    for path, data in parsed:
        for d in _entries(path, data, "departments", Department):
            if d.id in departments:
                raise TaxonomyError(f"{path}: department {d.id!r} is already defined")
            departments[d.id] = d
        for c in _entries(path, data, "categories", Category):
            if c.code in categories:
                raise TaxonomyError(
                    f"{path}: category {c.code!r} is already defined in {origin['c' + c.code]}"
                )
            categories[c.code] = c
            origin["c" + c.code] = path

    for path, data in parsed:
        for t in _entries(path, data, "types", IncidentType):
            where = f"{path}: type {t.code!r} ({t.name_zh})"
            if t.code in types:
                raise TaxonomyError(f"{where}: code is already defined in {origin[t.code]}")
            _check_type(t, where, categories, departments)
            types[t.code] = _with_national(t, national, where)
            origin[t.code] = path

    return Taxonomy(
        categories=dict(sorted(categories.items())),
        types=dict(sorted(types.items())),
        departments=departments,
        sources=tuple(files),
        national=national,
    )



def _check_type(t: IncidentType, where: str, categories: dict[str, Category],
                departments: dict[str, Department]) -> None:
    """A type's category exists, prefixes its code and has its kind; its department exists;
    it has keywords. Raises :class:`TaxonomyError` naming ``where``."""
    cat = categories.get(t.category)
    if cat is None:
        raise TaxonomyError(f"{where}: unknown category {t.category!r}")
    if not t.code.startswith(t.category):
        raise TaxonomyError(
            f"{where}: code must start with its category code {t.category!r}"
        )
    if t.kind != cat.kind:
        raise TaxonomyError(
            f"{where}: kind {t.kind!r} differs from category {cat.code}'s {cat.kind!r}"
        )
    if t.department not in departments:
        raise TaxonomyError(f"{where}: unknown department {t.department!r}")
    if not (t.keywords_zh or t.keywords_en):
        raise TaxonomyError(f"{where}: give at least one keyword (keywords_zh/_en)")

def _with_national(t: IncidentType, national: National, where: str) -> IncidentType:
    """``t`` with its national class and subclasses (from the crosswalk unless it gives
    them), checked: the class exists for the type's kind and each subclass is in it."""
    if t.national_class is None:
        cw = national.crosswalk.get(t.code)
        if cw is None:
            raise TaxonomyError(f"{where}: no national class: add the type to "
                                f"{CROSSWALK_FILE.name} or give national_class")
        t = t.model_copy(update={"national_class": cw.national_class,
                                 "national_subclasses": list(cw.national_subclasses)})
    if national.cls(t.kind, t.national_class or "") is None:
        raise TaxonomyError(f"{where}: unknown national {t.kind} class {t.national_class!r}")
    bad = [s for s in t.national_subclasses if not s.startswith(t.national_class or "")]
    if bad or not t.national_subclasses:
        raise TaxonomyError(f"{where}: national_subclasses must be 4-digit codes in class "
                            f"{t.national_class!r}, got {t.national_subclasses}")
    return t


@cache
def default_taxonomy() -> Taxonomy:
    """The base taxonomy (cached)."""
    return load_taxonomy()


def extension_files() -> list[Path]:
    """Extension files shipped with the package (``grid/data/extensions/*.yaml``)."""
    return sorted(EXTENSIONS_DIR.glob("*.yaml"))


__all__ = [
    "Category",
    "Department",
    "IncidentType",
    "Taxonomy",
    "TaxonomyError",
    "default_taxonomy",
    "extension_files",
    "load_taxonomy",
]
