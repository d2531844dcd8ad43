"""Escalation ladder: deadline warnings, supervision orders (督办) and arbitration. Pure.

:func:`check_deadlines` says what is due *now* for one case and is idempotent with respect to
the case's ``warned`` (stages), ``supervised`` (``"stage@level"`` keys, as the lifecycle
records them), ``level`` and ``arbitration`` fields: once the lifecycle has applied a step,
the same call no longer returns it.

* A stage still open (see :data:`OPEN_STAGES`) whose limit is used up to ``warn_at`` (e.g.
  80 %) gets one warning.
* At the deadline it gets a supervision order one level up the ladder (street → district →
  city). If the stage stays overdue, a further order one more level up follows every
  ``reissue_after`` × the stage's limit; a case already at the top stays there and an order
  for the same stage and level is never issued twice.
* A case returned ``arbitration_after_returns`` times or more goes to command-center
  arbitration (once).

Stage limits run from the case's creation (the receipt of the report), as in :func:`decide`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from grid.models import Case, CaseState
from rules.ruleset import RuleSet
from rules.timing import share

S = CaseState
# states in which a stage's work is still outstanding
OPEN_STAGES: dict[str, frozenset[CaseState]] = {
    "file": frozenset({S.REPORTED, S.TRIAGE}),
    "dispatch": frozenset({S.REPORTED, S.TRIAGE, S.FILED, S.RETURNED}),
    "dispose": frozenset({S.REPORTED, S.TRIAGE, S.FILED, S.RETURNED, S.DISPATCHED,
                          S.ACCEPTED, S.REWORK}),
    "verify": frozenset({S.REPORTED, S.TRIAGE, S.FILED, S.RETURNED, S.DISPATCHED,
                         S.ACCEPTED, S.REWORK, S.DISPOSED}),
}
STAGE_ORDER = ("file", "dispatch", "dispose", "verify")


@dataclass(frozen=True)
class EscalationStep:
    """One thing due now: a warning, a supervision order or arbitration."""

    kind: Literal["warning", "supervision_order", "arbitration"]
    stage: str | None  # None for arbitration
    level: str | None  # the level the order goes to (None for warnings)
    due: datetime | None  # the stage deadline concerned
    reason: str
    rule: str  # the escalation config id

    @property
    def key(self) -> str:
        """What the case records once applied: the stage (warnings) or ``stage@level``."""
        if self.kind == "warning":
            return self.stage or ""
        if self.kind == "arbitration":
            return "arbitration"
        return f"{self.stage}@{self.level}"


def check_deadlines(case: Case, now: datetime, ruleset: RuleSet) -> list[EscalationStep]:
    """The escalation steps due for ``case`` at ``now`` (stage order; arbitration last)."""
    if not case.is_open:
        return []
    cfg = ruleset.escalation
    calendar = case.decision.calendar if case.decision else "24h"
    ladder = list(cfg.ladder)
    level = case.level if case.level in ladder else ladder[0]
    steps: list[EscalationStep] = []
    for stage in sorted(case.deadlines, key=_stage_pos):
        due = case.deadlines[stage]
        if case.state not in OPEN_STAGES.get(stage, frozenset()):
            continue
        used = share(case.created_at, due, now, calendar)
        orders = [k for k in case.supervised if k == stage or k.startswith(stage + "@")]
        if used < 1.0:
            if used >= cfg.warn_at and stage not in case.warned and not orders:
                steps.append(EscalationStep(
                    "warning", stage, None, due,
                    f"{stage} deadline {due.isoformat()} {used:.0%} used "
                    f"(warn at {cfg.warn_at:.0%})", cfg.id))
            continue
        # overdue: the n-th order is due at deadline + (n-1) * reissue_after * limit
        if orders and (cfg.reissue_after is None
                       or used < 1.0 + len(orders) * cfg.reissue_after):
            continue
        target = ladder[min(ladder.index(level) + 1, len(ladder) - 1)]
        key = f"{stage}@{target}"
        if key in case.supervised:
            continue  # already at the top of the ladder for this stage
        steps.append(EscalationStep(
            "supervision_order", stage, target, due,
            f"{stage} overdue since {due.isoformat()}: supervision order, "
            f"{level} -> {target}", cfg.id))
        level = target
    if case.returns >= cfg.arbitration_after_returns and not case.arbitration:
        steps.append(EscalationStep(
            "arbitration", None, None, None,
            f"returned {case.returns} times (>= {cfg.arbitration_after_returns}): "
            f"arbitration by {cfg.arbitration_department}", cfg.id))
    return steps


def _stage_pos(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)
