"""The decision engine: ``decide(report, placement, now, ruleset) -> Decision``. Pure.

Order of evaluation:

1. **Facts** — type code (argument, else the report's), its category, kind and handling class
   (the taxonomy's, overridden by the rule set's ``handling`` table), the placement's zone
   types, street and district, the report's component id and source, the time of day and
   weekday in Shanghai time.
   **Emergencies** (the rule set's ``emergency`` table: fire, traffic accidents, gas leaks,
   hazardous materials, by type or by cues in the description) are transferred to
   110/119/120 at once: handling ``emergency``, no department, no deadlines.
   **Guessed types** below the rule set's ``confirm`` threshold (key supervision: always)
   go to triage with the classifier's suggestions.
2. **Self-closing** — a self-disposable type reported with ``self_disposed`` and enough
   evidence photos closes at once: tier ``self``, no department, no deadlines.
3. **Routing** — every field (department, tier, priority, alert, closing standard) is set by
   the strongest matching routing rule that sets it. Strength: more conditions, then higher
   ``precedence``, then the smaller rule id. ``winner`` is the rule that set the department.
4. **Raise** — key areas and event periods lift the priority (never lower it).
5. **Deadlines** — the strongest matching deadline rule (which may match the routed priority
   and tier) gives the calendar and the four stage limits, counted from ``now``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any

from grid.deadlines import SHANGHAI, stage_calendar
from grid.models import (
    Assignment,
    Decision,
    LegalStageSpec,
    Placement,
    Report,
    ServiceRef,
    Suggestion,
    Transfer,
)
from rules.ruleset import RuleSet
from rules.schema import OWNER_REF, PRIORITIES, STAGES, TYPE_REF, WEEKDAYS, Match, in_window
from rules.timing import calendar as _calendar
from rules.timing import due_at, scaled_limit

ROUTE_FIELDS = ("department", "tier", "priority", "alert", "closing_standard", "assisting")
ROUTE_DEFAULTS: dict[str, Any] = {"department": None, "tier": "street", "priority": "normal",
                                  "alert": False, "closing_standard": TYPE_REF,
                                  "assisting": []}


@cache
def _default_taxonomy() -> Any:
    from grid.taxonomy import default_taxonomy

    return default_taxonomy()


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything a rule may look at, already resolved."""

    type_code: str | None
    category: str | None = None
    kind: str | None = None
    handling: str | None = None
    zones: frozenset[str] = frozenset()
    street: str | None = None
    district: str | None = None
    component_id: str | None = None
    source: str | None = None
    priority: str | None = None  # routed priority (deadline rules only)
    tier: str | None = None  # routed tier (deadline rules only)
    count: str | None = None  # "single" / "gathered" from the description (count cues)
    safety: bool = False  # the type is in the rule set's `safety` list
    handling_rule: str | None = None  # the handling rule that set ``handling``, if any
    owner: str | None = None  # owner department named by the component's object code
    meter: str | None = None  # "before" / "after" the utility meter
    at: datetime | None = None  # the decision time (time of day and weekday conditions)


def local_time(at: datetime | None) -> tuple[int, str] | None:
    """(minute of the day, weekday 'mon'..'sun') of ``at`` in Shanghai time."""
    if at is None:
        return None
    t = at.astimezone(SHANGHAI)
    return t.hour * 60 + t.minute, WEEKDAYS[t.weekday()]


def matches(m: Match, f: Facts) -> bool:
    """Whether all conditions of ``m`` hold for ``f`` (time of day and weekday conditions
    never hold without a decision time)."""
    for name, allowed in m.compiled:
        if name in ("time", "weekday"):
            local = local_time(f.at)
            if local is None:
                return False
            if name == "weekday" and local[1] not in allowed:
                return False
            if name == "time" and not any(in_window(local[0], w) for w in allowed):
                return False
        elif name == "zones":
            if f.zones.isdisjoint(allowed):
                return False
        elif name == "component_prefix":
            cid = (f.component_id or "").upper()
            if not cid or not any(cid.startswith(p.upper()) for p in allowed):
                return False
        elif getattr(f, name) not in allowed:
            return False
    return True


