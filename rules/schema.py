"""Schema of the rule files (pydantic): what a YAML rule set may say.

A rule set is a directory of ``*.yaml`` files; each file holds any of the top-level keys
below. Lists (``routing``, ``raise``, ``deadlines``) are concatenated over the files,
mappings (``handling``) merged, and the single sections (``self_closing``, ``triage``,
``escalation``, ``duplicates``) may appear in one file only.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from grid.models import Handling, Kind, Priority, Source, Tier

STAGES = ("file", "dispatch", "dispose", "verify")
PRIORITIES: tuple[Priority, ...] = ("normal", "high", "urgent")
TYPE_REF = "@type"  # "the value the taxonomy gives for the type"
OWNER_REF = "@owner"  # "the owner department the component's object code names"
DURATION = re.compile(r"^\+?\d+(m|h|d)$")
# Conditions about *where, when and how urgently* (zone, area, period, raised priority, tier):
# a deadline rule using any of them is a modifier, which may only tighten the type's limits
# unless it says why it relaxes them (``relaxes:``). Rules using none define the limits.
MODIFIER_FIELDS = ("zones", "street", "district", "priority", "tier", "time", "weekday")
COUNTS = ("single", "gathered")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIME_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
STAGE_ID = r"^[a-z][a-z_]{1,15}$"


def _listify(v: Any) -> Any:
    """Let YAML say ``zones: hospital`` as well as ``zones: [hospital]``."""
    return v if v is None or isinstance(v, list) else [v]


def _str_list(v: Any) -> Any:
    v = _listify(v)
    return None if v is None else [str(x) if isinstance(x, int) else x for x in v]


def _code_list(v: Any) -> Any:
    v = _listify(v)
    for x in v or []:
        if isinstance(x, int):
            raise ValueError(f"type code {x} must be a quoted string like '0101' "
                             "(YAML reads unquoted 0101 as the octal number 65)")
    return v


def _code_keys(v: Any) -> Any:
    if isinstance(v, dict):
        for k in v:
            _code_list(k)
    return v


def _windows(v: Any) -> Any:
    v = _listify(v)
    for w in v or []:
        m = TIME_WINDOW.match(str(w).strip()) if isinstance(w, str) else None
        if m is None or (m.group(3) == "24" and m.group(4) != "00"):
            raise ValueError(f"{w!r} is not a time window like '22:00-06:00' (Shanghai time, "
                             "HH:MM-HH:MM; it may wrap past midnight, end 24:00 allowed)")
        if m.group(1, 2) == m.group(3, 4):
            raise ValueError(f"{w!r}: start and end are the same time")
    return None if v is None else [w.strip() for w in v]


def window_minutes(w: str) -> tuple[int, int]:
    """'22:00-06:00' -> (1320, 360): start and end minute of the day (end may be <= start:
    the window wraps past midnight)."""
    a, b = w.split("-")
    return int(a[:2]) * 60 + int(a[3:]), int(b[:2]) * 60 + int(b[3:])


def in_window(minute: int, w: str) -> bool:
    """Whether ``minute`` of the day lies in window ``w`` ([start, end), wrapping)."""
    a, b = window_minutes(w)
    return a <= minute < b if a < b else (minute >= a or minute < b)


Strs = Annotated[list[str] | None, BeforeValidator(_str_list)]
Codes = Annotated[list[str] | None, BeforeValidator(_code_list)]


def _duration(v: Any) -> Any:
    if not isinstance(v, str) or not DURATION.match(v.strip()):
        raise ValueError(f"{v!r} is not a duration like '30m', '2h', '3d' (or '+1d': after "
                         "the previous stage's deadline)")
    return v.strip()


def _span(v: Any) -> Any:
    v = _duration(v)
    if v.startswith("+"):
        raise ValueError(f"{v!r}: a '+' limit is allowed in deadline stages only")
    return v


Duration = Annotated[str, BeforeValidator(_duration)]
Span = Annotated[str, BeforeValidator(_span)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(Strict):
    """Conditions of a rule: all given fields must hold; a list means any of its values.

    ``zones`` holds if the placement lies in any of the zone types listed;
    ``component_prefix`` if the report's component id starts with any of the prefixes.
    ``priority`` and ``tier`` (the routed ones) may be used in deadline rules only.
    """

    type_code: Codes = None
    category: Strs = None
    kind: Annotated[list[Kind] | None, BeforeValidator(_listify)] = None
    handling: Annotated[list[Handling] | None, BeforeValidator(_listify)] = None
    zones: Strs = None
    street: Strs = None
    district: Strs = None
    component_prefix: Strs = None
    source: Annotated[list[Source] | None, BeforeValidator(_listify)] = None
    priority: Annotated[list[Priority] | None, BeforeValidator(_listify)] = None
    tier: Annotated[list[Tier] | None, BeforeValidator(_listify)] = None
    # how many: "single" (one vendor) or "gathered" (集聚) from the report's description
    # (see grid.classifier.count_hint); reports saying neither match no count condition
    count: Annotated[list[Literal["single", "gathered"]] | None,
                     BeforeValidator(_listify)] = None
    safety: bool | None = None  # the type is in the rule set's `safety` list
    # the owner department named by the component's object code (grid/data/national.yaml)
    owner: Strs = None
    # which side of the utility meter (seed 004: 表前 the utility's, 表后 the owner's)
    meter: Annotated[list[Literal["before", "after"]] | None, BeforeValidator(_listify)] = None
    # time of day in Shanghai time: any of the windows "HH:MM-HH:MM" (may wrap past
    # midnight, e.g. night duty "22:00-06:00"), at the decision time
    time: Annotated[list[str] | None, BeforeValidator(_windows)] = None
    # day of the week in Shanghai time (mon ... sun) at the decision time
    weekday: Annotated[list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None,
                       BeforeValidator(_listify)] = None

    @model_validator(mode="after")
    def _no_empty_lists(self) -> Match:
        for name, value in self._given():
            if isinstance(value, list) and len(value) == 0:
                raise ValueError(f"{name}: an empty list matches nothing; leave the field out")
        return self

    def _given(self) -> list[tuple[str, Any]]:
        """(field, value) of the conditions given. Not ``iter(self)``: a model's iteration
        also yields the cached properties below once they are computed."""
        return [(k, v) for k in type(self).model_fields if (v := getattr(self, k)) is not None]

    @cached_property
    def compiled(self) -> tuple[tuple[str, frozenset[Any]], ...]:
        """The given conditions as (field, allowed values), for fast matching."""
        return tuple((k, frozenset(v if isinstance(v, list) else [v]))
                     for k, v in self._given())

    def fields(self) -> dict[str, list[Any]]:
        """The conditions given, as field -> allowed values."""
        return {k: list(v) if isinstance(v, list) else [v] for k, v in self._given()}

    @cached_property
    def is_modifier(self) -> bool:
        """Whether the conditions name a zone, area, period (time of day, weekday),
        priority or tier."""
        return any(getattr(self, f) is not None for f in MODIFIER_FIELDS)

    @property
    def specificity(self) -> int:
        return len(self._given())


class Rule(Strict):
    """Common part: an id, a description, conditions and an explicit precedence."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", max_length=80)]
    description: str = ""
    match: Match = Field(default_factory=Match)
    precedence: int = 0  # tie-breaker between rules matching the same number of conditions

    @property
    def sort_key(self) -> tuple[int, int, str]:
        """Ascending order = descending strength: more conditions, higher precedence, id."""
        return (-self.match.specificity, -self.precedence, self.id)


