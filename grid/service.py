"""Service layer: the handlers the stream processor calls. Pure (no Kafka, no HTTP):
inputs are bytes/models and the current case state, outputs are :class:`Effects` that the
adapter in ``streams/`` publishes and stores.

Two stages, so that case state can be partitioned by street:

1. :meth:`Engine.intake` (stateless, batched): parse → locate (vectorised) → classify →
   decide. Valid reports become :class:`Located` messages keyed by street; bad ones become
   :class:`DeadLetter` entries with a machine-readable reason.
2. :meth:`Engine.on_located` / :meth:`Engine.on_command` (stateful, per street partition):
   idempotency by report id, duplicate merging, the case lifecycle, work orders and alerts.
   :meth:`Engine.escalations` turns overdue deadlines into commands.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from grid import lifecycle
from grid.deadlines import SHANGHAI
from grid.events import (
    CommandRejectedData,
    CommandRejectedEvent,
    SupervisedEvent,
    WarnedEvent,
)
from grid.hotline import HotlineReply, reply_for
from grid.intake import DLQ_SCHEMA as DLQ_SCHEMA
from grid.intake import ORIGINAL_KEPT as ORIGINAL_KEPT
from grid.intake import DeadLetter, Rejection, dead_letter, parse_report
from grid.models import (
    Action,
    Alert,
    Case,
    CaseEvent,
    CaseState,
    Command,
    Decision,
    Placement,
    Report,
    WorkOrder,
)
from grid.names import Names

LOCATED_SCHEMA = "grid.located/1"


class Located(BaseModel):
    """A validated, located, classified and decided report (internal topic, keyed by street)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: str = Field(LOCATED_SCHEMA, alias="schema")
    report: Report
    placement: Placement
    decision: Decision
    category: str | None = None
    kind: str | None = None
    classification: dict[str, Any] | None = None  # when the type came from the classifier
    received_at: datetime
    via: str | None = None  # the principal whose intake channel brought it (Channel)


@dataclass(frozen=True)
class Channel:
    """Where reports come in: the one principal allowed to write there, and the sources it
    may send (``None``: any; the HTTP API checks each caller's source itself)."""

    name: str
    principal: str
    sources: frozenset[str] | None = None

    def refuses(self, source: str) -> str | None:
        """Why a report with ``source`` may not come in here, in words; ``None`` if it may."""
        if self.sources is None or source in self.sources:
            return None
        return (f"{self.principal!r} writes {self.name} and may send reports with source "
                f"{', '.join(sorted(self.sources))}, not {source!r}")


@dataclass
class Effects:
    """What handling one input produced: the new case state and messages to publish."""

    case: Case | None = None
    events: list[CaseEvent] = field(default_factory=list)
    work_orders: list[WorkOrder] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    replies: list[HotlineReply] = field(default_factory=list)  # to the hotline (12345 …)
    merged_into: str | None = None  # case id a duplicate report was merged into
    duplicate_delivery: bool = False  # the same report id / command id was seen before
    # (then events/work_orders/alerts are the ones it caused the first time, same ids, if it
    # was the case's latest input; none for an older one: grid.lifecycle.redelivered)
    report: Report | None = None  # the report this input brought in (opened or merged)
    conflict: str | None = None  # a known report id came back with other content: why


def report_fingerprint(report: Report) -> str:
    """A digest of everything the reporter sent: two reports with one id and different
    fingerprints are a conflict, not a redelivery."""
    return hashlib.sha256(report.model_dump_json(by_alias=True).encode()).hexdigest()[:32]