def facts_for(report: Report | None, placement: Placement, type_code: str | None,
              ruleset: RuleSet, taxonomy: Any) -> Facts:
    from grid.classifier import count_hint

    t = taxonomy.types.get(type_code) if type_code else None
    handling = ruleset.handling.get(type_code or "", t.handling if t else None)
    f = Facts(
        type_code=type_code, category=t.category if t else None, kind=t.kind if t else None,
        handling=handling, zones=frozenset(placement.zones), street=placement.street,
        district=placement.district,
        component_id=report.component_id if report else None,
        source=report.source if report else None,
        count=count_hint(report.description, type_code) if report else None,
        safety=(type_code or "") in ruleset.safety,
        owner=_object_owner(taxonomy, report.component_code) if report else None,
        meter=report.meter if report else None,
    )
    return with_handling_rules(f, ruleset)


def _object_owner(taxonomy: Any, code: str | None) -> str | None:
    owner = getattr(taxonomy, "object_owner", None)
    return owner(code) if owner is not None and code else None


def with_handling_rules(f: Facts, ruleset: RuleSet) -> Facts:
    """``f`` with the handling class of the strongest matching ``handling_rules`` entry."""
    rule = next((r for r in ruleset.handling_rules if matches(r.match, f)), None)
    return f if rule is None else replace(f, handling=rule.handling, handling_rule=rule.id)


@dataclass(frozen=True)
class Guess:
    """The classifier's guess for a report without a type: its best score and the ranked
    candidates (type code, score, matched keywords)."""

    score: float
    candidates: tuple[tuple[str, float, tuple[str, ...]], ...] = ()