class RouteSet(Strict):
    """What a routing rule decides; each field is decided by the strongest rule setting it."""

    # a department id, "@type" (the taxonomy's department) or "@owner" (the object code's)
    department: str | None = None
    tier: Tier | None = None
    priority: Priority | None = None
    alert: bool | None = None
    closing_standard: str | None = None  # text or "@type"
    # assisting departments (协办), each with its own work order; [] for none
    assisting: Annotated[list[str] | None, BeforeValidator(_listify)] = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self if v is not None}


class RoutingRule(Rule):
    set: RouteSet

    @model_validator(mode="after")
    def _sets_something(self) -> RoutingRule:
        if not self.set.given():
            raise ValueError("set: a routing rule must set at least one of "
                             "department, tier, priority, alert, closing_standard, assisting")
        if self.set.department == OWNER_REF and not self.match.owner:
            raise ValueError("set.department '@owner' needs a match.owner condition")
        if self.match.priority or self.match.tier:
            raise ValueError("match: priority/tier are results of routing; "
                             "use them in deadline rules only")
        return self


class Window(Strict):
    start: AwareDatetime = Field(alias="from")
    end: AwareDatetime = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError("'to' must be after 'from'")
        return self

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end


class RaiseRule(Rule):
    """Key areas and event periods: every matching rule lifts the priority to at least
    ``priority`` (never lowers it). ``during`` limits the rule to time windows."""

    priority: Priority
    during: list[Window] | None = None

    @model_validator(mode="after")
    def _no_routed_fields(self) -> RaiseRule:
        if self.match.priority or self.match.tier:
            raise ValueError("match: priority/tier cannot be conditions of a raise rule")
        return self


