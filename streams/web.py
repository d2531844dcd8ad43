"""HTTP API (``/api/v1``, JSON) and Open311 GeoReport v2 (``/open311/v2``) on the worker's
Faust web server (aiohttp). :func:`install` registers the routes; see docs/api.md.

* Writes (reports, actions) are checked here — :func:`grid.intake.parse_report`, the
  token's role and scope (:mod:`grid.auth`) — and produced to ``grid.reports.v1`` /
  ``grid.commands.v1``. The engine decides; an action waits for the engine's answer on the
  event stream (:mod:`streams.results`): its events, or its refusal.
* Reads — one case (rebuilt from its stored events), lists (cases, work orders, Open311
  requests, keyset-paged in the database) — come from the read store
  (``grid_app.read_store``, SQL: :mod:`store.reader`): every worker answers for every case.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web
from pydantic import ValidationError

from grid import auth, open311
from grid.auth import Forbidden, Principal
from grid.intake import Rejection, parse_report
from grid.models import (
    TERMINAL_STATES,
    Action,
    Case,
    CaseState,
    Command,
    Report,
)
from store.reader import TOTAL_CAP
from streams import topics as T
from streams.results import CommandResults
from streams.signin import CrossSite, principal_of

log = logging.getLogger(__name__)

API = "/api/v1"
O311 = "/open311/v2"
MAX_BODY = 64 * 1024
ACTION_WAIT = 5.0  # seconds to wait for the engine to apply an action (?wait=0: do not wait)
PENDING_MAX = 10_000
OPEN_WORK = (CaseState.DISPATCHED, CaseState.ACCEPTED, CaseState.REWORK)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpError(Exception):
    """An error answer: status, JSON body and extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **extra}
        self.headers = headers or {}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    # a final newline: a shell prompt after `curl` starts on its own line
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS) + b"\n",
                        status=status, headers=headers, content_type="application/json")


def install(grid_app: Any) -> None:
    """Register the API and Open311 routes on ``grid_app.app``'s web server."""
    api = Api(grid_app)
    web_app = grid_app.app.web.web_app
    for method, path, handler in api.routes():
        web_app.router.add_route(method, path, handler)
    web_app.middlewares.append(unmatched_as_json)
    grid_app.api = api
    from streams.photos import install_photos

    install_photos(grid_app, api.registry)