def decide(report: Report, placement: Placement, now: datetime, ruleset: RuleSet, *,
           taxonomy: Any = None, type_code: str | None = None, registry: Any = None,
           guess: Guess | None = None, follow_up: bool = False) -> Decision:
    """Route one located report. ``type_code`` overrides the report's (e.g. a classifier's);
    no type at all, or one the taxonomy does not know, gives a triage decision.
    ``registry`` (:class:`geodata.registry.Registry`) names the unit of the lead and of
    each assisting department at the placement. ``guess``: the type was guessed by the
    classifier (then a guess below the rule set's ``confirm`` threshold goes to triage with
    suggestions). ``follow_up``: the grid's follow-up of a transferred emergency (never
    transferred again)."""
    taxonomy = taxonomy if taxonomy is not None else _default_taxonomy()
    code = type_code or report.type_code
    facts = replace(facts_for(report, placement, code, ruleset, taxonomy), at=now)
    inputs = {
        "type_code": code, "category": facts.category, "kind": facts.kind,
        "handling": facts.handling, "district": placement.district, "street": placement.street,
        "community": placement.community, "cell": placement.cell,
        "zones": sorted(placement.zones), "component_id": report.component_id,
        "component_code": report.component_code, "owner": facts.owner, "meter": report.meter,
        "count": facts.count,
        "source": report.source, "self_disposed": report.self_disposed,
        "evidence_photos": len(report.evidence_photos), "now": now.isoformat(),
    }
    transfer = None if follow_up else transfer_for(report.description, code, ruleset)
    if transfer is not None:
        return _transferred(now, ruleset, transfer, code, facts, taxonomy, inputs)
    if code is None or code not in taxonomy.types:
        why = "no type code" if code is None else f"unknown type code {code!r}"
        return _triage(now, ruleset, why, code, inputs)
    if guess is not None:
        need = ruleset.confirm.threshold(facts.category, facts.handling)
        if need is None or guess.score < need:
            t = taxonomy.types[code]
            why = (f"type {code} {t.name_zh} ({t.name_en}) guessed from the description with "
                   f"confidence {guess.score:.2f}; "
                   + (f"{facts.handling} types are always checked by a person"
                      if need is None else f"below {need:.2f} for category {facts.category} "
                      f"/ {facts.handling}")
                   + f" ({ruleset.confirm.id})")
            return _triage(now, ruleset, why, None, {**inputs, "guessed": code},
                           suggestions=_suggestions(guess, taxonomy, ruleset.confirm.top),
                           rule=ruleset.confirm.id)
    sc = ruleset.self_closing
    if (report.self_disposed and facts.handling in sc.handling and report.source in sc.sources
            and len(report.evidence_photos) >= sc.min_evidence_photos):
        return Decision(
            type_code=code, department=None, tier="self", priority="normal",
            handling=facts.handling, self_closed=True, rules=[sc.id], winner=sc.id,
            ruleset_version=ruleset.version, closing_standard=sc.closing_standard,
            explanation=[_type_line(code, facts, taxonomy),
                         f"self-closed by {sc.id}: {facts.handling}, self_disposed, "
                         f"{len(report.evidence_photos)} evidence photo(s) "
                         f"(>= {sc.min_evidence_photos}); no work order"],
            inputs=inputs,
        )
    d = route(facts, now, ruleset, taxonomy)
    explanation = [_type_line(code, facts, taxonomy), *d["explanation"]]
    lead, unit_lines = assign(d["department"], placement, report, registry)
    assisting = []
    for dept in d["assisting"]:
        a, lines = assign(dept, placement, report, registry, "assisting ")
        assisting.append(a)
        unit_lines += lines
    explanation += unit_lines
    if report.self_disposed and facts.handling in sc.handling:
        explanation.append(f"not self-closed: {len(report.evidence_photos)} evidence photo(s), "
                           f"source {report.source} (needs >= {sc.min_evidence_photos} from "
                           f"{'/'.join(sc.sources)}); routed normally")
    legal = legal_plan(facts, ruleset)
    if legal is not None:
        rule, specs = legal
        d["rules"].append(rule.id)
        explanation.append(
            f"legal process <- {rule.id} ({rule.calendar} calendar): "
            + " -> ".join(f"{x.stage} {x.name_zh} {x.limit}" for x in specs if not x.alternative)
            + "".join(f"; or {x.stage} {x.name_zh} {x.limit} instead of the last"
                      for x in specs if x.alternative))
    if follow_up:
        explanation.insert(0, "follow-up of a transferred emergency (the grid's part)")
    return Decision(
        type_code=code, department=d["department"], tier=d["tier"], priority=d["priority"],
        unit=lead.unit if lead else None, unit_name=lead.unit_name if lead else None,
        assisting=assisting,
        handling=facts.handling or "ordinary", alert=d["alert"], calendar=d["calendar"],
        deadlines=d["deadlines"], rules=d["rules"], winner=d["winner"],
        ruleset_version=ruleset.version, closing_standard=d["closing_standard"],
        explanation=explanation, inputs=inputs,
        legal_stages=legal[1] if legal else [], legal_rule=legal[0].id if legal else None,
        legal_calendar=legal[0].calendar if legal else "working",
    )


def legal_plan(facts: Facts, ruleset: RuleSet) -> tuple[Any, list[LegalStageSpec]] | None:
    """The strongest legal-process rule matching a legal-process case, and its stages."""
    if facts.handling != "legal_process":
        return None
    rule = next((r for r in ruleset.legal_processes if matches(r.match, facts)), None)
    if rule is None:
        return None
    specs = [LegalStageSpec(stage=s.id, name_zh=s.name_zh, name_en=s.name_en, limit=s.limit,
                            closes_when=s.closes_when) for s in rule.stages]
    if rule.court is not None:
        c = rule.court
        specs.append(LegalStageSpec(stage=c.id, name_zh=c.name_zh, name_en=c.name_en,
                                    limit=c.limit, closes_when=c.closes_when, alternative=True))
    return rule, specs