class DeadlineRule(Rule):
    """Stage limits in one calendar, counted from the receipt of the report; a limit written
    ``+1d`` runs from the previous stage's deadline instead.

    ``from_type: true`` starts from the taxonomy entry of the type (its calendar and limits);
    ``stages`` then only fills the stages the type does not give and ``calendar`` overrides
    the type's. Without ``from_type``, ``calendar`` and all four stages are required.
    ``scale`` multiplies every limit (e.g. 2 for differentiated supervision in rural zones).

    A rule whose conditions name a zone, street, district, priority or tier is a *modifier*:
    every matching modifier applies, and each may only tighten the limits (stage by stage the
    earlier due time wins). A modifier that must lengthen them says why in ``relaxes``; the
    strongest matching relaxing modifier then replaces the type's limits."""

    from_type: bool = False
    calendar: Literal["24h", "working"] | None = None
    stages: dict[str, Duration] | None = None
    scale: float = Field(1.0, gt=0)
    relaxes: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10)] | None = None

    @model_validator(mode="after")
    def _complete(self) -> DeadlineRule:
        stages = self.stages or {}
        unknown = sorted(set(stages) - set(STAGES))
        if unknown:
            raise ValueError(f"stages: unknown stage(s) {unknown}; stages are {list(STAGES)}")
        if stages.get("file", "").startswith("+"):
            raise ValueError("stages.file: the first stage runs from receipt; no '+'")
        if self.relaxes is not None and not self.match.is_modifier:
            raise ValueError("relaxes: only a zone, area or period rule (a condition on zones, "
                             "street, district, priority or tier) can relax the type's limits")
        if self.from_type:
            return self
        missing = [s for s in STAGES if s not in stages]
        if self.calendar is None:
            raise ValueError("give calendar (or from_type: true)")
        if missing:
            raise ValueError(f"stages: missing {missing}; without from_type every rule sets "
                             f"all of {list(STAGES)}")
        return self


class HandlingRule(Rule):
    """Puts reports matching ``match`` under another handling class than the type's, e.g. a
    single vendor reported as 0901 (集聚无序设摊) is an ordinary street-order case."""

    handling: Handling

    @model_validator(mode="after")
    def _type_facts_only(self) -> HandlingRule:
        if self.match.priority or self.match.tier or self.match.handling or self.match.safety \
                is not None:
            raise ValueError("match: a handling rule may not depend on handling, safety, "
                             "priority or tier (they follow from it)")
        return self


