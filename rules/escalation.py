"""Escalation ladder: deadline warnings, supervision orders (督办) and arbitration. Pure.

:func:`check_deadlines` says what is due *now* for one case and is idempotent with respect to
the case's ``warned`` (stages), ``supervised`` (``"stage@level"`` keys, as the lifecycle
records them), ``level`` and ``arbitration`` fields: once the lifecycle has applied a step,
the same call no longer returns it.

* Only the stage the case is working on (see :data:`grid.models.CURRENT_STAGE`: dispose while it is
  dispatched, verify once disposed, ...) is watched. When its limit is used up to
  ``warn_at`` (e.g. 80 %) it gets one warning.
* At the deadline it gets a supervision order one level up the ladder (street → district →
  city). If the stage stays overdue, a further order one more level up follows every
  ``reissue_after`` × the stage's limit; a case already at the top stays there and an order
  for the same stage and level is never issued twice.
* A case returned ``arbitration_after_returns`` times or more goes to command-center
  arbitration (once).

A staged legal process (依法查处) is supervised stage by stage: while the department works
on it, the stage watched is the open legal stage (立案调查, 告知, ...), its limit running from
the stage's opening to its due time in the process calendar; orders are keyed
``"notice@district"`` and so on.

Stage limits run from the case's creation (the receipt of the report), as in :func:`decide`,
and in the stage's calendar: only the disposal follows a working calendar (the command center
and the supervisors work around the clock, :func:`grid.deadlines.stage_calendar`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from grid.deadlines import stage_calendar
from grid.models import CURRENT_STAGE, Case, CaseState
from rules.ruleset import RuleSet
from rules.timing import share

S = CaseState
# the stage a case is working on in each open state: only that stage is warned and supervised
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
    """The escalation steps due for ``case`` at ``now`` (deadline step, then arbitration)."""
    if not case.is_open:
        return []
    cfg = ruleset.escalation
    calendar = case.decision.calendar if case.decision else "24h"
    steps: list[EscalationStep] = []
    stage = CURRENT_STAGE.get(case.state)
    due = case.deadlines.get(stage) if stage else None
    # limits run from the receipt, or from the follow-up that opened the grid's part of a
    # transferred emergency
    start = case.follow_up_at or case.created_at
    cal = stage_calendar(stage or "", calendar)
    legal = case.legal_stage
    if stage == "dispose" and legal is not None and case.decision is not None:
        stage, due, start, cal = legal.stage, legal.due, legal.opened_at, \
            case.decision.legal_calendar
    if stage is not None and due is not None:
        used = share(start, due, now, cal)
        step = _deadline_step(case, stage, due, used, ruleset)
        if step is not None:
            steps.append(step)
    if case.returns >= cfg.arbitration_after_returns and not case.arbitration:
        steps.append(EscalationStep(
            "arbitration", None, None, None,
            f"returned {case.returns} times (>= {cfg.arbitration_after_returns}): "
            f"arbitration by {cfg.arbitration_department}", cfg.id))
    return steps


def _deadline_step(case: Case, stage: str, due: datetime, used: float,
                   ruleset: RuleSet) -> EscalationStep | None:
    cfg = ruleset.escalation
    orders = [k for k in case.supervised if k == stage or k.startswith(stage + "@")]
    if used < 1.0:
        if used >= cfg.warn_at and stage not in case.warned and not orders:
            return EscalationStep("warning", stage, None, due,
                                  f"{stage} deadline {due.isoformat()}: {used:.0%} of the "
                                  f"limit used (warn at {cfg.warn_at:.0%})", cfg.id)
        return None
    # overdue: the n-th order for a stage is due at deadline + (n-1) * reissue_after * limit
    if orders and (cfg.reissue_after is None or used < 1.0 + len(orders) * cfg.reissue_after):
        return None
    ladder = list(cfg.ladder)
    level = case.level if case.level in ladder else ladder[0]
    target = ladder[min(ladder.index(level) + 1, len(ladder) - 1)]
    if f"{stage}@{target}" in case.supervised:
        return None  # already at the top of the ladder for this stage
    return EscalationStep("supervision_order", stage, target, due,
                          f"{stage} overdue since {due.isoformat()}: supervision order, "
                          f"{level} -> {target}", cfg.id)