@web.middleware
async def unmatched_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A path or method no route serves: under /api a JSON error, under /open311 the
    GeoReport error format, each saying what exists."""
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        path = request.path
        if not path.startswith((API, O311)):
            raise
        what = ("no such endpoint" if exc.status == 404 else "method not allowed")
        msg = f"{what}: {request.method} {path}"
        if path.startswith(O311):
            msg += f"; services: {O311}/services.json, requests: {O311}/requests.json"
            return json_response(open311.errors_json([(exc.status, msg)]), exc.status)
        return json_response({"error": f"{msg}; the endpoints are listed in "
                                       f"{API}/openapi.json"}, exc.status)


class Api:
    """The handlers; state: the token registry and a bounded cache of accepted reports."""

    def __init__(self, grid_app: Any, registry: auth.TokenRegistry | None = None) -> None:
        self.g = grid_app
        self.app = grid_app.app
        self.taxonomy = grid_app.engine.taxonomy
        self.registry = registry or auth.load_registry(departments=self.taxonomy.departments)
        self.max_body = int(os.environ.get("GRID_API_MAX_BYTES", MAX_BODY))
        self.action_wait = float(os.environ.get("GRID_API_ACTION_WAIT", ACTION_WAIT))
        self.pending: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.results = CommandResults()  # the engine's answers, from the stored event stream
        feed = getattr(grid_app, "projector", None) or getattr(grid_app, "live_feed", None)
        if feed is not None:
            feed.listeners.append(self.results.on_event)
        if not len(self.registry):
            log.warning("no API tokens configured (GRID_MODE=production): every API call is 401")

    def routes(self) -> list[tuple[str, str, Handler]]:
        a, o, w = API, O311, self._wrap
        fmt = "{fmt:json|xml}"
        return [
            ("GET", a, w(self.index)),
            ("GET", f"{a}/", w(self.index)),
            ("GET", f"{a}/health", w(self.health)),
            ("GET", f"{a}/ready", w(self.ready)),
            ("GET", f"{a}/openapi.json", w(self.openapi)),
            ("GET", f"{a}/me", w(self.me)),
            ("POST", f"{a}/reports", w(self.post_report)),
            ("GET", f"{a}/reports/{{report_id}}", w(self.get_report)),
            ("GET", f"{a}/cases", w(self.list_cases)),
            ("GET", f"{a}/cases/{{case_id}}", w(self.get_case)),
            ("POST", f"{a}/cases/{{case_id}}/actions", w(self.post_action)),
            ("GET", f"{a}/work-orders", w(self.work_orders)),
            ("GET", f"{o}/services.{fmt}", w(self.o311_services, open311_errors=True)),
            ("GET", f"{o}/services/{{service_code}}.{fmt}",
             w(self.o311_service, open311_errors=True)),
            ("POST", f"{o}/requests.{fmt}", w(self.o311_post, open311_errors=True)),
            ("GET", f"{o}/requests.{fmt}", w(self.o311_list, open311_errors=True)),
            ("GET", f"{o}/requests/{{rid}}.{fmt}", w(self.o311_get, open311_errors=True)),
        ]

    # -- plumbing ------------------------------------------------------------------------

    def _wrap(self, fn: Handler, open311_errors: bool = False) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                return await fn(request)
            except HttpError as err:
                if open311_errors:
                    return self._o311_error(request, err.status, err.body["error"], err.headers)
                return json_response(err.body, err.status, err.headers)
            except Exception as err:  # never leak a traceback page
                log.exception("API %s %s failed", request.method, request.path)
                msg = f"internal error: {type(err).__name__}"
                if open311_errors:
                    return self._o311_error(request, 500, msg)
                return json_response({"error": msg}, 500)
        handler.__doc__ = fn.__doc__
        return handler

    def principal(self, request: web.Request, api_key: str | None = None) -> Principal:
        """The caller through the one door of the API and the pages
        (:func:`streams.signin.principal_of`: bearer token, api key or the sign-in cookie);
        401 without one, 403 for a cross-site change signed in by the cookie."""
        try:
            p = principal_of(request, self.registry, api_key)
        except CrossSite as err:
            raise HttpError(403, str(err), reason="cross_site") from None
        if p is None:
            token = auth.bearer_token(request.headers.get("Authorization"), api_key)
            raise HttpError(401, "missing bearer token (Authorization: Bearer <token>)"
                            if not token else "unknown bearer token",
                            headers={"WWW-Authenticate": 'Bearer realm="grid"'})
        return p

    async def body(self, request: web.Request) -> bytes:
        """The request body, refused with 413 beyond ``max_body`` (header or actual size)."""
        limit = self.max_body
        if request.content_length is not None and request.content_length > limit:
            raise HttpError(413, f"the body has {request.content_length} bytes, more than the "
                            f"{limit} allowed; send photos as URLs, not inline", limit=limit)
        chunks, size = [], 0
        while True:
            chunk = await request.content.read(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"the body is larger than the {limit} bytes allowed",
                                limit=limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def now(self) -> datetime:
        return self.g.clock.now()

    # -- cases as stored -------------------------------------------------------------------

    async def stored_case(self, case_id: str) -> Case | None:
        """The case from the read store (rebuilt from its events; None: not stored yet).
        Every worker answers for every case: none needs the one holding its street."""
        return await asyncio.to_thread(self.g.read_store.case, case_id)

    async def load_case(self, case_id: str) -> Case:
        case = await self.stored_case(case_id)
        if case is None:
            raise HttpError(404, f"no case {case_id!r}", case_id=case_id)
        return case

    async def case_of_report(self, rid: str) -> Case | None:
        cid = await asyncio.to_thread(self.g.read_store.case_for_report, rid)
        return await self.stored_case(cid) if cid else None

    # -- meta ----------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        """Links to everything (no token needed)."""
        return json_response({
            "api": API, "openapi": f"{API}/openapi.json", "health": f"{API}/health",
            "reports": f"{API}/reports", "cases": f"{API}/cases",
            "work_orders": f"{API}/work-orders", "open311": f"{O311}/services.json",
            "ready": f"{API}/ready", "auth": "Authorization: Bearer <token>"})

    async def ready(self, request: web.Request) -> web.Response:
        """200 when this worker can serve (consumers started, tables recovered, read model
        caught up), else 503 with the reasons in words (no token)."""
        why = self.g.not_ready()
        return json_response({"ready": not why, "reasons": why}, status=503 if why else 200)

    async def health(self, request: web.Request) -> web.Response:
        """This worker and each of its consumers; 503 when a consumer is stuck (no token)."""
        consumers = self.g.consumers()
        failing = [c["reason"] for c in consumers.values() if c["stuck"]]
        return json_response({"status": "failing" if failing else "ok", "reasons": failing,
                              "consumers": consumers,
                              "worker": str(self.app.conf.canonical_url),
                              "app_id": self.g.settings.app_id,
                              "partitions": sorted(self.g.cases.stores),
                              "partition_count": self.g.settings.partitions,
                              "exactly_once": self.g.exactly_once,
                              "read_store": getattr(self.g, "read_store", None) is not None},
                             status=503 if failing else 200)

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI document of this API; ``servers`` is the address it was asked on."""
        from streams.openapi import spec

        return json_response({**spec(), "servers": [
            {"url": f"{request.scheme}://{request.host}"}]})

    async def me(self, request: web.Request) -> web.Response:
        """The caller's role and scope."""
        return json_response(self.principal(request).public())

    # -- reports -------------------------------------------------------------------------

    async def accept_report(self, p: Principal, raw: bytes | dict[str, Any]) -> Report:
        """Validate (422), check source and scope (403), produce; the accepted report."""
        r = parse_report(raw, taxonomy=self.taxonomy, now=self.now(), max_bytes=self.max_body)
        if isinstance(r, Rejection):
            if r.reason == "too_large":
                raise HttpError(413, r.message, limit=self.max_body)
            raise HttpError(422, r.message, reason=r.reason, report_id=r.report_id,
                            errors=[e.model_dump() for e in r.errors])
        if r.source != p.source:
            raise HttpError(403, f"token {p.name!r} submits reports with source {p.source!r}, "
                            f"not {r.source!r}")
        if p.role == "supervisor" and r.reporter_id != p.name:
            raise HttpError(403, f"supervisor token {p.name!r} may not report as "
                            f"{r.reporter_id!r}")
        loc = r.location
        place = self.g.engine.locator.locate_many([loc.lon], [loc.lat], [loc.crs])[0]
        if place is None:
            raise HttpError(422, f"location ({loc.lon}, {loc.lat}, {loc.crs}) is outside every "
                            "district this engine covers", reason="outside_coverage",
                            report_id=r.rid, errors=[{"field": "location",
                                                      "message": "outside the covered area"}])
        try:
            auth.check_report(p, place)
        except Forbidden as err:
            raise HttpError(403, str(err)) from err
        before = self.pending.get(r.rid)
        if before is not None and before != r.model_dump(mode="json", by_alias=True):
            raise HttpError(409, f"report_id {r.rid} was used before for a report with other "
                            "content; send a new report_id for a new report",
                            report_id=r.rid, reason="duplicate_conflict")
        value = raw if isinstance(raw, bytes) else orjson.dumps(raw)
        await self.g.send(T.REPORTS, r.rid.encode(), value)  # acknowledged before we answer
        self.pending[r.rid] = r.model_dump(mode="json", by_alias=True)
        while len(self.pending) > PENDING_MAX:
            self.pending.popitem(last=False)
        return r

    async def post_report(self, request: web.Request) -> web.Response:
        """Submit a report (wire format ``grid.report/1``); 202 with a link to follow it."""
        p = self.principal(request)
        if p.role not in auth.REPORTING_ROLES:
            raise HttpError(403, f"role {p.role!r} may not submit reports")
        r = await self.accept_report(p, await self.body(request))
        url = f"{API}/reports/{r.rid}"
        return json_response({"report_id": r.rid, "status": "accepted", "report_url": url,
                              "open311_url": f"{O311}/requests/{r.rid}.json"},
                             status=202, headers={"Location": url})

    def _projection_report_id(self, case_id: str) -> str | None:
        rs = getattr(self.g, "read_store", None)
        return rs.report_id(case_id) if rs is not None else None

    async def get_report(self, request: web.Request) -> web.Response:
        """The case a report became (404 'not yet processed' before)."""
        p = self.principal(request)
        rid = _uuid(request.match_info["report_id"])
        case = await self.case_of_report(rid)
        if case is None:
            raise HttpError(404, f"report {rid} is not yet processed (or was rejected: see "
                            f"grid.reports.dlq.v1); retry shortly", report_id=rid,
                            processing="pending" if rid in self.pending else "unknown")
        _guard(auth.check_read, p, case.placement, case.department, case.reporters,
               auth.holders_of(case))
        return json_response({
            "report_id": rid, "case_id": case.case_id, "case_url": f"{API}/cases/{case.case_id}",
            "state": case.state.value, "merged": case.report.rid != rid})

    # -- cases -----------------------------------------------------------------------------

    async def get_case(self, request: web.Request) -> web.Response:
        """One case: state, placement, decision with explanation, deadlines, history."""
        p = self.principal(request)
        case = await self.load_case(request.match_info["case_id"])
        _guard(auth.check_read, p, case.placement, case.department, case.reporters,
               auth.holders_of(case))
        return json_response(self.case_json(case))

    def case_json(self, case: Case) -> dict[str, Any]:
        out = case.model_dump(mode="json", by_alias=True)
        out["overdue_stages"] = case.overdue_stages(self.now())
        out["links"] = {"self": f"{API}/cases/{case.case_id}",
                        "actions": f"{API}/cases/{case.case_id}/actions"}
        return out

    def _filters(self, p: Principal, q: dict[str, str]) -> dict[str, Any]:
        """The read store's filters for a list request by ``p`` (its scope included); 422 for
        a bad parameter, 403 for a department asking for another's cases."""
        overdue = _bool(q.get("overdue"), "overdue")
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
                t = _dt(q[name])
                if t is None or t.tzinfo is None:
                    raise HttpError(422, f"{name} must be ISO 8601 with a UTC offset", errors=[
                        {"field": name, "message": "e.g. 2026-05-01T00:00:00+08:00"}])
                times[name] = t
        return {"district": q.get("district") or None, "street": q.get("street") or None,
                "department": dept or None, "unit": q.get("unit") or None, "holder": holder,
                "type_code": q.get("type") or None,
                "state": states or None, "overdue": overdue, "now": self.now(),
                "scope": None if own_department else p,
                "reporter": p.name if p.role == "integration" else None, **times}

    def _list(self, p: Principal, q: dict[str, str]) -> dict[str, Any]:
        """A page of cases for ``p`` (blocking: the read store)."""
        limit = _limit(q)
        try:
            cases, nxt, total = self.g.read_store.page(limit, q.get("cursor") or None,
                                                       **self._filters(p, q))
        except ValueError as err:
            raise HttpError(422, str(err), errors=[
                {"field": "cursor", "message": "use next_cursor from the previous page"}]
            ) from None
        now = self.now()
        items = []
        for c in cases:
            row = c.to_dict(now)
            row.pop("reporters", None)
            items.append(row)
        capped = total is not None and total > TOTAL_CAP
        return {"items": items, "count": len(items),
                "total": TOTAL_CAP if capped else total, "total_capped": capped,
                "next_cursor": nxt}

    async def list_cases(self, request: web.Request) -> web.Response:
        """Cases filtered by district, street, department, type, state, overdue and creation
        time (since/until); newest first, keyset pages (``cursor``)."""
        p = self.principal(request)
        return json_response(await asyncio.to_thread(self._list, p, dict(request.query)))

    async def work_orders(self, request: web.Request) -> web.Response:
        """A department's open work orders (dispatched, accepted or in rework)."""
        p = self.principal(request)
        dept = request.query.get("department") or (p.department if p.role == "department"
                                                   else None)
        if not dept:
            raise HttpError(422, "department is required", errors=[
                {"field": "department", "message": "is required (a department id)"}])
        if dept not in self.taxonomy.departments:
            raise HttpError(422, f"unknown department {dept!r}", errors=[
                {"field": "department", "message": "not a department id"}])
        _guard(auth.check_work_orders, p, dept)
        q = dict(request.query, department=dept,
                 state=",".join(s.value for s in OPEN_WORK))
        page = await asyncio.to_thread(self._list, p, q)
        page["items"] = [{"work_order_id": s.get("work_order_id")
                          or f"{s['case_id']}:{s.get('dispatches') or 1}", **s}
                         for s in page["items"]]
        return json_response(page)

    # -- actions ---------------------------------------------------------------------------

    async def post_action(self, request: web.Request) -> web.Response:
        """Check an action against the caller's role and scope, produce the command and
        answer with what the engine made of it (its events, or its refusal: 409 / 403), or
        202 when it has not answered within the wait."""
        p = self.principal(request)
        case_id = request.match_info["case_id"]
        raw = await self.body(request)
        data = _loads(raw)
        if not isinstance(data, dict):
            raise HttpError(422, "expected a JSON object with at least `action`",
                            errors=[{"field": "body", "message": "not a JSON object"}])
        allowed = {"action", "reason", "evidence_photos", "passed", "extension_minutes",
                   "department", "type_code", "stage", "command_id", "unit", "satisfaction",
                   "next_stage"}
        extra = sorted(set(data) - allowed)
        if extra:
            raise HttpError(422, f"unknown field(s) {', '.join(extra)}",
                            errors=[{"field": k, "message": "is not an action field"}
                                    for k in extra])
        try:
            action = Action(data.get("action"))
            if action in (Action.MERGE, Action.WARN):
                raise ValueError
        except ValueError:
            names = ", ".join(a.value for a in Action if a not in (Action.MERGE, Action.WARN))
            raise HttpError(422, f"unknown action {data.get('action')!r}", errors=[
                {"field": "action", "message": f"one of {names}"}]) from None
        if action not in auth.ACTIONS_BY_ROLE[p.role]:  # before loading the case
            _guard(auth.check_action, p, action, None, None)
        case = await self.load_case(case_id)
        _guard(auth.check_action, p, action, case.placement, case.department,
               auth.holders_of(case), case.reporters)
        try:
            cmd = Command.model_validate({
                **data, "command_id": data.get("command_id") or str(uuid.uuid4()),
                "case_id": case_id, "actor": p.actor, "role": p.command_role or p.role,
                "street": case.placement.street})
        except ValidationError as err:
            raise HttpError(422, "invalid action", errors=[
                {"field": ".".join(str(x) for x in e["loc"]), "message": e["msg"]}
                for e in err.errors(include_url=False)]) from None
        if action in (Action.CLASSIFY, Action.FOLLOW_UP) \
                and cmd.type_code not in self.taxonomy.types:
            raise HttpError(422, f"unknown type code {cmd.type_code!r}", errors=[
                {"field": "type_code", "message": "not one of the types (grid taxonomy)"}])
        wait = self.action_wait if request.query.get("wait", "1") not in ("0", "false") else 0
        self.results.expect(cmd.command_id)
        key, value = self.g.command_bytes(cmd)
        try:
            await self.g.send(T.COMMANDS, key, value)
        except BaseException:
            await self.results.wait(cmd.command_id, 0)  # forget the waiter
            raise
        body: dict[str, Any] = {
            "command_id": cmd.command_id, "case_id": case_id, "action": action.value,
            "case_url": f"{API}/cases/{case_id}"}
        events = await self.results.wait(cmd.command_id, wait)
        if events is None:
            return json_response({**body, "status": "accepted", "state_before":
                                  case.state.value, "note": "the engine has not answered yet: "
                                  "see case_url"}, status=202)
        applied = [e for e in events if e.get("type") != "command_rejected"]
        if not applied:
            refusal = events[-1]
            status = 403 if (refusal.get("data") or {}).get("refused") == "forbidden" else 409
            raise HttpError(status, refusal.get("reason") or "refused", action=action.value,
                            state=refusal.get("state_from") or case.state.value)
        return json_response({**body, "status": "applied", "state": applied[-1]["state_to"],
                              "events": applied})

    # -- Open311 GeoReport v2 --------------------------------------------------------------

    def _o311_error(self, request: web.Request, status: int, message: str,
                    headers: dict[str, str] | None = None) -> web.Response:
        errors = [(status, message)]
        if request.match_info.get("fmt") == "xml":
            return web.Response(text=open311.errors_xml(errors), status=status,
                                headers=headers, content_type="text/xml")
        return json_response(open311.errors_json(errors), status, headers)

    def _o311(self, request: web.Request, root: str, item: str, rows: list[dict[str, Any]],
              status: int = 200) -> web.Response:
        if request.match_info.get("fmt") == "xml":
            return web.Response(text=open311.to_xml(root, item, rows), status=status,
                                content_type="text/xml")
        return json_response(rows, status)

    async def o311_services(self, request: web.Request) -> web.Response:
        """GeoReport v2 service list: the 120 types (``?lang=en`` for English names)."""
        rows = open311.services(self.taxonomy, request.query.get("lang", "zh"))
        return self._o311(request, "services", "service", rows)

    async def o311_service(self, request: web.Request) -> web.Response:
        """GeoReport v2 service definition: our services take no extra attributes."""
        code = request.match_info["service_code"]
        if code not in self.taxonomy.types:
            raise HttpError(404, f"service_code {code!r} is not a service; the list: "
                            f"{O311}/services.json")
        if request.match_info.get("fmt") == "xml":
            return web.Response(text=open311.definition_xml(code), content_type="text/xml")
        return json_response({"service_code": code, "attributes": []})

    async def o311_post(self, request: web.Request) -> web.Response:
        """Create a service request (form-encoded or JSON); the report's source is the
        api key's (citizen app, 12345 hotline)."""
        raw = await self.body(request)
        ctype = request.content_type or ""
        if "json" in ctype:
            params = _loads(raw)
            if not isinstance(params, dict):
                raise HttpError(400, "expected a JSON object of GeoReport parameters")
        else:
            try:
                params = {k: v[0] for k, v in parse_qs(raw.decode("utf-8"),
                                                      keep_blank_values=True).items()}
            except UnicodeDecodeError:
                raise HttpError(400, "the form is not UTF-8") from None
        key = params.get("api_key") or request.query.get("api_key")
        p = self.principal(request, api_key=str(key) if key else None)
        if p.role not in auth.REPORTING_ROLES:
            raise HttpError(403, f"api key of role {p.role!r} may not create requests")
        try:
            report = open311.report_from_request(params, source=p.source, reporter=p.name,
                                                 now=self.now())
        except open311.RequestError as err:
            return self._o311_errors(request, err.errors)
        if p.role == "supervisor":
            report["reporter_id"] = p.name
        try:
            r = await self.accept_report(p, report)
        except HttpError as err:
            if err.status == 422 and err.body.get("errors"):
                return self._o311_errors(request, [
                    (400, f"{open311.param_of(e['field'])}: {e['message']}")
                    for e in err.body["errors"]])
            raise
        t = self.taxonomy.types.get(r.type_code) if r.type_code else None
        notice = (f"已受理：{t.name_zh}" if t else "已受理，待分类") + "；可凭编号查询处理进度"
        return self._o311(request, "service_requests", "request", [
            {"service_request_id": r.rid, "service_notice": notice,
             "account_id": params.get("account_id")}], status=201)

    def _o311_errors(self, request: web.Request, errors: list[tuple[int, str]]
                     ) -> web.Response:
        if request.match_info.get("fmt") == "xml":
            return web.Response(text=open311.errors_xml(errors), status=400,
                                content_type="text/xml")
        return json_response(open311.errors_json(errors), 400)

    async def _o311_row(self, rid: str, request: web.Request) -> dict[str, Any] | None:
        case = await self.case_of_report(rid)
        if case is None and rid not in self.pending:
            return None
        return open311.request_status(rid, case, self.taxonomy, self.pending.get(rid))

    async def o311_get(self, request: web.Request) -> web.Response:
        """One service request by id (the report id)."""
        rid = _uuid(request.match_info["rid"], status=404)
        row = await self._o311_row(rid, request)
        if row is None:
            raise HttpError(404, f"service request {rid} not found (or not processed yet)")
        return self._o311(request, "service_requests", "request", [row])

    async def o311_list(self, request: web.Request) -> web.Response:
        """Service requests by ids, or by service_code, start/end date and status (≤ 1000,
        default: the last 90 days)."""
        q = request.query
        if q.get("service_request_id"):
            rows = []
            for rid in q["service_request_id"].split(",")[:200]:
                try:
                    row = await self._o311_row(_uuid(rid.strip()), request)
                except HttpError:
                    row = None
                if row is not None:
                    rows.append(row)
            return self._o311(request, "service_requests", "request", rows)
        codes = {c for c in q.get("service_code", "").split(",") if c}
        status = {s for s in q.get("status", "").split(",") if s}
        if status - {"open", "closed"}:
            raise HttpError(400, "status must be open, closed or both (comma-separated)")
        try:
            end = datetime.fromisoformat(q["end_date"]) if q.get("end_date") else self.now()
            start = (datetime.fromisoformat(q["start_date"]) if q.get("start_date")
                     else end - _days(90))
        except ValueError:
            raise HttpError(400, "start_date/end_date must be ISO 8601 with an offset, e.g. "
                            "2026-05-01T00:00:00+08:00") from None
        if start.tzinfo is None or end.tzinfo is None:
            raise HttpError(400, "start_date/end_date need a UTC offset, e.g. +08:00")
        state = None if len(status) != 1 else "open" if "open" in status \
            else sorted(t.value for t in TERMINAL_STATES)
        found = await asyncio.to_thread(lambda: list(itertools.islice(
            self.g.read_store.scan(since=start, until=end + timedelta(microseconds=1),
                                   type_code=codes or None, state=state), 1000)))
        now = self.now()
        rows = [c.to_dict(now) for c in found]
        out = []
        for s in rows:
            rid = s.get("report_id") or self._projection_report_id(s["case_id"])
            if rid:
                out.append(_summary_request(rid, s, self.taxonomy))
        return self._o311(request, "service_requests", "request", out)