def _cue_hit(patterns: list[str] | None, text: str) -> str | None:
    for p in patterns or []:
        m = re.search(p, text)
        if m:
            return m.group(0)
    return None


def transfer_for(description: str, type_code: str | None,
                 ruleset: RuleSet) -> Transfer | None:
    """The emergency transfer for a report of ``type_code`` with ``description`` (the first
    matching transfer rule, with the services its ``add`` cues bring), or ``None``."""
    em = ruleset.emergency
    if em is None:
        return None
    from grid.classifier import normalize

    text = normalize(description or "")
    for t in em.transfers:
        because: list[str] = []
        if type_code and t.type_code and type_code in t.type_code:
            because.append(f"type {type_code}")
        hit = _cue_hit(t.cues, text)
        if hit:
            because.append(f"description says {hit!r}")
        if not because:
            continue
        ids = list(t.services)
        for extra in t.add:
            more = _cue_hit(extra.cues, text)
            if more:
                ids += [x for x in extra.services if x not in ids]
                because.append(f"description says {more!r}: also {', '.join(extra.services)}")
        refs = [ServiceRef(service=i, number=em.services[i].number,
                           name_zh=em.services[i].name_zh, name_en=em.services[i].name_en)
                for i in ids]
        return Transfer(rule=t.id, services=refs, because=because)
    return None


def _transferred(now: datetime, ruleset: RuleSet, tr: Transfer, code: str | None,
                 facts: Facts, taxonomy: Any, inputs: dict[str, Any]) -> Decision:
    known = code if code in taxonomy.types else None
    to = ", ".join(f"{s.number} {s.name_zh} {s.name_en}" for s in tr.services)
    return Decision(
        type_code=known, department=None, tier="district", priority="urgent",
        handling="emergency", alert=True, calendar="24h", deadlines={},
        rules=[tr.rule], winner=tr.rule, ruleset_version=ruleset.version, transfer=tr,
        closing_standard="已移交应急联动（110/119/120）处置；网格跟进善后 (handed to the emergency "
                         "services; the grid follows up the aftermath)",
        explanation=[*([_type_line(known, facts, taxonomy)] if known else []),
                     f"emergency, not a grid case: transferred at once to {to} by {tr.rule} "
                     f"({'; '.join(tr.because)}); no work order — the command center may "
                     "open a follow-up for the aftermath"],
        inputs=inputs,
    )


def _suggestions(guess: Guess, taxonomy: Any, top: int) -> list[Suggestion]:
    out = []
    for code, score, matched in guess.candidates[:top]:
        t = taxonomy.types.get(code)
        out.append(Suggestion(type_code=code, name_zh=getattr(t, "name_zh", ""),
                              name_en=getattr(t, "name_en", ""), score=round(score, 3),
                              matched=list(matched)))
    return out


def assign(department: str | None, placement: Placement, report: Report | None,
           registry: Any, role: str = "") -> tuple[Assignment | None, list[str]]:
    """``department`` with the registry's unit at ``placement``, and the explanation line."""
    if not department:
        return None, []
    res = registry.unit_for(department, placement, report.component_id if report else None,
                            report.component_code if report else None) if registry else None
    if res is None:
        why = "no registry" if not registry else "the registry names none here"
        return Assignment(department=department), [f"{role}unit for {department}: - ({why})"]
    u = res.unit
    return (Assignment(department=department, unit=u.unit_id, unit_name=u.name_zh),
            [f"{role}unit {u.unit_id} {u.name_zh} <- {res.via}"])



