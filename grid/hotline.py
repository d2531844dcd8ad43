"""The hotline loop (12345 / 962121 / 12319): replies and the callback (回访). Pure.

A report with a hotline ``ticket`` opens a case whose every state change is answered back
to the hotline under the ticket number (:func:`reply_for`, published on
``grid.hotline-replies.v1``). After closing, a ``callback`` command records the citizen's
satisfaction; "not satisfied" within ``callback_window`` reopens the case for rework, at most
``max_reopens`` times (``grid/data/hotline.yaml``; the lifecycle applies it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from grid.events import (
    CallbackData,
    DepartmentData,
    DispatchedData,
    PartData,
    ReopenedData,
    ReworkData,
)
from grid.models import Case, CaseEvent, CaseState, HotlineReply

CONFIG_FILE = Path(__file__).parent / "data" / "hotline.yaml"
SATISFACTION_ZH = {"satisfied": "满意", "basically_satisfied": "基本满意",
                   "not_satisfied": "不满意"}
# case event types that are a state change worth answering (warnings, merges are not)
ANSWERED = frozenset({"filed", "triaged", "rejected", "dispatched", "redispatched", "accepted",
                      "disposed", "returned", "rework", "verified", "closed", "self_closed",
                      "classified", "callback", "reopened", "extension_granted", "merged",
                      "transferred", "follow_up_opened"})
STATUS_ZH = {
    CaseState.REPORTED: "已受理", CaseState.TRIAGE: "待分类", CaseState.FILED: "已立案",
    CaseState.REJECTED: "不予立案", CaseState.MERGED: "已合并", CaseState.DISPATCHED: "已派遣",
    CaseState.ACCEPTED: "处置中", CaseState.DISPOSED: "已处置待核查",
    CaseState.RETURNED: "重新派遣中", CaseState.REWORK: "返工中", CaseState.VERIFIED: "已核查",
    CaseState.CLOSED: "已结案", CaseState.TRANSFERRED: "已移交应急联动处置",
}


@dataclass(frozen=True)
class HotlineConfig:
    callback_window: timedelta
    max_reopens: int


def _span(text: str) -> timedelta:
    n, unit = int(text[:-1]), text[-1]
    return timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: n})


@cache
def config() -> HotlineConfig:
    """The shipped hotline settings (``grid/data/hotline.yaml``)."""
    data: Any = yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))
    return HotlineConfig(_span(str(data["callback_window"])), int(data["max_reopens"]))


def reply_for(case: Case, e: CaseEvent, departments: Any = None) -> HotlineReply | None:
    """The reply for event ``e`` of ``case`` (after folding it), or ``None`` when the case
    has no hotline ticket or the event changes nothing the citizen sees."""
    from grid.models import TERMINAL_STATES

    ticket = case.report.ticket
    if ticket is None or e.type not in ANSWERED:
        return None
    d = e.data
    dispatched = d if isinstance(d, DispatchedData) else None
    dept = department_of(e) or case.department
    unit_name = dispatched.unit_name if dispatched else None
    if unit_name is None and dept == case.department and case.decision is not None:
        unit_name = case.unit_name
    who = (departments[dept].name_zh if departments is not None and dept in departments
           else dept)
    callback = d if isinstance(d, CallbackData) else None
    satisfaction = callback.satisfaction if callback else None
    msg = f"工单{ticket.ticket_no}：{STATUS_ZH.get(e.state_to, e.state_to.value)}"
    if e.type in ("dispatched", "redispatched") and who:
        msg += f"，承办：{unit_name or who}"
    elif satisfaction:
        msg += f"，回访：{SATISFACTION_ZH[satisfaction]}"
        if callback and callback.comment:
            msg += f"（{callback.comment}）"
    elif e.type == "reopened":
        msg += "，市民不满意，案件重新处置"
    elif e.type == "transferred" and case.decision and case.decision.transfer:
        msg += "，已转" + "、".join(x.name_zh for x in case.decision.transfer.services)
    elif e.reason and e.type in ("rejected", "returned", "rework"):
        msg += f"（{e.reason}）"
    return HotlineReply(
        reply_id=e.event_id, hotline=ticket.hotline, ticket_no=ticket.ticket_no,
        case_id=case.case_id, report_id=case.report.rid, event=e.type,
        status="closed" if e.state_to in TERMINAL_STATES else "open", state=e.state_to,
        status_zh=STATUS_ZH.get(e.state_to, e.state_to.value), message=msg,
        department=dept, unit=dispatched.unit if dispatched and dispatched.unit is not None
        else case.unit if dept == case.department else None,
        unit_name=unit_name, satisfaction=satisfaction, at=e.at)


def department_of(e: CaseEvent) -> str | None:
    """The department an event names (work orders, returns, rework, reopening, parts)."""
    d = e.data
    if isinstance(d, DispatchedData | DepartmentData | ReworkData | ReopenedData | PartData):
        return d.department
    return None


__all__ = ["HotlineConfig", "HotlineReply", "config", "reply_for"]
