"""Open311 GeoReport v2 (``/open311/v2``): services, and service requests as reports
(:mod:`grid.open311` maps between the two). Errors in the specification's format."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from grid import auth, open311
from grid.models import TERMINAL_STATES
from streams.web.common import (
    O311,
    Api,
    HttpError,
    Param,
    Route,
    as_uuid,
    json_response,
    loads,
    report_uuid,
    to_datetime,
)
from streams.web.reports import accept_report

FMT = "{fmt:json|xml}"  # the path's extension: the answer's format


def error_response(request: web.Request, status: int, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    """One error as GeoReport v2 errors, in the path's format."""
    errors = [(status, message)]
    if request.match_info.get("fmt") == "xml":
        return web.Response(text=open311.errors_xml(errors), status=status,
                            headers=headers, content_type="text/xml")
    return json_response(open311.errors_json(errors), status, headers)


def answer(request: web.Request, root: str, item: str, rows: list[dict[str, Any]],
           status: int = 200) -> web.Response:
    if request.match_info.get("fmt") == "xml":
        return web.Response(text=open311.to_xml(root, item, rows), status=status,
                            content_type="text/xml")
    return json_response(rows, status)


def bad_request(request: web.Request, errors: list[tuple[int, str]]) -> web.Response:
    """400 with the GeoReport errors of a request."""
    if request.match_info.get("fmt") == "xml":
        return web.Response(text=open311.errors_xml(errors), status=400,
                            content_type="text/xml")
    return json_response(open311.errors_json(errors), 400)


async def services(api: Api, request: web.Request) -> web.Response:
    """GeoReport v2 service list: the types (?lang=en for English names)."""
    rows = open311.services(api.taxonomy, request.query.get("lang", "zh"))
    return answer(request, "services", "service", rows)


async def service(api: Api, request: web.Request) -> web.Response:
    """GeoReport v2 service definition: our services take no extra attributes."""
    code = request.match_info["service_code"]
    if code not in api.taxonomy.types:
        raise HttpError(404, f"service_code {code!r} is not a service; the list: "
                        f"{O311}/services.json")
    if request.match_info.get("fmt") == "xml":
        return web.Response(text=open311.definition_xml(code), content_type="text/xml")
    return json_response({"service_code": code, "attributes": []})


async def post_request(api: Api, request: web.Request) -> web.Response:
    """Create a service request (form-encoded or JSON; api_key or a bearer token).

    The report's source is the key's (citizen app, 12345 hotline); 201 with the
    service_request_id (the report id)."""
    raw = await api.body(request)
    ctype = request.content_type or ""
    if "json" in ctype:
        params = loads(raw)
        if not isinstance(params, dict):
            raise HttpError(400, "expected a JSON object of GeoReport parameters")
    else:
        try:
            params = {k: v[0] for k, v in parse_qs(raw.decode("utf-8"),
                                                  keep_blank_values=True).items()}
        except UnicodeDecodeError:
            raise HttpError(400, "the form is not UTF-8") from None
    key = params.get("api_key") or request.query.get("api_key")
    p = api.principal(request, api_key=str(key) if key else None)
    if p.role not in auth.REPORTING_ROLES:
        raise HttpError(403, f"api key of role {p.role!r} may not create requests")
    try:
        report = open311.report_from_request(params, source=p.source, reporter=p.name,
                                             now=api.now())
    except open311.RequestError as err:
        return bad_request(request, err.errors)
    if p.role == "supervisor":
        report["reporter_id"] = p.name
    try:
        r = await accept_report(api, p, report)
    except HttpError as err:
        if err.status == 422 and err.body.get("errors"):
            return bad_request(request, [
                (400, f"{open311.param_of(e['field'])}: {e['message']}")
                for e in err.body["errors"]])
        raise
    t = api.taxonomy.types.get(r.type_code) if r.type_code else None
    notice = (f"已受理：{t.name_zh}" if t else "已受理，待分类") + "；可凭编号查询处理进度"
    return answer(request, "service_requests", "request", [
        {"service_request_id": r.rid, "service_notice": notice,
         "account_id": params.get("account_id")}], status=201)


async def request_row(api: Api, rid: str) -> dict[str, Any] | None:
    """The GeoReport status of report ``rid`` (None: neither stored nor pending)."""
    case = await api.case_of_report(rid)
    if case is None and rid not in api.pending:
        return None
    return open311.request_status(rid, case, api.taxonomy, api.pending.get(rid))


async def get_request(api: Api, request: web.Request) -> web.Response:
    """One service request by id (the report id)."""
    rid = report_uuid(request.match_info["rid"])
    row = await request_row(api, rid)
    if row is None:
        raise HttpError(404, f"service request {rid} not found (or not processed yet)")
    return answer(request, "service_requests", "request", [row])


