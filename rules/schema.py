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
MODIFIER_FIELDS = ("zones", "street", "district", "priority", "tier")
COUNTS = ("single", "gathered")


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

    @model_validator(mode="after")
    def _no_empty_lists(self) -> Match:
        for name, value in self:
            if isinstance(value, list) and len(value) == 0:
                raise ValueError(f"{name}: an empty list matches nothing; leave the field out")
        return self

    @cached_property
    def compiled(self) -> tuple[tuple[str, frozenset[Any]], ...]:
        """The given conditions as (field, allowed values), for fast matching."""
        return tuple((k, frozenset(v if isinstance(v, list) else [v]))
                     for k, v in self if v is not None)

    def fields(self) -> dict[str, list[Any]]:
        """The conditions given, as field -> allowed values."""
        return {k: list(v) if isinstance(v, list) else [v] for k, v in self if v is not None}

    @property
    def is_modifier(self) -> bool:
        """Whether the conditions name a zone, area, period, priority or tier."""
        return any(getattr(self, f) is not None for f in MODIFIER_FIELDS)

    @property
    def specificity(self) -> int:
        return sum(1 for _, v in self if v is not None)


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

    _codes = field_validator("handling", mode="before")(_code_keys)
