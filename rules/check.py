"""Static checks and the coverage proof behind ``grid rules check``.

* references: type codes, categories, zone types, departments, street/district codes;
* reachability: a rule that matches no type, or whose every result is always decided by a
  stronger rule, is unreachable;
* conflicts: two rules of equal strength (same number of conditions and precedence) that can
  match the same report and set a field to different values;
* coverage: every type routes to a known department with four ordered stage deadlines in every
  street of the loaded geodata, with no zone and in each zone type;
* tighten-only: for every type x zone (and pair of zones) x key area x event period x time of
  week (working hours, an evening, a weekend) the effective limits are computed; a zone, area
  or period rule (a modifier) that would loosen a key-supervision, safety or legal-process
  limit without a ``relaxes:`` reason is an error naming the rule pair;
* the effective limits per type and zone, as a table a command center can read
  (:func:`effective_table`), with the staged legal processes and the emergency transfers;
* time of day: each time window a rule names is checked at its start (Shanghai time);
* legal processes: every legal-process type has its stages, which fit the type's limit;
* emergencies: transfer rules name known types; the events calendar: a warning in words
  when no event period lies ahead of today.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import combinations, pairwise
from typing import Any

from grid.deadlines import SHANGHAI, stage_calendar
from rules.engine import DeadlinePlan, Facts, route, with_handling_rules
from rules.ruleset import RuleSet
from rules.schema import (
    STAGES,
    DeadlineRule,
    Match,
    RoutingRule,
    Rule,
    window_minutes,
)

TYPE_FIELDS = ("type_code", "category", "kind", "handling", "safety")
SET_FIELDS = ("source", "priority", "tier", "count", "owner", "meter", "weekday")
CHECK_TIME = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday: deadlines exist in any calendar
# times of the week the tighten-only check runs at: a Monday morning, a Friday evening (the
# working calendar waits for Monday), a Saturday noon
WEEK_TIMES = (datetime(2025, 3, 3, 10, 0, tzinfo=SHANGHAI),
              datetime(2025, 3, 7, 18, 0, tzinfo=SHANGHAI),
              datetime(2025, 3, 8, 12, 0, tzinfo=SHANGHAI))
PROTECTED = ("key_supervision", "legal_process")


@dataclass
class CheckResult:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    types_ok: int = 0
    types_total: int = 0
    streets_ok: int = 0
    streets_total: int = 0
    notes: list[str] = field(default_factory=list)  # relaxing rules and their reasons
    table: list[dict[str, str]] = field(default_factory=list)  # effective limits
    combinations: int = 0  # contexts the tighten-only check looked at

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
                vals = {"type_code": {code}, "category": {t.category}, "kind": {t.kind},
                        "handling": self.handlings(code), "safety": {code in self.rs.safety}}
                given = m.fields()
                if all(f not in given or vals[f] & set(given[f]) for f in TYPE_FIELDS):
                    out.add(code)
            self._types[key] = frozenset(out)
        return self._types[key]

    def handlings(self, code: str) -> set[str]:
        """The handling classes a report of ``code`` can have (the type's, or a handling
        rule's when its conditions hold)."""
        t = self.tax.types[code]
        out = {self.rs.handling.get(code, t.handling)}
        vals = {"type_code": code, "category": t.category, "kind": t.kind}
        for r in self.rs.handling_rules:
            if all(getattr(r.match, f) is None or vals[f] in getattr(r.match, f) for f in vals):
                out.add(r.handling)
        return out

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
        if not self.types(a) <= self.types(b) or not self._handling_implies(a, b):
            return False
        for f in (*SET_FIELDS, "zones", "street", "time"):
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

    def _handling_implies(self, a: Match, b: Match) -> bool:
        """Every handling class ``a`` can match is one ``b`` names (a type may have several
        classes through handling rules)."""
        if b.handling is None:
            return True
        for code in self.types(a):
            hs = self.handlings(code) & set(a.handling or self.handlings(code))
            if not hs <= set(b.handling):
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
                  districts: list[str] | None = None, now: datetime | None = None,
                  ) -> CheckResult:
    """Run every check; ``streets`` are the street codes to prove coverage in, ``districts``
    the district codes of the geodata (default: those of the streets); ``now`` (default:
    the current time) tells which event periods lie ahead."""
    res = CheckResult()
    _events_ahead(ruleset, now or datetime.now(UTC), res)
    _legal_processes(ruleset, taxonomy, res)
    _emergencies(ruleset, taxonomy, res)
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
    for h in ruleset.handling_rules:
        if not logic.types(h.match):
            res.errors.append(f"{_at(ruleset, h)}: matches no type (unreachable)")
    _coverage(ruleset, taxonomy, streets or [], zone_types, res)
    if not res.errors:  # the limits of a rule set with broken references mean little
        _tighten_only(ruleset, taxonomy, streets or [], zone_types, res)
    return res


