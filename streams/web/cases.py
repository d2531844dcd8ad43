"""Cases: one case, the filtered lists of cases and of a department's work orders (keyset
pages from the read store, :mod:`store.reader`)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from grid import auth
from grid.auth import Principal
from grid.events import AnyCaseEvent
from grid.models import Case, CaseEvent, CaseState
from store.reader import TOTAL_CAP
from streams.web.bodies import Page
from streams.web.common import (
    API,
    AUTH,
    CURSOR,
    Api,
    HttpError,
    Param,
    Route,
    guard,
    json_response,
    limit_param,
    parse_bool,
    parse_limit,
    to_datetime,
)

OPEN_WORK = (CaseState.DISPATCHED, CaseState.ACCEPTED, CaseState.REWORK)


class CaseView(Case):
    """``GET /api/v1/cases/{case_id}``: the case as the engine holds it (``grid.case/2``,
    without ``recent``, the engine's own) with its whole ``history`` (every event, from the
    read store), ``overdue_stages`` and ``links``."""

    recent: SkipJsonSchema[list[AnyCaseEvent]] = Field(default_factory=list, exclude=True)
    history: list[AnyCaseEvent] = Field(default_factory=list)  # every event, in order
    overdue: list[str] = Field(default_factory=list, alias="overdue_stages")
    links: dict[str, str] = Field(default_factory=dict)


async def get_case(api: Api, request: web.Request) -> web.Response:
    """One case: state, placement, decision with explanation, deadlines, history."""
    p = api.principal(request)
    case, history = await api.load_case_and_history(request.match_info["case_id"])
    guard(auth.check_read, p, case.placement, case.department, case.reporters,
          auth.holders_of(case))
    return json_response(case_json(api, case, history))


def case_json(api: Api, case: Case, history: list[CaseEvent]) -> dict[str, Any]:
    out = case.model_dump(mode="json", by_alias=True, exclude={"recent"})
    out["history"] = [e.model_dump(mode="json", by_alias=True) for e in history]
    out["overdue_stages"] = case.overdue_stages(api.now())
    out["links"] = {"self": f"{API}/cases/{case.case_id}",
                    "actions": f"{API}/cases/{case.case_id}/actions"}
    return out


def filters(api: Api, p: Principal, q: dict[str, str]) -> dict[str, Any]:
    """The read store's filters for a list request by ``p`` (its scope included); 422 for
    a bad parameter, 403 for a department asking for another's cases."""
    overdue = parse_bool(q.get("overdue"), "overdue")
    states = {s for s in (q.get("state") or "").split(",") if s}
    bad = states - {s.value for s in CaseState} - {"open"}
    if bad:
        raise HttpError(422, f"unknown state(s) {', '.join(sorted(bad))}", errors=[
            {"field": "state", "message": "one of " + ", ".join(s.value for s in CaseState)
             + ", open"}])
    dept = q.get("department")
    own_department = p.role == "department" and p.city_wide
    holder = None
    if own_department:  # the cases it (or its unit) holds a work order on, lead or assisting
        if dept and dept != p.department:
            raise HttpError(403, f"department {p.department!r} may list only its own cases")
        dept, holder = None, (p.department, getattr(p, "unit", None))
    times = {}
    for name in ("since", "until"):
        if q.get(name):
            t = to_datetime(q[name])
            if t is None or t.tzinfo is None:
                raise HttpError(422, f"{name} must be ISO 8601 with a UTC offset", errors=[
                    {"field": name, "message": "e.g. 2026-05-01T00:00:00+08:00"}])
            times[name] = t
    return {"district": q.get("district") or None, "street": q.get("street") or None,
            "department": dept or None, "unit": q.get("unit") or None, "holder": holder,
            "type_code": q.get("type") or None,
            "state": states or None, "overdue": overdue, "now": api.now(),
            "scope": None if own_department else p,
            "reporter": p.name if p.role == "integration" else None, **times}