class Engine:
    """Holds the loaded taxonomy, locator, rules and classifier; stateless between calls."""

    def __init__(self, taxonomy: Any, locator: Any, ruleset: Any, classifier: Any = None,
                 classify_threshold: float | None = None) -> None:
        from rules import decide  # local: keeps `grid` importable without the rules package

        self.taxonomy = taxonomy
        self.locator = locator
        self.ruleset = ruleset
        self._decide = decide
        if classifier is None:
            from grid.classifier import Classifier

            classifier = Classifier(taxonomy)
        self.classifier = classifier
        if classify_threshold is None:
            from grid.classifier import DEFAULT_THRESHOLD as classify_threshold
        self.classify_threshold = classify_threshold
        # the responsible-unit registry of the layer set (geodata.registry), if it has one
        self.registry = getattr(locator, "registry", None)

    @classmethod
    def load(cls, geodata: str | None = None, rules_dir: str | None = None,
             extra_taxonomy: Iterable[str] = ()) -> Engine:
        from pathlib import Path

        from geodata.locator import Locator
        from grid.taxonomy import load_taxonomy
        from rules import load_ruleset

        taxonomy = load_taxonomy([Path(p) for p in extra_taxonomy])
        return cls(taxonomy, Locator.load(geodata), load_ruleset(rules_dir))

    # -- stage 1: stateless, batched -----------------------------------------------------

    def intake(self, raws: Sequence[bytes | None], now: datetime,
               channels: Sequence[Channel | None] | None = None,
               ) -> tuple[list[Located], list[DeadLetter]]:
        """:meth:`intake_each`'s results split into the located reports and the dead letters
        (each list in input order)."""
        located: list[Located] = []
        dead: list[DeadLetter] = []
        for r in self.intake_each(raws, now, channels):
            (dead if isinstance(r, DeadLetter) else located).append(r)  # type: ignore[arg-type]
        return located, dead

    def intake_each(self, raws: Sequence[bytes | None], now: datetime,
                    channels: Sequence[Channel | None] | None = None,
                    sent: Sequence[datetime | None] | None = None,
                    ) -> list[Located | DeadLetter]:
        """Parse, locate (one vectorised call), classify and decide a batch of raw reports:
        one result per raw report, in order (``None``: a record without a value,
        dead-lettered as ``null_value``). ``channels`` (one per raw report): where each came
        in; a source its channel's principal may not send is dead-lettered as
        ``source_not_allowed``, and the rest record the principal. ``sent`` (one per raw
        report, None: unknown): when each was written to its topic. A report is too far in
        the future measured from the earlier of that and ``now``, so one read again later
        (after a crash) is accepted or rejected as it was the first time."""
        out: list[Located | DeadLetter | None] = [None] * len(raws)
        reports: list[Report] = []
        at: list[int] = []  # the input index of each parsed report
        via: list[str | None] = []
        for i, raw in enumerate(raws):
            channel = channels[i] if channels else None
            if raw is None:
                out[i] = dead_letter(None, "null_value", "the record has no value (a "
                                     "tombstone): a report is a JSON object", now)
                continue
            written = sent[i] if sent else None
            r = parse_report(raw, taxonomy=self.taxonomy,
                             now=now if written is None or written > now else written)
            if isinstance(r, Rejection):
                out[i] = dead_letter(raw, r.reason, r.message, now,
                                     [e if isinstance(e, dict) else e.model_dump()
                                      for e in r.errors], r.report_id)
            elif channel is not None and (why := channel.refuses(r.source)):
                out[i] = dead_letter(raw, "source_not_allowed", why, now,
                                     [{"field": "source", "message": why}], r.rid)
            else:
                reports.append(r)
                at.append(i)
                via.append(channel.principal if channel else None)
        placements, errors = self._locate(reports) if reports else ([], [])
        for i, report, place, err, who in zip(at, reports, placements, errors, via,
                                              strict=True):
            raw = raws[i] or b""
            if err is not None:
                out[i] = dead_letter(raw, "invalid_coordinates", f"location: {err}", now,
                                     [{"field": "location", "message": err}], report.rid)
            elif place is None:
                out[i] = dead_letter(
                    raw, "outside_coverage",
                    f"location ({report.location.lon}, {report.location.lat}, "
                    f"{report.location.crs}) is outside every district this engine covers",
                    now, report_id=report.rid)
            else:
                msg = self.decide(report, place, now)
                out[i] = msg.model_copy(update={"via": who}) if who else msg
        return out  # type: ignore[return-value]  # every index was filled above

    def _locate(self, reports: Sequence[Report]
                ) -> tuple[list[Placement | None], list[str | None]]:
        """One vectorised call; if a coordinate is refused, locate one by one to isolate it."""
        from geodata.coords import CoordinateError

        lons = [r.location.lon for r in reports]
        lats = [r.location.lat for r in reports]
        crs = [r.location.crs for r in reports]
        try:
            return self.locator.locate_many(lons, lats, crs), [None] * len(reports)
        except CoordinateError:
            places: list[Placement | None] = []
            errors: list[str | None] = []
            for lon, lat, c in zip(lons, lats, crs, strict=True):
                try:
                    places.append(self.locator.locate_many([lon], [lat], c)[0])
                    errors.append(None)
                except CoordinateError as err:
                    places.append(None)
                    errors.append(str(err))
            return places, errors

    def decide(self, report: Report, place: Placement, now: datetime,
               type_code: str | None = None, follow_up: bool = False) -> Located:
        """Classify (if needed) and route one located report. A type guessed by the
        classifier goes through the rule set's human check (``confirm``); ``follow_up``:
        the grid's follow-up of a transferred emergency."""
        from rules.engine import Guess

        classification = None
        guess = None
        type_code = type_code or report.type_code
        if type_code is None:
            ranked = self.classifier.classify(report.description)
            best = self.classifier.best(report.description, self.classify_threshold)
            classification = {
                "type_code": best.type_code if best else None,
                "score": round(best.score, 3) if best else 0.0,
                "matched": list(best.matched) if best else [],
                "candidates": [c.type_code for c in ranked],
            }
            type_code = best.type_code if best else None
            if best is not None:
                guess = Guess(best.score, tuple((c.type_code, c.score, tuple(c.matched))
                                                for c in ranked))
        decision = self._decide(report, place, now, self.ruleset, taxonomy=self.taxonomy,
                                type_code=type_code, registry=self.registry, guess=guess,
                                follow_up=follow_up)
        t = self.taxonomy.types.get(type_code) if type_code else None
        return Located(report=report, placement=place, decision=decision,
                       category=t.category if t else None, kind=t.kind if t else None,
                       classification=classification, received_at=now)

    # -- stage 2: stateful per street ----------------------------------------------------

    def on_located(self, msg: Located, existing: Case | None, open_nearby: Iterable[Case],
                   now: datetime) -> Effects:
        """Open a case for a new report, merge a duplicate, or ignore a redelivery.

        ``existing``: the case this report id already belongs to (redelivery), if any.
        ``open_nearby``: open cases of the same street, candidates for duplicate merging.

        A report delivered again (``duplicate_delivery``) changes nothing. If it was the
        case's latest input, its events (and work orders, alerts) are re-emitted with their
        original ids (consumers dedupe by id): on the at-least-once fallback a worker killed
        while its output was being sent gets that input again. An older one re-emits
        nothing: its output went out with (Kafka: in the transaction of) the case state
        that a later input of the case was read from — see :func:`grid.lifecycle.redelivered`.
        """
        if existing is not None:
            fx = self._effects(existing, lifecycle.redelivered(existing,
                                                               report_id=msg.report.rid))
            fx.duplicate_delivery = True
            stored = _fingerprint_in(existing, msg.report.rid)
            if stored is not None and stored != report_fingerprint(msg.report):
                fx.report = msg.report
                fx.conflict = (f"report_id {msg.report.rid} was used before for a report with "
                               f"other content (case {existing.case_id}); this one is not "
                               "applied: send a new report_id for a new report")
            return fx
        from rules import find_duplicate

        dup = None
        if msg.decision.type_code and not msg.decision.self_closed:
            dup = find_duplicate(msg.report, msg.placement, msg.decision.type_code,
                                 open_nearby, self.ruleset)
        if dup is not None:
            cmd = Command(command_id=f"merge:{msg.report.rid}", case_id=dup.case_id,
                          action=Action.MERGE, actor="engine", role="system",
                          report_id=msg.report.rid, reporter_id=msg.report.reporter_id,
                          fingerprint=report_fingerprint(msg.report),
                          reason="duplicate report merged", at=now)
            case, events = lifecycle.apply(dup, cmd, now)
            return Effects(case=case, events=events, merged_into=dup.case_id,
                           report=msg.report)
        case, events = lifecycle.open_case(msg.report, msg.placement, msg.decision, now,
                                           msg.category, msg.kind, via=msg.via)
        fx = self._effects(case, events)
        fx.report = msg.report
        return fx

    def on_command(self, cmd: Command, case: Case | None, now: datetime) -> Effects:
        """Apply a command; an illegal one yields a ``command_rejected`` event, not an error."""
        if case is None:
            ev = CommandRejectedEvent(
                event_id=f"{cmd.case_id}:rejected:{cmd.command_id}", case_id=cmd.case_id, seq=0,
                type="command_rejected", state_from=None, state_to=CaseState.REJECTED,
                actor=cmd.actor, role=cmd.role, at=now, reason=f"unknown case {cmd.case_id!r}",
                data=CommandRejectedData(command_id=cmd.command_id, action=cmd.action.value))
            return Effects(events=[ev])
        if lifecycle.already_applied(case, cmd.command_id):  # again: re-emit the latest's
            fx = self._effects(case, lifecycle.redelivered(case, command_id=cmd.command_id))
            fx.duplicate_delivery = True
            return fx
        decision = None
        if cmd.action in (Action.CLASSIFY, Action.FOLLOW_UP) and cmd.type_code:
            decision = self.decide(case.report, case.placement, now, cmd.type_code,
                                   follow_up=cmd.action is Action.FOLLOW_UP).decision
        unit_name = None
        if cmd.action is Action.DISPATCH:
            try:
                cmd, unit_name = self._with_unit(cmd, case)
            except lifecycle.IllegalTransition as err:
                return Effects(case=case, events=[lifecycle.rejection_event(case, cmd, err,
                                                                             now)])
        try:
            new, events = lifecycle.apply(case, cmd, now, decision=decision,
                                          extend=self._extend, unit_name=unit_name)
        except lifecycle.IllegalTransition as err:
            return Effects(case=case, events=[lifecycle.rejection_event(case, cmd, err, now)])
        return self._effects(new, events)

    def escalations(self, case: Case, now: datetime) -> list[Command]:
        """Warnings, supervision orders and arbitration that are due for ``case`` now."""
        from rules.escalation import check_deadlines

        out = []
        for step in check_deadlines(case, now, self.ruleset):
            action = Action.WARN if step.kind == "warning" else Action.SUPERVISE
            if step.kind == "arbitration":
                continue  # arbitration is raised by the lifecycle on the second return
            out.append(Command(
                command_id=f"{step.kind}:{case.case_id}:{step.stage}:{step.level or ''}",
                case_id=case.case_id, action=action, actor="engine", role="system",
                stage=step.stage, reason=step.reason, at=now, street=case.placement.street))
        return out

    # -- helpers -------------------------------------------------------------------------

    def _with_unit(self, cmd: Command, case: Case) -> tuple[Command, str | None]:
        """A (re-)dispatch names its unit, or goes to the registry's unit of the department at
        the case (the decision's, for the decision's department), and that unit's name.
        A unit the registry does not list for that department is refused."""
        dept = cmd.department or case.department
        reg = self.registry
        if cmd.unit is not None:
            u = reg.unit(cmd.unit) if reg is not None else None
            if u is None or u.department != dept:
                raise lifecycle.IllegalTransition(
                    case.state, cmd.action, f"unit {cmd.unit!r} is not a unit of {dept!r} "
                    "in the registry")
            return cmd, u.name_zh
        if reg is None or not dept or (case.decision and dept == case.decision.department):
            return cmd, None
        r = case.report
        res = reg.unit_for(dept, case.placement, r.component_id, r.component_code)
        return (cmd.model_copy(update={"unit": res.unit.unit_id}), res.unit.name_zh) if res \
            else (cmd, None)

    @functools.cached_property
    def names(self) -> Names:
        """Type, department and place names for messages people read (alerts)."""
        return Names.of_locator(self.locator, self.taxonomy)

    def duplicate_radius_m(self, type_code: str) -> float:
        """How far apart two reports of ``type_code`` may be and still be duplicates."""
        cfg = self.ruleset.duplicates
        return float(cfg.by_type.get(type_code, cfg).distance_m)

    @staticmethod
    def _extend(due: datetime, extra: Any, calendar: str) -> datetime:
        from grid.deadlines import default_calendar, extend

        return extend(due, extra, default_calendar(calendar))

    def _effects(self, case: Case, events: list[CaseEvent]) -> Effects:
        fx = Effects(case=case, events=events)
        for e in events:
            if e.type in ("dispatched", "redispatched"):
                fx.work_orders.extend(lifecycle.work_orders_for(case, e))
            reply = reply_for(case, e, self.taxonomy.departments)
            if reply is not None:
                fx.replies.append(reply)
            alert = _alert_for(case, e, self.names)
            if alert is not None:
                fx.alerts.append(alert)
        return fx


