"""Static checks and the coverage proof behind ``grid rules check``.

* references: type codes, categories, zone types, departments, street/district codes;
* reachability: a rule that matches no type, or whose every result is always decided by a
  stronger rule, is unreachable;
* conflicts: two rules of equal strength (same number of conditions and precedence) that can
  match the same report and set a field to different values;
* coverage: every type routes to a known department with four ordered stage deadlines in every
  street of the loaded geodata, with no zone and in each zone type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations, pairwise
from typing import Any

from rules.engine import Facts, route
from rules.ruleset import RuleSet
from rules.schema import STAGES, DeadlineRule, Match, RaiseRule, RoutingRule

TYPE_FIELDS = ("type_code", "category", "kind", "handling")
SET_FIELDS = ("source", "priority", "tier")
CHECK_TIME = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday: deadlines exist in any calendar


@dataclass
class CheckResult:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    types_ok: int = 0
    types_total: int = 0
    streets_ok: int = 0
    streets_total: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def summary(self) -> str:
        return (f"{self.types_ok}/{self.types_total} types routable in "
                f"{self.streets_ok}/{self.streets_total} streets")


class _Logic:
    """Set semantics of :class:`Match` over the taxonomy (for overlap and implication)."""

    def __init__(self, ruleset: RuleSet, taxonomy: Any) -> None:
        self.rs = ruleset
        self.tax = taxonomy
        self._types: dict[int, frozenset[str]] = {}

    def types(self, m: Match) -> frozenset[str]:
        key = id(m)
        if key not in self._types:
            out = set()
            for code, t in self.tax.types.items():
                vals = {"type_code": code, "category": t.category, "kind": t.kind,
                        "handling": self.rs.handling.get(code, t.handling)}
                if all(getattr(m, f) is None or vals[f] in getattr(m, f) for f in TYPE_FIELDS):
                    out.add(code)
            self._types[key] = frozenset(out)
        return self._types[key]

    def overlap(self, a: Match, b: Match) -> frozenset[str]:
        """Types for which some report could match both (empty = never both)."""
        common = self.types(a) & self.types(b)
        if not common:
            return common
        for f in SET_FIELDS:
            x, y = getattr(a, f), getattr(b, f)
            if x is not None and y is not None and not set(x) & set(y):
                return frozenset()
        if not _places_overlap(a, b):
            return frozenset()
        pa, pb = a.component_prefix, b.component_prefix
        if pa and pb and not any(_prefix_rel(p, q) or _prefix_rel(q, p) for p in pa for q in pb):
            return frozenset()
        return common

    def implies(self, a: Match, b: Match) -> bool:
        """Whenever ``a`` matches, ``b`` matches too."""
        if not self.types(a) <= self.types(b):
            return False
        for f in (*SET_FIELDS, "zones", "street"):
            y = getattr(b, f)
            if y is not None and not (getattr(a, f) and set(getattr(a, f)) <= set(y)):
                return False
        if b.district is not None:
            if a.district is not None:
                if not set(a.district) <= set(b.district):
                    return False
            elif not (a.street and all(s[:6] in b.district for s in a.street)):
                return False
        if b.component_prefix is not None:
            pa = a.component_prefix
            if not (pa and all(any(_prefix_rel(p, q) for q in b.component_prefix) for p in pa)):
                return False
        return True


def _prefix_rel(p: str, q: str) -> bool:
    """Every id starting with ``p`` starts with ``q``."""
    return p.upper().startswith(q.upper())


def _places_overlap(a: Match, b: Match) -> bool:
    streets = _meet(a.street, b.street)
    districts = _meet(a.district, b.district)
    if (streets is not None and not streets) or (districts is not None and not districts):
        return False
    if streets is not None and districts is not None:
        return any(s[:6] in districts for s in streets)
    return True


def _meet(x: list[str] | None, y: list[str] | None) -> set[str] | None:
    if x is None:
        return None if y is None else set(y)
    return set(x) if y is None else set(x) & set(y)


def _n(k: int) -> str:
    return f"{k} condition" + ("" if k == 1 else "s")


def _example(types: frozenset[str]) -> str:
    s = sorted(types)
    return ", ".join(s[:3]) + (f" (+{len(s) - 3} more)" if len(s) > 3 else "")


def check_ruleset(ruleset: RuleSet, taxonomy: Any, streets: list[str] | None = None,
                  zone_types: tuple[str, ...] | None = None,
                  districts: list[str] | None = None) -> CheckResult:
    """Run every check; ``streets`` are the street codes to prove coverage in, ``districts``
    the district codes of the geodata (default: those of the streets)."""
    res = CheckResult()
    if zone_types is None:
        from geodata.schema import ZONE_TYPES

        zone_types = ZONE_TYPES
    _references(ruleset, taxonomy, zone_types, streets, districts, res)
    logic = _Logic(ruleset, taxonomy)
    _routing_logic(ruleset, logic, res)
    _deadline_logic(ruleset, logic, res)
    for r in ruleset.raises:
        if not logic.types(r.match):
            res.errors.append(f"{_at(ruleset, r)}: matches no type (unreachable)")
    _coverage(ruleset, taxonomy, streets or [], zone_types, res)
    return res


def _at(rs: RuleSet, r: RoutingRule | RaiseRule | DeadlineRule) -> str:
    return f"{rs.origin.get(r.id, '?')}: {r.id}"


def _references(rs: RuleSet, tax: Any, zones: tuple[str, ...], streets: list[str] | None,
                district_list: list[str] | None, res: CheckResult) -> None:
    err = res.errors.append
    depts = set(tax.departments)
    known_streets = set(streets or [])
    districts = set(district_list or []) | {s[:6] for s in known_streets}
    for r in (*rs.routing, *rs.raises, *rs.deadlines):
        at, m = _at(rs, r), r.match
        for code in m.type_code or []:
            if code not in tax.types:
                err(f"{at}: match.type_code: unknown type code {code!r}")
        for cat in m.category or []:
            if cat not in tax.categories:
                err(f"{at}: match.category: unknown category {cat!r} "
                    f"(known: {', '.join(tax.categories)})")
        for z in m.zones or []:
            if z not in zones:
                err(f"{at}: match.zones: unknown zone type {z!r} (known: {', '.join(zones)})")
        for s in m.street or []:
            if len(s) != 9 or not s.isdigit():
                err(f"{at}: match.street: {s!r} is not a 9-digit street code")
            elif known_streets and s not in known_streets:
                res.warnings.append(f"{at}: street {s} is not in the loaded geodata; "
                                    "the rule does not apply there")
        for d in m.district or []:
            if len(d) != 6 or not d.isdigit():
                err(f"{at}: match.district: {d!r} is not a 6-digit district code")
            elif districts and d not in districts:
                res.warnings.append(f"{at}: district {d} is not in the loaded geodata; "
                                    "the rule does not apply there")
        if m.street and m.district and not _places_overlap(Match(street=m.street),
                                                           Match(district=m.district)):
            err(f"{at}: match: none of the streets lies in the districts given (unreachable)")
        if isinstance(r, RoutingRule):
            dep = r.set.department
            if dep is not None and dep != "@type" and dep not in depts:
                err(f"{at}: set.department: unknown department {dep!r}")
    for code, _cls in rs.handling.items():
        if code not in tax.types:
            err(f"handling: unknown type code {code!r}")
    for code in rs.duplicates.by_type:
        if code not in tax.types:
            err(f"duplicates.by_type: unknown type code {code!r}")
    for name, dep in (("triage.department", rs.triage.department),
                      ("escalation.arbitration_department",
                       rs.escalation.arbitration_department)):
        if dep not in depts:
            err(f"{name}: unknown department {dep!r}")


def _routing_logic(rs: RuleSet, logic: _Logic, res: CheckResult) -> None:
    rules = list(rs.routing)
    for i, r in enumerate(rules):
        at = _at(rs, r)
        if not logic.types(r.match):
            res.errors.append(f"{at}: matches no type (unreachable)")
            continue
        stronger = rules[:i]
        shadowed = {}
        for f in r.set.given():
            by = next((s for s in stronger if f in s.set.given()
                       and logic.implies(r.match, s.match)), None)
            if by is None:
                break
            shadowed[f] = by.id
        else:
            what = ", ".join(f"{f} by {s}" for f, s in shadowed.items())
            res.errors.append(f"{at}: unreachable: every result is always decided by a "
                              f"stronger rule ({what})")
    for a, b in combinations(rules, 2):
        if a.sort_key[:2] != b.sort_key[:2]:
            continue
        both = logic.overlap(a.match, b.match)
        if not both:
            continue
        ga, gb = a.set.given(), b.set.given()
        diff = [f for f in ga if f in gb and ga[f] != gb[f]]
        if diff:
            res.errors.append(
                f"conflict: {_at(rs, a)} and {_at(rs, b)} have equal precedence "
                f"({_n(a.match.specificity)}, precedence {a.precedence}), can both "
                f"match (e.g. type {_example(both)}) and set "
                + "; ".join(f"{f} {ga[f]!r} vs {gb[f]!r}" for f in diff)
                + ": add a condition or a higher precedence to one of them")


def _deadline_logic(rs: RuleSet, logic: _Logic, res: CheckResult) -> None:
    rules = list(rs.deadlines)
    for i, r in enumerate(rules):
        at = _at(rs, r)
        if not logic.types(r.match):
            res.errors.append(f"{at}: matches no type (unreachable)")
            continue
        by = next((s for s in rules[:i] if logic.implies(r.match, s.match)), None)
        if by is not None:
            res.errors.append(f"{at}: unreachable: {by.id} is stronger and always matches "
                              "when this rule does")
    for a, b in combinations(rules, 2):
        if a.sort_key[:2] != b.sort_key[:2]:
            continue
        both = logic.overlap(a.match, b.match)
        bundle = ("from_type", "calendar", "stages", "scale")
        if both and any(getattr(a, f) != getattr(b, f) for f in bundle):
            res.errors.append(
                f"conflict: {_at(rs, a)} and {_at(rs, b)} have equal precedence "
                f"({_n(a.match.specificity)}, precedence {a.precedence}), can both "
                f"match (e.g. type {_example(both)}) and give different deadlines: add a "
                "condition or a higher precedence to one of them")


def _coverage(rs: RuleSet, tax: Any, streets: list[str], zones: tuple[str, ...],
              res: CheckResult) -> None:
    res.types_total, res.streets_total = len(tax.types), len(streets)
    if not streets:
        res.errors.append("coverage: no streets to check (is the geodata loaded?)")
        return
    depts = set(tax.departments)
    bad_types: dict[str, str] = {}
    bad_streets: set[str] = set()
    variants = [frozenset(), *(frozenset({z}) for z in zones)]
    for code, t in tax.types.items():
        handling = rs.handling.get(code, t.handling)
        for street in streets:
            for zs in variants:
                f = Facts(type_code=code, category=t.category, kind=t.kind, handling=handling,
                          zones=zs, street=street, district=street[:6])
                problem = _route_problem(route(f, CHECK_TIME, rs, tax), depts)
                if problem:
                    where = f"street {street}" + (f" in zone {next(iter(zs))}" if zs else "")
                    bad_types.setdefault(code, f"type {code} ({t.name_en}) in {where}: "
                                               f"{problem}")
                    bad_streets.add(street)
    res.types_ok = len(tax.types) - len(bad_types)
    res.streets_ok = len(streets) - len(bad_streets)
    shown = list(bad_types.values())
    res.errors.extend(f"coverage: {m}" for m in shown[:20])
    if len(shown) > 20:
        res.errors.append(f"coverage: ... and {len(shown) - 20} more types")


def _route_problem(d: dict[str, Any], depts: set[str]) -> str | None:
    dep = d["department"]
    if not dep:
        return ("no department: no matching routing rule sets one" if d["winner"] is None
                else f"no department (set empty by {d['winner']})")
    if dep not in depts:
        return f"unknown department {dep!r} (from {d['winner']})"
    missing = [s for s in STAGES if s not in d["deadlines"]]
    if missing:
        return f"no deadline for stage(s) {', '.join(missing)}"
    times = [d["deadlines"][s] for s in STAGES]
    if any(x > y for x, y in pairwise(times)):
        order = ", ".join(f"{s} {d['deadlines'][s]:%Y-%m-%d %H:%M}" for s in STAGES)
        return f"stage deadlines out of order ({order})"
    return None