def page_of(api: Api, p: Principal, q: dict[str, str]) -> dict[str, Any]:
    """A page of cases for ``p`` (blocking: the read store)."""
    limit = parse_limit(q)
    try:
        cases, nxt, total = api.g.read_store.page(limit, q.get("cursor") or None,
                                                  **filters(api, p, q))
    except ValueError as err:
        raise HttpError(422, str(err), errors=[
            {"field": "cursor", "message": "use next_cursor from the previous page"}]
        ) from None
    now = api.now()
    items = []
    for c in cases:
        row = c.to_dict(now)
        row.pop("reporters", None)
        items.append(row)
    capped = total is not None and total > TOTAL_CAP
    return {"items": items, "count": len(items),
            "total": TOTAL_CAP if capped else total, "total_capped": capped,
            "next_cursor": nxt}


async def list_cases(api: Api, request: web.Request) -> web.Response:
    """Cases filtered and paged, newest first.

    Filters: district, street, department, unit, type, state, overdue and creation time
    (since/until); keyset pages (cursor). Only cases in the caller's scope."""
    p = api.principal(request)
    return json_response(await asyncio.to_thread(page_of, api, p, dict(request.query)))


async def work_orders(api: Api, request: web.Request) -> web.Response:
    """A department's open work orders (dispatched, accepted or in rework)."""
    p = api.principal(request)
    dept = request.query.get("department") or (p.department if p.role == "department"
                                                else None)
    if not dept:
        raise HttpError(422, "department is required", errors=[
            {"field": "department", "message": "is required (a department id)"}])
    if dept not in api.taxonomy.departments:
        raise HttpError(422, f"unknown department {dept!r}", errors=[
            {"field": "department", "message": "not a department id"}])
    guard(auth.check_work_orders, p, dept)
    q = dict(request.query, department=dept, state=",".join(s.value for s in OPEN_WORK))
    page = await asyncio.to_thread(page_of, api, p, q)
    page["items"] = [{"work_order_id": s.get("work_order_id")
                      or f"{s['case_id']}:{s.get('dispatches') or 1}", **s}
                     for s in page["items"]]
    return json_response(page)


_STATES = ", ".join(s.value for s in CaseState)
_TIME = {"type": "string", "format": "date-time"}
# Only what the code checks is a constraint here (district, street and type are matched as
# given: another value finds nothing).
LIST_PARAMS = (
    Param("district", "district code (6 digits, e.g. 310110)"),
    Param("street", "street code (9 digits, e.g. 310110012)"),
    Param("state", f"comma-separated: {_STATES}, or 'open'"),
    Param("overdue", "true: only cases past a deadline; false: only those within them",
          {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]}),
    Param("department", "department id (the lead's)"),
    Param("unit", "registry unit id of the lead (e.g. 310110012.housing)"),
    Param("type", "type code, e.g. 0101"),
    Param("since", "created at or after (ISO 8601 with an offset)", _TIME),
    Param("until", "created before (ISO 8601 with an offset)", _TIME),
    limit_param(), CURSOR)

ROUTES = [
    Route("GET", f"{API}/cases", list_cases, {
        200: ("a page", Page), **AUTH,
        422: "bad filter: unknown state, overdue not a boolean, since/until without an "
             "offset, limit out of range, bad cursor"},
          params=LIST_PARAMS, tag="cases"),
    Route("GET", f"{API}/cases/{{case_id}}", get_case, {
        200: ("the case (with its history, overdue_stages and links)", CaseView), **AUTH,
        404: "no such case"},
          params=(Param("case_id", "case id (street code first)", where="path",
                        required=True),), tag="cases"),
    Route("GET", f"{API}/work-orders", work_orders, {
        200: ("a page of work orders (case summaries with work_order_id)", Page), **AUTH,
        422: "missing or unknown department, bad limit or cursor"},
          params=(Param("department", "department id (default: the token's)"),
                  limit_param(), CURSOR), tag="work orders"),
]