class SelfClosing(Strict):
    """A self-disposable report with evidence closes on the spot (tier self, no order)."""

    id: str = "self-closing"
    handling: Annotated[list[Handling], BeforeValidator(_listify)] = ["self_disposable"]
    sources: Annotated[list[Source], BeforeValidator(_listify)] = ["supervisor"]
    min_evidence_photos: int = Field(1, ge=1)
    closing_standard: str = "found and fixed on the spot; evidence photo attached"


class Triage(Strict):
    """Decision for an unclassified report: manual triage by the command center."""

    id: str = "triage"
    department: str = "command_center"
    tier: Tier = "district"
    priority: Priority = "normal"
    calendar: Literal["24h", "working"] = "24h"
    file: Span = "1h"


class Escalation(Strict):
    """Warnings, supervision orders and arbitration (see :mod:`rules.escalation`)."""

    id: str = "escalation"
    warn_at: float = Field(0.8, gt=0, lt=1)  # share of a stage's limit
    ladder: Annotated[list[Tier], Field(min_length=1)] = ["street", "district", "city"]
    reissue_after: float | None = Field(1.0, gt=0)  # shares of the limit after the deadline
    arbitration_after_returns: int = Field(2, ge=1)
    arbitration_department: str = "command_center"

    @field_validator("ladder")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("ladder levels must be distinct")
        return v


class DuplicateLimits(Strict):
    distance_m: float = Field(50, gt=0)
    window: Span = "24h"


class Duplicates(DuplicateLimits):
    """A report of the same type near an open case is merged into it."""

    id: str = "duplicates"
    by_type: dict[str, DuplicateLimits] = Field(default_factory=dict)

    _codes = field_validator("by_type", mode="before")(_code_keys)


# --- emergencies handed to 110/119/120 (联勤联动) -----------------------------------------

def _regexes(v: Any) -> Any:
    v = _listify(v)
    for p in v or []:
        try:
            re.compile(p)
        except (re.error, TypeError) as e:
            raise ValueError(f"{p!r} is not a regular expression: {e}") from None
    return v


Regexes = Annotated[list[str] | None, BeforeValidator(_regexes)]


class Service(Strict):
    """An emergency service a report is handed to (110 police, 119 fire, 120 ambulance)."""

    number: Annotated[str, StringConstraints(pattern=r"^\d{3,5}$")]
    name_zh: str
    name_en: str


class ExtraServices(Strict):
    """Services added when a cue is in the description (e.g. someone injured: 120)."""

    services: Annotated[list[str], BeforeValidator(_listify), Field(min_length=1)]
    cues: Annotated[list[str], BeforeValidator(_regexes), Field(min_length=1)]