def _raise_priority(ruleset: RuleSet, facts: Facts, now: datetime, priority: str,
                    matched: list[str], lines: list[str]) -> str:
    """The priority after the raise rules that match ``facts`` at ``now`` (a raise never
    lowers it); their ids go to ``matched``, the explanation to ``lines``."""
    for r in ruleset.raises:
        if not matches(r.match, facts):
            continue
        if r.during is not None and not any(w.contains(now) for w in r.during):
            continue
        matched.append(r.id)
        if PRIORITIES.index(r.priority) > PRIORITIES.index(priority):
            lines.append(f"priority raised {priority} -> {r.priority} by {r.id}"
                         + (f" ({r.description})" if r.description else ""))
            priority = r.priority
        else:
            lines.append(f"{r.id} matched; priority already {priority}")
    return priority

def route(facts: Facts, now: datetime, ruleset: RuleSet, taxonomy: Any) -> dict[str, Any]:
    """Routing, raise and deadline tables for resolved facts (also used by the checker)."""
    t = taxonomy.types[facts.type_code]
    if facts.at is None:
        facts = replace(facts, at=now)
    matched: list[str] = [facts.handling_rule] if facts.handling_rule else []
    chosen: dict[str, tuple[Any, str]] = {}
    for r in ruleset.routing:
        if not matches(r.match, facts):
            continue
        matched.append(r.id)
        for k, v in r.set.given().items():
            chosen.setdefault(k, (v, r.id))
    out = {k: chosen.get(k, (ROUTE_DEFAULTS[k], "default"))[0] for k in ROUTE_FIELDS}
    src = {k: chosen.get(k, (None, "default"))[1] for k in ROUTE_FIELDS}
    if out["department"] == TYPE_REF:
        out["department"] = getattr(t, "department", None)
    elif out["department"] == OWNER_REF:
        out["department"] = facts.owner
    if out["closing_standard"] == TYPE_REF:
        out["closing_standard"] = getattr(t, "closing_standard", "") or ""
    out["assisting"] = [a for a in out["assisting"] or [] if a != out["department"]]
    lines = [f"{k} {str(out[k]).lower() if k == 'alert' else out[k]} <- {src[k]}"
             for k in ("department", "tier", "priority", "alert")]
    if out["assisting"]:
        lines.append(f"assisting {', '.join(out['assisting'])} <- {src['assisting']}")
    if facts.handling_rule:
        lines.insert(0, f"handling {facts.handling} <- {facts.handling_rule} "
                        f"(count {facts.count})")
    out["priority"] = _raise_priority(ruleset, facts, now, out["priority"], matched, lines)
    dfacts = replace(facts, priority=out["priority"], tier=out["tier"])
    plan = deadline_plan(dfacts, now, ruleset, t)
    matched.extend(plan.rules)
    lines.extend(plan.explanation)
    return {**out, "calendar": plan.calendar, "deadlines": plan.deadlines, "rules": matched,
            "winner": None if src["department"] == "default" else src["department"],
            "explanation": lines, "plan": plan}


@dataclass(frozen=True)
class Limits:
    """What one deadline rule asks for a case: its calendar, the limit text of each stage,
    the scale and the due times counted from the decision time."""

    rule: str
    calendar: str
    stages: dict[str, str]
    scale: float
    due: dict[str, datetime]

    def span(self, stage: str) -> str:
        """The limit of ``stage`` as written after scaling, e.g. '1h', '+12h', '15d'."""
        text = self.stages[stage]
        if self.scale == 1:
            return text
        return _scaled_text(text, self.scale, stage_calendar(stage, self.calendar))


@cache
def _scaled_text(text: str, scale: float, cal: str) -> str:
    """The limit written ``text`` (maybe '+…') × ``scale`` in calendar ``cal``, as written."""
    span = scaled_limit(text.lstrip("+"), scale, cal)
    return ("+" if text.startswith("+") else "") + format_span(span, cal)