def _at(rs: RuleSet, r: Rule) -> str:
    return f"{rs.origin.get(r.id, '?')}: {r.id}"


def _events_ahead(rs: RuleSet, now: datetime, res: CheckResult) -> None:
    """A warning in words when no event period (a raise rule with ``during``) ends after
    ``now``: the major-events table (重大活动) needs the coming events."""
    windows = [(w, r) for r in rs.raises for w in r.during or []]
    ahead = [(w, r) for w, r in windows if w.end > now]
    today = now.astimezone(SHANGHAI).date()
    if not ahead:
        last = max((w.end for w, _ in windows), default=None)
        since = (f"; the last one ended on {last.astimezone(SHANGHAI):%Y-%m-%d}"
                 if last else "")
        res.warnings.append(
            f"events: no major event (重大活动) is configured after today ({today}){since}. "
            "Event periods raise the priority in their district while they last; add the "
            "coming year's events to the raise rules (see rules/default/events.yaml)")
        return
    nxt = min(ahead, key=lambda x: x[0].start)
    res.notes.append(f"events: {len(ahead)} event period(s) ahead of {today}; next "
                     f"{nxt[1].id} from {nxt[0].start.astimezone(SHANGHAI):%Y-%m-%d}")


def _legal_processes(rs: RuleSet, tax: Any, res: CheckResult) -> None:
    """Every legal-process type has stages; the regular stages fit the type's disposal
    limit (in working days when the calendars are both working)."""
    from rules.engine import legal_plan
    from rules.timing import duration

    logic = _Logic(rs, tax)
    for r in rs.legal_processes:
        if not logic.types(r.match):
            res.errors.append(f"{_at(rs, r)}: matches no type (unreachable)")
    for code, t in tax.types.items():
        handling = rs.handling.get(code, t.handling)
        if handling != "legal_process":
            continue
        f = Facts(type_code=code, category=t.category, kind=t.kind, handling=handling,
                  safety=code in rs.safety)
        plan = legal_plan(f, rs)
        if plan is None:
            res.warnings.append(f"legal process: type {code} {t.name_zh} ({t.name_en}) has no "
                                "staged process (no legal_process rule matches it); its "
                                "disposal is one stage")
            continue
        rule, specs = plan
        total = sum((duration(x.limit) for x in specs if not x.alternative), timedelta())
        limit = (getattr(t, "deadlines", None) or {}).get("dispose")
        if limit and total > duration(limit):
            res.errors.append(
                f"{_at(rs, rule)}: the stages of type {code} {t.name_zh} ({t.name_en}) add up "
                f"to {_days(total)}, longer than the type's disposal limit {limit}")


def _days(span: timedelta) -> str:
    return f"{span / timedelta(days=1):g}d"


def _emergencies(rs: RuleSet, tax: Any, res: CheckResult) -> None:
    if rs.emergency is None:
        res.warnings.append("emergency: no transfer table — fire, traffic accidents, gas leaks "
                            "and hazardous materials would be dispatched as grid cases "
                            "instead of handed to 110/119/120")
        return
    for t in rs.emergency.transfers:
        for code in t.type_code or []:
            if code not in tax.types:
                res.errors.append(f"{rs.origin.get('emergency', '?')}: {t.id}: unknown type "
                                  f"code {code!r}")