class TransferRule(Strict):
    """Reports of ``type_code`` (any), or whose description has one of ``cues`` (regular
    expressions, searched after NFKC and lower-casing), are emergencies: transferred at once
    to ``services``; ``add`` names more services for more cues."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", max_length=80)]
    description: str = ""
    type_code: Codes = None
    cues: Regexes = None
    services: Annotated[list[str], BeforeValidator(_listify), Field(min_length=1)]
    add: list[ExtraServices] = Field(default_factory=list)

    @model_validator(mode="after")
    def _matches_something(self) -> TransferRule:
        if not self.type_code and not self.cues:
            raise ValueError("give type_code or cues (or both)")
        return self


class Emergency(Strict):
    """Emergencies are not grid cases (seed 003: the grid covers the non-emergency scope;
    联勤联动 with 110/119/120): a matching report is transferred, not dispatched."""

    id: str = "emergency"
    services: dict[str, Service]
    transfers: list[TransferRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_services(self) -> Emergency:
        for t in self.transfers:
            for sid in [*t.services, *(x for a in t.add for x in a.services)]:
                if sid not in self.services:
                    raise ValueError(f"transfers ({t.id}): unknown service {sid!r} "
                                     f"(services: {', '.join(self.services)})")
        ids = [t.id for t in self.transfers]
        if len(set(ids)) != len(ids):
            raise ValueError("transfers: ids must be unique")
        return self


# --- staged legal process (依法查处) --------------------------------------------------------

class LegalStage(Strict):
    """One stage of a legal process with its limit (from the previous stage's closing, in the
    process calendar) and the condition that closes it."""

    id: Annotated[str, Field(pattern=STAGE_ID)]
    name_zh: str
    name_en: str
    limit: Span
    closes_when: Annotated[str, StringConstraints(strip_whitespace=True, min_length=4)]


class LegalProcessRule(Rule):
    """The stages of the legal process for matching legal-process types: ``stages`` in order
    (立案调查 → 告知 → 决定 → 执行); ``court`` (移送法院) may replace the last stage."""

    calendar: Literal["24h", "working"] = "working"
    stages: Annotated[list[LegalStage], Field(min_length=2)]
    court: LegalStage | None = None

    @model_validator(mode="after")
    def _distinct(self) -> LegalProcessRule:
        ids = [s.id for s in self.stages] + ([self.court.id] if self.court else [])
        if len(set(ids)) != len(ids):
            raise ValueError("stages: stage ids must be distinct (court included)")
        if set(ids) & set(STAGES):
            raise ValueError(f"stages: {sorted(set(ids) & set(STAGES))} is a case stage; "
                             "give the legal stages their own ids")
        if self.match.is_modifier:
            raise ValueError("match: a legal process depends on the type, not on zones, "
                             "periods, priority or tier")
        return self


# --- a human check on guessed types --------------------------------------------------------

class Confirm(Strict):
    """A type guessed by the classifier below the confidence set here (per category, per
    handling class, else ``default``) waits in triage with the ``top`` suggestions; types of
    the ``always`` handling classes always do."""

    id: str = "confirm.guessed-type"
    default: float = Field(0.5, ge=0, le=1)
    categories: dict[str, float] = Field(default_factory=dict)
    handling: dict[Handling, float] = Field(default_factory=dict)
    always: Annotated[list[Handling], BeforeValidator(_listify)] = ["key_supervision"]
    top: int = Field(3, ge=1, le=10)

    @field_validator("categories", mode="before")
    @classmethod
    def _category_keys(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    raise ValueError(f"category {k!r} must be a quoted string like '09'")
                if not isinstance(x, int | float) or not 0 <= x <= 1:
                    raise ValueError(f"{k}: {x!r} is not a confidence between 0 and 1")
        return v

    def threshold(self, category: str | None, handling: str | None) -> float | None:
        """The confidence a guess needs (``None``: always checked by a person): the
        handling class's, else the category's, else the default; the highest applies."""
        if handling in self.always:
            return None
        given: list[float | None] = [
            self.default, self.categories.get(category or ""),
            self.handling.get(handling)]  # type: ignore[call-overload]
        return max(x for x in given if x is not None)


class RuleFile(Strict):
    """One YAML file of a rule set."""

    routing: list[RoutingRule] = Field(default_factory=list)
    raise_: list[RaiseRule] = Field(default_factory=list, alias="raise")
    deadlines: list[DeadlineRule] = Field(default_factory=list)
    handling: dict[str, Handling] = Field(default_factory=dict)  # type code -> class
    handling_rules: list[HandlingRule] = Field(default_factory=list)
    safety: Codes = None  # type codes whose limits protect life and property
    self_closing: SelfClosing | None = None
    triage: Triage | None = None
    escalation: Escalation | None = None
    duplicates: Duplicates | None = None
    emergency: Emergency | None = None
    legal_process: list[LegalProcessRule] = Field(default_factory=list)
    confirm: Confirm | None = None

    _codes = field_validator("handling", mode="before")(_code_keys)