def _fingerprint_in(case: Case, report_id: str) -> str | None:
    """The fingerprint of report ``report_id`` as ``case`` first received it (None for a
    merge recorded before fingerprints were kept)."""
    if case.report.rid == report_id:
        return report_fingerprint(case.report)
    return next((m.fingerprint for m in case.merged if m.report_id == report_id), None)


# the event types that may raise an alert (:func:`_alert_for`)
_ALERTING = frozenset({"transferred", "filed", "classified", "follow_up_opened", "warned",
                       "supervised", "arbitration"})


def _alert_for(case: Case, e: CaseEvent, names: Names | None = None) -> Alert | None:
    """The alert an event raises, worded with names beside codes (``names``: else codes)."""
    if e.type not in _ALERTING:
        return None
    p = case.placement
    common: dict[str, Any] = dict(case_id=case.case_id, priority=case.priority, at=e.at,
                                  district=p.district,
                                  street=p.street, type_code=case.type_code)
    what = (f"{names.type(case.type_code)} in {names.place(p.street)}" if names
            else f"type {case.type_code} in street {p.street}")
    stage = e.data.stage if isinstance(e, SupervisedEvent | WarnedEvent) else None
    if e.type == "transferred" and case.decision and case.decision.transfer:
        tr = case.decision.transfer
        to = "、".join(f"{s.name_zh} {s.name_en}" for s in tr.services)
        said = f" «{case.report.description[:80]}»" if case.report.description else ""
        return Alert(alert_id=f"{e.event_id}:alert", kind="emergency_transfer",
                     level="district", message=f"紧急移交 emergency transfer → {to}: {what}"
                     f"{said} — not a grid case; follow up the aftermath", **common)
    if e.type in ("filed", "classified", "follow_up_opened") and case.decision \
            and case.decision.alert:  # also a key-supervision type a person confirmed
        due = case.decision.deadlines.get("dispose")
        by = f" — on site by {due.astimezone(SHANGHAI):%m-%d %H:%M}" if due else ""
        return Alert(alert_id=f"{e.event_id}:alert", kind="key_supervision", level=case.tier,
                     message=f"key supervision 重点监管: {what}{by}", **common)
    legal = next((x for x in case.legal if x.stage == stage), None) if stage else None
    if legal is not None:  # a legal-process stage: named, with its own deadline
        stage = f"{legal.stage} {legal.name_zh}"
    if e.type == "warned":
        due = legal.due if legal is not None else case.deadlines.get(stage) if stage else None
        by = f" (due {due.astimezone(SHANGHAI):%m-%d %H:%M})" if due else ""
        return Alert(alert_id=f"{e.event_id}:alert", kind="warning", level=case.level,
                     message=f"deadline warning 预警: stage {stage}{by} — {what}", **common)
    if isinstance(e, SupervisedEvent):
        parts = [names.department(x.department) if names else x.department
                 for x in case.open_parts]
        waiting = f", waiting for assisting 协办 {', '.join(parts)}" if parts else ""
        return Alert(alert_id=f"{e.event_id}:alert", kind="supervision_order",
                     level=e.data.level,
                     message=f"supervision order 督办: {stage} overdue, escalated to "
                             f"{e.data.level}{waiting} — {what}", **common)
    if e.type == "arbitration":
        return Alert(alert_id=f"{e.event_id}:alert", kind="arbitration", level="district",
                     message=e.reason, **common)
    return None


def dumps(model: BaseModel) -> bytes:
    """Serialise a wire model (by alias, JSON mode) to JSON bytes (pydantic-core)."""
    return model.model_dump_json(by_alias=True).encode()