def _references(rs: RuleSet, tax: Any, zones: tuple[str, ...], streets: list[str] | None,
                district_list: list[str] | None, res: CheckResult) -> None:
    err = res.errors.append
    depts = set(tax.departments)
    known_streets = set(streets or [])
    districts = set(district_list or []) | {s[:6] for s in known_streets}
    for r in (*rs.handling_rules, *rs.routing, *rs.raises, *rs.deadlines):
        at, m = _at(rs, r), r.match
        _match_codes(at, m, tax, zones, res)
        _match_places(at, m, known_streets, districts, res)
        if isinstance(r, RoutingRule):
            dep = r.set.department
            if dep is not None and dep not in ("@type", "@owner") and dep not in depts:
                err(f"{at}: set.department: unknown department {dep!r}")
            for a in r.set.assisting or []:
                if a not in depts:
                    err(f"{at}: set.assisting: unknown department {a!r}")
        for o in m.owner or []:
            if o not in depts:
                err(f"{at}: match.owner: unknown department {o!r}")
    _table_references(rs, tax, depts, res)


def _match_codes(at: str, m: Match, tax: Any, zones: tuple[str, ...], res: CheckResult) -> None:
    """A rule's match names known types, categories and zone types."""
    err = res.errors.append
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


def _match_places(at: str, m: Match, known_streets: set[str], districts: set[str],
                  res: CheckResult) -> None:
    """A rule's streets and districts are codes of the loaded geodata, and overlap."""
    err = res.errors.append
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


def _table_references(rs: RuleSet, tax: Any, depts: set[str], res: CheckResult) -> None:
    """The rule set's tables (handling, safety, duplicates, triage, escalation) name known
    types and departments."""
    err = res.errors.append
    for code, _cls in rs.handling.items():
        if code not in tax.types:
            err(f"handling: unknown type code {code!r}")
    for code in sorted(rs.safety):
        if code not in tax.types:
            err(f"safety: unknown type code {code!r}")
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
    """Unreachable rules and conflicts among the rules giving the type's limits, and among the
    relaxing modifiers (one of each applies). Tightening modifiers all apply: no conflict."""
    base = [r for r in rs.deadlines if not r.match.is_modifier]
    relaxers = [r for r in rs.deadlines if r.match.is_modifier and r.relaxes]
    for r in rs.deadlines:
        if not logic.types(r.match):
            res.errors.append(f"{_at(rs, r)}: matches no type (unreachable)")
    for rules in (base, relaxers):
        for i, r in enumerate(rules):
            if not logic.types(r.match):
                continue
            by = next((s for s in rules[:i] if logic.implies(r.match, s.match)), None)
            if by is not None:
                res.errors.append(f"{_at(rs, r)}: unreachable: {by.id} is stronger and always "
                                  "matches when this rule does")
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
    for r in relaxers:
        res.notes.append(f"{_at(rs, r)} relaxes limits where it matches: {r.relaxes}")


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


# --- tighten-only and the effective limits --------------------------------------------------

def _contexts(rs: RuleSet, streets: list[str], zones: tuple[str, ...]
              ) -> list[tuple[str, frozenset[str], str | None, datetime]]:
    """(label, zones, street, time) to evaluate: no zone, each zone type and each pair, at
    each of WEEK_TIMES, in the first street; each event period inside its window, in a street
    of its district (or the street or district it names)."""
    street = streets[0] if streets else None
    zone_sets = [frozenset(), *(frozenset({z}) for z in zones),
                 *(frozenset(p) for p in combinations(zones, 2))]
    out = [("+".join(sorted(zs)) or "-", zs, street, t) for t in WEEK_TIMES for zs in zone_sets]
    named = {s for r in (*rs.deadlines, *rs.raises, *rs.routing) for s in r.match.street or []}
    for s in sorted(named):
        out.append((f"street {s}", frozenset(), s, WEEK_TIMES[0]))
    for label, at in _window_times(rs):
        for zs in (frozenset(), *(frozenset({z}) for z in zones)):
            out.append((label + (f" {'+'.join(sorted(zs))}" if zs else ""), zs, street, at))
    for r in rs.raises:
        if not r.during:
            continue
        where = next(iter(r.match.street or ()), None)
        if where is None and r.match.district:
            d = r.match.district[0]
            where = next((s for s in streets if s.startswith(d)), d + "000")
        for w in r.during:
            at = w.start + min(timedelta(hours=10), (w.end - w.start) / 2)
            for zs in (frozenset(), *(frozenset({z}) for z in zones)):
                out.append((f"{r.id}" + (f" {'+'.join(sorted(zs))}" if zs else ""), zs,
                            where or street, at))
    return out


