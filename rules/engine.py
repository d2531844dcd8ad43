"""The decision engine: ``decide(report, placement, now, ruleset) -> Decision``. Pure.

Order of evaluation:

1. **Facts** — type code (argument, else the report's), its category, kind and handling class
   (the taxonomy's, overridden by the rule set's ``handling`` table), the placement's zone
   types, street and district, the report's component id and source.
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

from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any

from grid.models import Decision, Placement, Report
from rules.ruleset import RuleSet
from rules.schema import PRIORITIES, STAGES, TYPE_REF, Match
from rules.timing import due_at, duration, scaled

ROUTE_FIELDS = ("department", "tier", "priority", "alert", "closing_standard")
ROUTE_DEFAULTS: dict[str, Any] = {"department": None, "tier": "street", "priority": "normal",
                                  "alert": False, "closing_standard": TYPE_REF}


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


def matches(m: Match, f: Facts) -> bool:
    """Whether all conditions of ``m`` hold for ``f``."""
    for name, allowed in m.compiled:
        if name == "zones":
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
    t = taxonomy.types.get(type_code) if type_code else None
    handling = ruleset.handling.get(type_code or "", t.handling if t else None)
    return Facts(
        type_code=type_code, category=t.category if t else None, kind=t.kind if t else None,
        handling=handling, zones=frozenset(placement.zones), street=placement.street,
        district=placement.district,
        component_id=report.component_id if report else None,
        source=report.source if report else None,
    )


def decide(report: Report, placement: Placement, now: datetime, ruleset: RuleSet, *,
           taxonomy: Any = None, type_code: str | None = None) -> Decision:
    """Route one located report. ``type_code`` overrides the report's (e.g. a classifier's);
    no type at all, or one the taxonomy does not know, gives a triage decision."""
    taxonomy = taxonomy if taxonomy is not None else _default_taxonomy()
    code = type_code or report.type_code
    facts = facts_for(report, placement, code, ruleset, taxonomy)
    inputs = {
        "type_code": code, "category": facts.category, "kind": facts.kind,
        "handling": facts.handling, "district": placement.district, "street": placement.street,
        "community": placement.community, "cell": placement.cell,
        "zones": sorted(placement.zones), "component_id": report.component_id,
        "source": report.source, "self_disposed": report.self_disposed,
        "evidence_photos": len(report.evidence_photos), "now": now.isoformat(),
    }
    if code is None or code not in taxonomy.types:
        why = "no type code" if code is None else f"unknown type code {code!r}"
        return _triage(now, ruleset, why, code, inputs)
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
    if report.self_disposed and facts.handling in sc.handling:
        explanation.append(f"not self-closed: {len(report.evidence_photos)} evidence photo(s), "
                           f"source {report.source} (needs >= {sc.min_evidence_photos} from "
                           f"{'/'.join(sc.sources)}); routed normally")
    return Decision(
        type_code=code, department=d["department"], tier=d["tier"], priority=d["priority"],
        handling=facts.handling or "ordinary", alert=d["alert"], calendar=d["calendar"],
        deadlines=d["deadlines"], rules=d["rules"], winner=d["winner"],
        ruleset_version=ruleset.version, closing_standard=d["closing_standard"],
        explanation=explanation, inputs=inputs,
    )


def route(facts: Facts, now: datetime, ruleset: RuleSet, taxonomy: Any) -> dict[str, Any]:
    """Routing, raise and deadline tables for resolved facts (also used by the checker)."""
    t = taxonomy.types[facts.type_code]
    matched: list[str] = []
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
    if out["closing_standard"] == TYPE_REF:
        out["closing_standard"] = getattr(t, "closing_standard", "") or ""
    lines = [f"{k} {str(out[k]).lower() if k == 'alert' else out[k]} <- {src[k]}"
             for k in ("department", "tier", "priority", "alert")]
    for r in ruleset.raises:
        if not matches(r.match, facts):
            continue
        if r.during is not None and not any(w.contains(now) for w in r.during):
            continue
        matched.append(r.id)
        if PRIORITIES.index(r.priority) > PRIORITIES.index(out["priority"]):
            lines.append(f"priority raised {out['priority']} -> {r.priority} by {r.id}"
                         + (f" ({r.description})" if r.description else ""))
            out["priority"] = r.priority
        else:
            lines.append(f"{r.id} matched; priority already {out['priority']}")
    dfacts = replace(facts, priority=out["priority"], tier=out["tier"])
    rule = next((r for r in ruleset.deadlines if matches(r.match, dfacts)), None)
    deadlines: dict[str, datetime] = {}
    cal = "24h"
    if rule is None:
        lines.append("no deadline rule matched: no deadlines")
    else:
        matched.append(rule.id)
        limits = dict(rule.stages or {})
        cal = rule.calendar or "24h"
        if rule.from_type:
            typed = {s: v for s, v in (getattr(t, "deadlines", None) or {}).items()
                     if s in STAGES}
            limits = {**limits, **typed}
            cal = rule.calendar or getattr(t, "calendar", None) or "24h"
        deadlines = stage_deadlines(now, limits, cal, rule.scale)
        scale = f", x{rule.scale:g}" if rule.scale != 1 else ""
        lines.append(f"deadlines <- {rule.id} ({cal} calendar{scale}): "
                     + ", ".join(f"{s} {limits[s]}" for s in STAGES if s in limits))
    return {**out, "calendar": cal, "deadlines": deadlines, "rules": matched,
            "winner": None if src["department"] == "default" else src["department"],
            "explanation": lines}


def stage_deadlines(now: datetime, limits: dict[str, str], calendar: str,
                    scale: float = 1.0) -> dict[str, datetime]:
    """Due times of the stages: a limit runs from ``now``, or from the previous stage's
    deadline when written ``+...``; every limit is multiplied by ``scale``."""
    out: dict[str, datetime] = {}
    prev = now
    for s in STAGES:
        text = limits.get(s)
        if text is None:
            continue
        start = prev if text.startswith("+") else now
        span = scaled(duration(text.lstrip("+")), scale, calendar)
        prev = out[s] = due_at(start, span, calendar)
    return out


def _type_line(code: str, f: Facts, taxonomy: Any) -> str:
    t = taxonomy.types[code]
    return (f"type {code} {getattr(t, 'name_zh', '')} ({getattr(t, 'name_en', '')}): "
            f"category {f.category}, {f.kind}, handling {f.handling}; zones "
            f"[{', '.join(sorted(f.zones))}], street {f.street}, district {f.district}")


def _triage(now: datetime, ruleset: RuleSet, why: str, code: str | None,
            inputs: dict[str, Any]) -> Decision:
    tr = ruleset.triage
    return Decision(
        type_code=None, department=tr.department, tier=tr.tier, priority=tr.priority,
        handling="triage", calendar=tr.calendar,
        deadlines={"file": due_at(now, tr.file, tr.calendar)}, rules=[tr.id], winner=tr.id,
        ruleset_version=ruleset.version,
        explanation=[f"{why}: manual triage by {tr.department} (rule {tr.id}), "
                     f"file within {tr.file}"],
        inputs={**inputs, "type_code": code},
    )
