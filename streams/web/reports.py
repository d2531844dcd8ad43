"""Reports: submit one (``POST /api/v1/reports``) and follow it to its case."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from grid import auth
from grid.auth import Forbidden, Principal
from grid.intake import Rejection, parse_report
from grid.models import Report
from streams import topics as T
from streams.web.bodies import ReportAccepted, ReportCase
from streams.web.common import (
    API,
    AUTH,
    O311,
    PENDING_MAX,
    Api,
    HttpError,
    Param,
    Route,
    guard,
    json_response,
    report_uuid,
)


async def accept_report(api: Api, p: Principal, raw: bytes | dict[str, Any]) -> Report:
    """Validate (422), check source and scope (403), produce; the accepted report."""
    r = parse_report(raw, taxonomy=api.taxonomy, now=api.now(), max_bytes=api.max_body)
    if isinstance(r, Rejection):
        if r.reason == "too_large":
            raise HttpError(413, r.message, limit=api.max_body)
        raise HttpError(422, r.message, reason=r.reason, report_id=r.report_id,
                        errors=[e.model_dump() for e in r.errors])
    if r.source != p.source:
        raise HttpError(403, f"token {p.name!r} submits reports with source {p.source!r}, "
                        f"not {r.source!r}")
    if p.role == "supervisor" and r.reporter_id != p.name:
        raise HttpError(403, f"supervisor token {p.name!r} may not report as "
                        f"{r.reporter_id!r}")
    loc = r.location
    place = api.g.engine.locator.locate_many([loc.lon], [loc.lat], [loc.crs])[0]
    if place is None:
        raise HttpError(422, f"location ({loc.lon}, {loc.lat}, {loc.crs}) is outside every "
                        "district this engine covers", reason="outside_coverage",
                        report_id=r.rid, errors=[{"field": "location",
                                                  "message": "outside the covered area"}])
    try:
        auth.check_report(p, place)
    except Forbidden as err:
        raise HttpError(403, str(err)) from err
    before = api.pending.get(r.rid)
    if before is not None and before != r.model_dump(mode="json", by_alias=True):
        raise HttpError(409, f"report_id {r.rid} was used before for a report with other "
                        "content; send a new report_id for a new report",
                        report_id=r.rid, reason="duplicate_conflict")
    value = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    await api.g.send(T.REPORTS, r.rid.encode(), value)  # acknowledged before we answer
    api.pending[r.rid] = r.model_dump(mode="json", by_alias=True)
    while len(api.pending) > PENDING_MAX:
        api.pending.popitem(last=False)
    return r


async def post_report(api: Api, request: web.Request) -> web.Response:
    """Submit a report (wire format grid.report/1); 202 with a link to follow it.

    Validated before it is produced to grid.reports.v1. Idempotent: the same report again is
    202 and still one case."""
    p = api.principal(request)
    if p.role not in auth.REPORTING_ROLES:
        raise HttpError(403, f"role {p.role!r} may not submit reports")
    r = await accept_report(api, p, await api.body(request))
    url = f"{API}/reports/{r.rid}"
    return json_response({"report_id": r.rid, "status": "accepted", "report_url": url,
                          "open311_url": f"{O311}/requests/{r.rid}.json"},
                         status=202, headers={"Location": url})


async def get_report(api: Api, request: web.Request) -> web.Response:
    """The case a report became (404 'not yet processed' before)."""
    p = api.principal(request)
    rid = report_uuid(request.match_info["report_id"])
    case = await api.case_of_report(rid)
    if case is None:
        raise HttpError(404, f"report {rid} is not yet processed (or was rejected: see "
                        f"grid.reports.dlq.v1); retry shortly", report_id=rid,
                        processing="pending" if rid in api.pending else "unknown")
    guard(auth.check_read, p, case.placement, case.department, case.reporters,
          auth.holders_of(case))
    return json_response({
        "report_id": rid, "case_id": case.case_id, "case_url": f"{API}/cases/{case.case_id}",
        "state": case.state.value, "merged": case.report.rid != rid})


ROUTES = [
    Route("POST", f"{API}/reports", post_report, {
        202: ("accepted: report_id, report_url (also in Location)", ReportAccepted), **AUTH,
        409: "report_id used before for other content (reason duplicate_conflict)",
        413: "body over the size limit (64 KiB default, GRID_API_MAX_BYTES)",
        422: "validation errors, one per bad field; a report needs a type_code or a non-empty "
             "description; JSON types are strict; outside the covered area"},
          body=Report, tag="reports"),
    Route("GET", f"{API}/reports/{{report_id}}", get_report, {
        200: ("the case it became", ReportCase), **AUTH,
        404: "not yet processed (or rejected: grid.reports.dlq.v1, a DeadLetter), or not a "
             "UUID"},
          params=(Param("report_id", "report id (a UUID)", {"type": "string", "format": "uuid"},
                        where="path", required=True),), tag="reports"),
]