def _window_times(rs: RuleSet) -> list[tuple[str, datetime]]:
    """('at 22:00', time) for each time window a rule names: its start on a Wednesday (or
    on the first weekday the rule names), Shanghai time."""
    out: dict[str, datetime] = {}
    for r in (*rs.deadlines, *rs.raises, *rs.routing):
        days = r.match.weekday or ["wed"]
        for w in r.match.time or []:
            start, _ = window_minutes(w)
            day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun").index(days[0])
            at = datetime(2025, 3, 3 + day, start // 60, start % 60, tzinfo=SHANGHAI)
            out.setdefault(f"at {days[0]} {w.split('-')[0]}", at)
        if r.match.weekday and not r.match.time:
            day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun").index(days[0])
            out.setdefault(f"on {days[0]}", datetime(2025, 3, 3 + day, 10, 0, tzinfo=SHANGHAI))
    return sorted(out.items(), key=lambda x: x[1])


def _variants(code: str, t: Any, rs: RuleSet) -> list[Facts]:
    from grid.classifier import count_cues

    counts: list[str | None] = [None, *(("single", "gathered") if code in count_cues()
                                        else ())]
    return [Facts(type_code=code, category=t.category, kind=t.kind,
                  handling=rs.handling.get(code, t.handling), count=c,
                  safety=code in rs.safety) for c in counts]


def _protected(f: Facts) -> str | None:
    if f.handling in PROTECTED:
        return f.handling.replace("_", "-")
    return "safety" if f.safety else None


def _loosened(m: Any, plan: DeadlinePlan, where: str,
              legal: dict[tuple[str, str], list[str]]) -> list[str]:
    """The stages whose limit modifier ``m`` lengthens over the plan's base limits, in words;
    a legal-process stage it changes at all goes to ``legal``."""
    assert plan.base is not None
    fixed = plan.ignored.get(m.rule, ())
    looser: list[str] = []
    for s in STAGES:
        if s not in m.due or s not in plan.base.due:
            continue
        mine, theirs = m.due[s], plan.base.due[s]
        if s in fixed:
            if mine != theirs:
                legal.setdefault((m.rule, plan.base.rule), []).append(
                    f"{where}: {s} {plan.base.span(s)} -> {m.span(s)}")
            continue
        if mine > theirs:
            looser.append(f"{s} {plan.base.span(s)} "
                          f"({stage_calendar(s, plan.base.calendar)}) -> "
                          f"{m.span(s)} ({stage_calendar(s, m.calendar)})")
    return looser


def _tighten_only(rs: RuleSet, tax: Any, streets: list[str], zones: tuple[str, ...],
                  res: CheckResult) -> None:
    pairs: dict[tuple[str, str], list[str]] = {}
    legal: dict[tuple[str, str], list[str]] = {}
    contexts = _contexts(rs, streets, zones)
    for code, t in tax.types.items():
        for v in _variants(code, t, rs):
            for label, zs, street, at in contexts:
                f = with_handling_rules(replace(v, zones=zs, street=street,
                                                district=street[:6] if street else None), rs)
                plan: DeadlinePlan = route(f, at, rs, tax)["plan"]
                res.combinations += 1
                kind = _protected(f)
                if plan.base is None or kind is None:
                    continue
                for m in plan.modifiers:
                    looser = _loosened(m, plan, f"{code} in {label}", legal)
                    if looser:
                        pairs.setdefault((m.rule, plan.base.rule), []).append(
                            f"{code} {t.name_en} ({kind}) in {label} at {at:%a %H:%M}: "
                            + ", ".join(looser))
    for (mod, base), where in sorted(pairs.items()):
        codes = sorted({w.split()[0] for w in where})
        res.errors.append(
            f"loosens: {_at(rs, _rule(rs, mod))} would lengthen limits of "
            f"{_at(rs, _rule(rs, base))} "
            f"for {len(codes)} protected type(s) ({_example(frozenset(codes))}), e.g. "
            f"{where[0]}: a zone, area or period rule may only tighten; leave these types out "
            "of its match (handling: ordinary, safety: false) or say why in `relaxes:`")
    for (mod, base), where in sorted(legal.items()):
        res.warnings.append(
            f"{_at(rs, _rule(rs, mod))} would change the legal procedure of "
            f"{_at(rs, _rule(rs, base))} ({where[0]}); the engine keeps the legal procedure: "
            "name handling: legal_process in the match if that is meant, else handling: "
            "ordinary")
    res.table = effective_table(rs, tax, streets, zones)


def _rule(rs: RuleSet, rule_id: str) -> DeadlineRule:
    return next(r for r in rs.deadlines if r.id == rule_id)


TABLE_COLUMNS = ("type", "name", "zone", "count", "handling", "priority", "calendar", "file",
                 "dispatch", "dispose", "verify", "rules", "process")


def effective_table(rs: RuleSet, tax: Any, streets: list[str],
                    zones: tuple[str, ...]) -> list[dict[str, str]]:
    """The effective limits per type and zone (and event period), decided on a Monday
    morning: one row each, the limit of every stage as the rule that won it gives it."""
    rows: list[dict[str, str]] = []
    contexts = [c for c in _contexts(rs, streets, zones)
                if c[3] == WEEK_TIMES[0] and len(c[1]) <= 1 and not c[0].startswith("street")]
    timed_zones = {z for r in (*rs.deadlines, *rs.raises, *rs.routing)
                   if r.match.time or r.match.weekday for z in r.match.zones or []}
    contexts += [c for c in _contexts(rs, streets, zones)
                 if c[3] not in WEEK_TIMES and (not c[1] or (
                     c[0].startswith(("at ", "on ")) and c[1] <= timed_zones))]
    from rules.engine import legal_plan, transfer_for

    for code, t in tax.types.items():
        tr = transfer_for("", code, rs)
        if tr is not None:  # an emergency: handed over, no grid limits
            rows.append({"type": code, "name": t.name_en, "zone": "any", "count": "",
                         "handling": "emergency", "priority": "urgent", "calendar": "",
                         **dict.fromkeys(STAGES, ""), "rules": tr.rule,
                         "process": "transfer at once -> " + ", ".join(
                             f"{x.number} {x.name_zh} {x.name_en}" for x in tr.services)
                         + "; then a follow-up for the aftermath if any"})
            continue
        for v in _variants(code, t, rs):
            legal = legal_plan(with_handling_rules(v, rs), rs)
            process = "" if legal is None else (
                f"{legal[0].id} ({legal[0].calendar}): " + " -> ".join(
                    f"{x.stage} {x.name_zh} {x.limit}" for x in legal[1] if not x.alternative)
                + "".join(f" | or {x.stage} {x.name_zh} {x.limit} instead of the last"
                          for x in legal[1] if x.alternative))
            for label, zs, street, at in contexts:
                f = with_handling_rules(replace(v, zones=zs, street=street,
                                                district=street[:6] if street else None), rs)
                d = route(f, at, rs, tax)
                plan: DeadlinePlan = d["plan"]
                row = {"type": code, "name": t.name_en, "zone": label, "count": v.count or "",
                       "handling": f.handling or "", "priority": d["priority"],
                       "calendar": plan.calendar}
                for s in STAGES:
                    row[s] = plan.source[s].span(s) if s in plan.source else ""
                row["rules"] = " ".join(dict.fromkeys(
                    plan.source[s].rule for s in STAGES if s in plan.source))
                row["process"] = process
                rows.append(row)
    return rows


def format_table(rows: list[dict[str, str]]) -> list[str]:
    """The table as text: per type (and count), zones with the same limits on one line."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for r in rows:
        key = (r["type"], r["count"], *(r[c] for c in TABLE_COLUMNS[4:-1]))
        groups.setdefault(key, []).append(r["zone"])
    names = {r["type"]: r["name"] for r in rows}
    process: dict[str, list[str]] = {}
    for r in rows:
        if r.get("process") and r["process"] not in process.setdefault(r["type"], []):
            process[r["type"]].append(r["process"])
    head = ("type", "count", "handling", "priority", "cal", "file", "dispatch", "dispose",
            "verify", "zones / periods", "rules")
    widths = (4, 8, 15, 8, 7, 5, 8, 7, 6, 40)
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)) + "  rules"]
    out[0] = out[0].replace("rules  rules", "rules")
    last = None
    for key, zones in groups.items():
        code, count, handling, prio, cal, fi, di, dp, ve, rules = key
        if code != last:
            out.append(f"{code} {names[code]}")
            out.extend(f"        process: {p}" for p in process.get(code, []))
            last = code
        cells = ("", count or "-", handling, prio, cal, fi, di, dp, ve, ", ".join(zones))
        out.append("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))
                   + "  " + rules)
    return out