@dataclass(frozen=True)
class DeadlinePlan:
    """How the stage deadlines of a case came about: the rule giving the type's limits
    (``base``), the zone/area/period modifiers that matched, and per stage the rule whose
    due time won (the earliest, unless a modifier relaxes the limits)."""

    base: Limits | None
    relaxed_by: Limits | None  # the modifier with `relaxes:` that replaced the base
    modifiers: tuple[Limits, ...]  # tightening modifiers that matched (all of them)
    deadlines: dict[str, datetime]
    source: dict[str, Limits]  # stage -> the limits that gave its due time
    ignored: dict[str, tuple[str, ...]]  # modifier id -> stages it may not change, and why
    calendar: str
    explanation: tuple[str, ...]

    @property
    def rules(self) -> list[str]:
        out = [x.rule for x in (self.base, self.relaxed_by, *self.modifiers) if x is not None]
        return list(dict.fromkeys(out))


def _limits(rule: Any, facts: Facts, now: datetime, t: Any) -> Limits:
    limits = dict(rule.stages or {})
    cal = rule.calendar or "24h"
    if rule.from_type:
        typed = {s: v for s, v in (getattr(t, "deadlines", None) or {}).items() if s in STAGES}
        limits = {**limits, **typed}
        cal = rule.calendar or getattr(t, "calendar", None) or "24h"
    return Limits(rule.id, cal, limits, rule.scale,
                  stage_deadlines(now, limits, cal, rule.scale))


def _names(m: Match, facts: Facts, name: str) -> bool:
    """Whether ``m`` names ``facts``' handling class (or the type) explicitly."""
    return bool((m.handling and name in m.handling)
                or (m.type_code and facts.type_code in m.type_code))


def deadline_plan(facts: Facts, now: datetime, ruleset: RuleSet, t: Any) -> DeadlinePlan:
    """The stage deadlines for resolved facts (routed priority and tier included).

    1. The strongest matching rule without zone/area/period conditions gives the type's
       limits (the base: the type's own, key supervision, legal process, ...).
    2. Modifiers (rules with a condition on zones, street, district, priority or tier) may
       only tighten: for each stage the earliest due time of the base and every matching
       modifier wins. A modifier with ``relaxes:`` (e.g. rural differentiation) may lengthen
       them: the strongest such one replaces the base, and the others still tighten.
    3. A legal process's disposal and verification follow the legal procedure: a modifier
       changes them only if it names ``handling: legal_process`` (or the type) itself.
    """
    lines: list[str] = []
    base_rule = next((r for r in ruleset.deadlines
                      if not r.match.is_modifier and matches(r.match, facts)), None)
    mods = [r for r in ruleset.deadlines if r.match.is_modifier and matches(r.match, facts)]
    relaxer_rule = next((r for r in mods if r.relaxes), None)
    base = _limits(base_rule, facts, now, t) if base_rule else None
    relaxed = _limits(relaxer_rule, facts, now, t) if relaxer_rule else None
    start = relaxed or base
    tighteners = [r for r in mods if not r.relaxes]
    if start is None and tighteners:
        start, tighteners = _limits(tighteners[0], facts, now, t), tighteners[1:]
        lines.append(f"no rule gives the type's limits: {start.rule} does")
    if start is None:
        return DeadlinePlan(None, None, (), {}, {}, {}, "24h",
                            ("no deadline rule matched: no deadlines",))
    if base is not None:
        lines.append(f"type limits <- {base.rule} ({_describe(base)})")
    if relaxed is not None:
        assert relaxer_rule is not None  # relaxed comes from it
        lines.append(f"limits relaxed by {relaxed.rule} ({_describe(relaxed)}): "
                     f"{relaxer_rule.relaxes}")
        for r in mods:
            if r.relaxes and r is not relaxer_rule:
                lines.append(f"{r.id} also relaxes; {relaxed.rule} is stronger and applies")
    deadlines = dict(start.due)
    source = dict.fromkeys(start.due, start)
    applied: list[Limits] = []
    ignored: dict[str, tuple[str, ...]] = {}
    for r in tighteners:
        lim = _limits(r, facts, now, t)
        applied.append(lim)
        fixed: tuple[str, ...] = ()
        if facts.handling == "legal_process" and not _names(r.match, facts, "legal_process"):
            fixed = ("dispose", "verify")
            ignored[r.id] = fixed
        won = []
        for s, due in lim.due.items():
            if s in fixed or s not in deadlines or due >= deadlines[s]:
                continue
            deadlines[s], source[s] = due, lim
            won.append(f"{s} {lim.span(s)}")
        note = f" (the legal procedure keeps {'/'.join(fixed)})" if fixed else ""
        lines.append((f"{r.id} tightens {', '.join(won)}" if won
                      else f"{r.id} matched; nothing tighter") + note)
    cal = (source.get("dispose") or start).calendar
    lines.append(f"deadlines ({cal} calendar for disposal, 24h for the command center's "
                 "stages): " + ", ".join(f"{s} {source[s].span(s)} <- {source[s].rule}"
                                         for s in STAGES if s in deadlines))
    return DeadlinePlan(base, relaxed, tuple(applied), deadlines, source, ignored, cal,
                        tuple(lines))