# --- helpers --------------------------------------------------------------------------------



def _summary_request(rid: str, s: dict[str, Any], taxonomy: Any) -> dict[str, Any]:
    code = s.get("type_code")
    t = taxonomy.types.get(code) if code else None
    dept = taxonomy.departments.get(s.get("department") or "")
    state = str(s.get("state"))
    open_ = _open(state)
    due = (s.get("deadlines") or {}).get("dispose")
    notes = open311.STATUS_NOTES.get(state, state)  # StrEnum keys match their values
    return {
        "service_request_id": rid, "status": "open" if open_ else "closed",
        "status_notes": notes.format(agency=dept.name_zh if dept else "—"),
        "service_name": t.name_zh if t else None, "service_code": code,
        "description": s.get("description"),
        "agency_responsible": dept.name_zh if dept else s.get("department"),
        "service_notice": None, "requested_datetime": open311.iso(_dt(s.get("created_at"))),
        "updated_datetime": open311.iso(_dt(s.get("updated_at"))),
        "expected_datetime": open311.iso(_dt(due)) if open_ else None,
        "address": s.get("address"), "address_id": None, "zipcode": None,
        "lat": s.get("lat"), "long": s.get("lon"), "media_url": None,
    }






def _limit(q: dict[str, str]) -> int:
    """The ``limit`` parameter: 1..500, default 50 (422 otherwise)."""
    try:
        limit = int(q.get("limit") or 50)
    except ValueError:
        raise HttpError(422, "limit must be an integer",
                        errors=[{"field": "limit", "message": "1..500"}]) from None
    if not 1 <= limit <= 500:
        raise HttpError(422, "limit must be between 1 and 500",
                        errors=[{"field": "limit", "message": "1..500"}])
    return limit




def _open(state: str) -> bool:
    return state not in {s.value for s in TERMINAL_STATES}


def _dt(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v)
        except ValueError:
            return None
    return None


def _days(n: int) -> timedelta:
    return timedelta(days=n)


def _bool(v: str | None, name: str) -> bool | None:
    if v is None or v == "":
        return None
    if v.lower() in ("1", "true", "yes"):
        return True
    if v.lower() in ("0", "false", "no"):
        return False
    raise HttpError(422, f"{name} must be true or false",
                    errors=[{"field": name, "message": "true or false"}])


def _uuid(v: str, status: int = 404) -> str:
    try:
        return str(uuid.UUID(v))
    except ValueError:
        raise HttpError(status, f"{v[:80]!r} is not a report id (a UUID)") from None


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise HttpError(422, f"invalid JSON: {err}", errors=[
            {"field": "body", "message": "not valid JSON"}]) from None


def _guard(check: Callable[..., None], *args: Any) -> None:
    try:
        check(*args)
    except Forbidden as err:
        raise HttpError(403, str(err)) from None