async def list_requests(api: Api, request: web.Request) -> web.Response:
    """Service requests by ids, or by service_code, start/end date and status.

    At most 1000; default window: the last 90 days."""
    q = request.query
    if q.get("service_request_id"):
        rows = []
        for text in q["service_request_id"].split(",")[:200]:
            rid = as_uuid(text.strip())
            row = await request_row(api, rid) if rid else None
            if row is not None:
                rows.append(row)
        return answer(request, "service_requests", "request", rows)
    codes = {c for c in q.get("service_code", "").split(",") if c}
    status = {s for s in q.get("status", "").split(",") if s}
    if status - {"open", "closed"}:
        raise HttpError(400, "status must be open, closed or both (comma-separated)")
    try:
        end = datetime.fromisoformat(q["end_date"]) if q.get("end_date") else api.now()
        start = (datetime.fromisoformat(q["start_date"]) if q.get("start_date")
                 else end - timedelta(days=90))
    except ValueError:
        raise HttpError(400, "start_date/end_date must be ISO 8601 with an offset, e.g. "
                        "2026-05-01T00:00:00+08:00") from None
    if start.tzinfo is None or end.tzinfo is None:
        raise HttpError(400, "start_date/end_date need a UTC offset, e.g. +08:00")
    state = None if len(status) != 1 else "open" if "open" in status \
        else sorted(t.value for t in TERMINAL_STATES)
    found = await asyncio.to_thread(lambda: list(itertools.islice(
        api.g.read_store.scan(since=start, until=end + timedelta(microseconds=1),
                              type_code=codes or None, state=state), 1000)))
    now = api.now()
    out = []
    for s in (c.to_dict(now) for c in found):
        rid = s.get("report_id") or api.report_id_of(s["case_id"])
        if rid:
            out.append(summary_request(rid, s, api.taxonomy))
    return answer(request, "service_requests", "request", out)


def summary_request(rid: str, s: dict[str, Any], taxonomy: Any) -> dict[str, Any]:
    """A GeoReport request from a case summary of the read store."""
    code = s.get("type_code")
    t = taxonomy.types.get(code) if code else None
    dept = taxonomy.departments.get(s.get("department") or "")
    state = str(s.get("state"))
    open_ = state not in {x.value for x in TERMINAL_STATES}
    due = (s.get("deadlines") or {}).get("dispose")
    notes = open311.STATUS_NOTES.get(state, state)  # StrEnum keys match their values
    return {
        "service_request_id": rid, "status": "open" if open_ else "closed",
        "status_notes": notes.format(agency=dept.name_zh if dept else "—"),
        "service_name": t.name_zh if t else None, "service_code": code,
        "description": s.get("description"),
        "agency_responsible": dept.name_zh if dept else s.get("department"),
        "service_notice": None, "requested_datetime": open311.iso(to_datetime(s.get("created_at"))),
        "updated_datetime": open311.iso(to_datetime(s.get("updated_at"))),
        "expected_datetime": open311.iso(to_datetime(due)) if open_ else None,
        "address": s.get("address"), "address_id": None, "zipcode": None,
        "lat": s.get("lat"), "long": s.get("lon"), "media_url": None,
    }


_TIME = {"type": "string", "format": "date-time"}
ROUTES = [
    Route("GET", f"{O311}/services.{FMT}", services, {200: "the services"},
          params=(Param("lang", "zh (default) or en", {"type": "string", "enum": ["zh", "en"]}),),
          public=True, open311=True, tag="open311"),
    Route("GET", f"{O311}/services/{{service_code}}.{FMT}", service, {
        200: "{service_code, attributes: []}", 404: "unknown service_code"},
          params=(Param("service_code", "a type code", {"type": "string"}, where="path",
                        required=True),), public=True, open311=True, tag="open311"),
    Route("POST", f"{O311}/requests.{FMT}", post_request, {
        201: "[{service_request_id, service_notice, account_id}]",
        400: "bad request: one error per bad parameter", 401: "no or unknown api_key",
        403: "the key's role may not create requests, or outside its scope",
        409: "the same service request id for other content",
        413: "body over the size limit",
        422: "the report it makes is refused without field errors"},
          params=(Param("api_key", "the key (or Authorization: Bearer; also in the body)"),),
          body_description="GeoReport v2 parameters, form-encoded or JSON: service_code, "
                           "lat, long, description, media_url, address_string, account_id …",
          open311=True, tag="open311"),
    Route("GET", f"{O311}/requests.{FMT}", list_requests, {
        200: "the requests", 400: "bad status or start_date/end_date"},
          params=(Param("service_request_id", "comma-separated ids (at most 200)"),
                  Param("service_code", "comma-separated type codes"),
                  Param("start_date", "ISO 8601 with an offset (default: end_date - 90 days)",
                        _TIME),
                  Param("end_date", "ISO 8601 with an offset (default: now)", _TIME),
                  Param("status", "open, closed or both (comma-separated)")),
          public=True, open311=True, tag="open311"),
    Route("GET", f"{O311}/requests/{{rid}}.{FMT}", get_request, {
        200: "[the request]", 404: "unknown, not yet processed, or not a UUID"},
          params=(Param("rid", "service_request_id (the report id, a UUID)",
                        {"type": "string", "format": "uuid"}, where="path", required=True),),
          public=True, open311=True, tag="open311"),
]