def _describe(x: Limits) -> str:
    scale = f", x{x.scale:g}" if x.scale != 1 else ""
    return (f"{x.calendar} calendar{scale}: "
            + ", ".join(f"{s} {x.stages[s]}" for s in STAGES if s in x.stages))


def format_span(span: Any, calendar: str) -> str:
    """A limit as text: whole working days in the working calendar ('15d', '1.5d' stays
    '12h'), else the shortest of d/h/m."""
    minutes = round(_calendar(calendar).working_amount(span).total_seconds() / 60)
    day = round(_calendar(calendar).day_length.total_seconds() / 60)
    for unit, size in (("d", day), ("h", 60), ("m", 1)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"  # pragma: no cover


def stage_deadlines(now: datetime, limits: dict[str, str], calendar: str,
                    scale: float = 1.0) -> dict[str, datetime]:
    """Due times of the stages: a limit runs from ``now``, or from the previous stage's
    deadline when written ``+...``; every limit is multiplied by ``scale``. Only the
    disposal runs in ``calendar``: the command center files and dispatches and supervisors
    verify around the clock (see :func:`grid.deadlines.stage_calendar`)."""
    out: dict[str, datetime] = {}
    prev = now
    for s in STAGES:
        text = limits.get(s)
        if text is None:
            continue
        cal = stage_calendar(s, calendar)
        start = prev if text.startswith("+") else now
        prev = out[s] = due_at(start, scaled_limit(text.lstrip("+"), scale, cal), cal)
    return out


def _type_line(code: str, f: Facts, taxonomy: Any) -> str:
    t = taxonomy.types[code]
    return (f"type {code} {getattr(t, 'name_zh', '')} ({getattr(t, 'name_en', '')}): "
            f"category {f.category}, {f.kind}, handling {f.handling}; zones "
            f"[{', '.join(sorted(f.zones))}], street {f.street}, district {f.district}")


def _triage(now: datetime, ruleset: RuleSet, why: str, code: str | None,
            inputs: dict[str, Any], suggestions: list[Suggestion] | None = None,
            rule: str | None = None) -> Decision:
    tr = ruleset.triage
    lines = [f"{why}: manual triage by {tr.department} (rule {tr.id}), file within {tr.file}"]
    if suggestions:
        lines.append("suggestions: " + "; ".join(
            f"{s.type_code} {s.name_zh} ({s.name_en}) {s.score:.2f}" for s in suggestions))
    return Decision(
        type_code=None, department=tr.department, tier=tr.tier, priority=tr.priority,
        handling="triage", calendar=tr.calendar,
        deadlines={"file": due_at(now, tr.file, tr.calendar)},
        rules=[tr.id, *([rule] if rule else [])], winner=tr.id,
        ruleset_version=ruleset.version, explanation=lines,
        inputs={**inputs, "type_code": code}, suggestions=suggestions or [],
    )
