"""The work screens: the command-center console (``/console``), the department inbox
(``/inbox``) and the supervisor's phone page (``/m``), on the worker's web server.

The pages *read* here — ``/work/api/…``, from the read store (``grid_app.read_store``, as the
API's lists do) — and *act* through the API itself: reports to ``POST /api/v1/reports``,
actions to ``POST /api/v1/cases/{id}/actions``, photos to ``POST /api/v1/photos``, signed in
by the session cookie. So every action a page offers is checked by the API's role and scope
rules and becomes the same command the API produces, answered by the engine's events; this
module never decides a case. Who is calling comes through the one door
(:func:`streams.signin.principal_of`), and a button shows only when that principal may use
it (:func:`actions_for`: the role's actions, the case's state, the scope).

* ``GET /console`` (command centers; viewers read-only), ``/inbox`` (departments), ``/m``
  (supervisors): a page, ``302`` to ``/login`` without a session, ``403`` for another role.
* ``GET /work/api/console`` — the queues (triage, awaiting dispatch, returned, extension
  requests, verified, overdue) with counts, and the filtered or searched case list.
* ``GET /work/api/inbox`` — a department's open work orders, by due time.
* ``GET /work/api/mine`` — a supervisor's reports and verification tasks.
* ``GET /work/api/cases/{id}`` — one case for the case page: names, decision in words,
  deadlines, history, photos, and the actions the caller may take.
* ``GET /work/api/types``, ``/work/api/departments``, ``/work/api/map.geojson`` — the type
  picker, the dispatch targets and the streets of the caller's district.
* ``GET /work/events`` — server-sent events: ``case`` (id, event type, new state) for each
  stored event of a case the caller may read, so a queue changes without a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from grid import auth
from grid.auth import Forbidden, Principal
from grid.lifecycle import RULES
from grid.models import Action
from grid.names import Names
from store import work as W

STATIC = Path(__file__).parent / "static"
PAGES = {"console": ("command_center", "viewer"), "inbox": ("department",),
         "m": ("supervisor",)}
PAGE_FILES = {"console": "console.html", "inbox": "inbox.html", "m": "m.html"}
QUEUE_MAX = 100
LIST_MAX = 100
SSE_PING = 15.0
# the actions the pages offer (part work, callbacks and self-disposal of an open case stay
# with the API; "fixed on the spot" is a report with after-photos)
PAGE_ACTIONS = (Action.CLASSIFY, Action.REJECT, Action.DISPATCH, Action.GRANT_EXTENSION,
                Action.DENY_EXTENSION, Action.SUPERVISE, Action.CLOSE, Action.ACCEPT,
                Action.DISPOSE, Action.RETURN, Action.REQUEST_EXTENSION, Action.VERIFY)
QUEUES = ("triage", "dispatch", "returned", "extension", "verified", "overdue")
PERSONAL_OK = ("command_center", "supervisor")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS) + b"\n",
                        status=status, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


class Refused(Exception):
    """An error answer of the page API (status and a message in words)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def actions_for(p: Principal, d: dict[str, Any], holders: frozenset[str],
                extension_minutes: int | None) -> list[str]:
    """The actions ``p`` may take on the case ``d`` (a read-store detail) now: its role's
    actions (:data:`grid.auth.ACTIONS_BY_ROLE`), allowed in the case's state
    (:data:`grid.lifecycle.RULES`) and in ``p``'s scope (:func:`grid.auth.check_action`) —
    the API's own checks, so a button shown is a request the API takes."""
    place = {k: d.get(k) for k in ("district", "street", "patrol_area")}
    out = []
    for a in PAGE_ACTIONS:
        if a not in auth.ACTIONS_BY_ROLE[p.role]:
            continue
        states = RULES[a][1]
        if states is not None and d.get("state") not in {s.value for s in states}:
            continue
        try:
            auth.check_action(p, a, place, d.get("department"), holders,  # type: ignore[arg-type]
                              d.get("reporters") or ())
        except Forbidden:
            continue
        if a in (Action.GRANT_EXTENSION, Action.DENY_EXTENSION) and not extension_minutes:
            continue
        if a is Action.REQUEST_EXTENSION and extension_minutes:
            continue  # one request at a time
        if a is Action.SUPERVISE and not d.get("overdue"):
            continue
        out.append(a.value)
    return out


class WorkPages:
    """The page handlers over ``grid_app.read_store``; ``registry``: the API's tokens."""

    def __init__(self, grid_app: Any, registry: auth.TokenRegistry) -> None:
        self.g = grid_app
        self.registry = registry
        self.taxonomy = grid_app.engine.taxonomy
        self.names = Names.of_locator(grid_app.engine.locator, self.taxonomy)
        self._streams: set[asyncio.Queue] = set()
        self._geo: dict[str | None, bytes] = {}

    def default_district(self) -> str | None:
        """The district the loaded geodata has the most streets of (the demo: Yangpu)."""
        from collections import Counter

        streets = Counter(s[:6] for s in self.g.engine.locator.streets())
        return streets.most_common(1)[0][0] if streets else None

    @property
    def rs(self) -> Any:
        return self.g.read_store

    def now(self) -> datetime:
        return self.g.clock.now()

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/console", self.page("console")),
            ("GET", "/inbox", self.page("inbox")),
            ("GET", "/m", self.page("m")),
            ("GET", "/work/api/me", self.api(self.me)),
            ("GET", "/work/api/console", self.api(self.console, "console")),
            ("GET", "/work/api/inbox", self.api(self.inbox, "inbox")),
            ("GET", "/work/api/mine", self.api(self.mine, "m")),
            ("GET", "/work/api/cases/{case_id}", self.api(self.case)),
            ("GET", "/work/api/types", self.api(self.types)),
            ("GET", "/work/api/departments", self.api(self.departments)),
            ("GET", "/work/api/map.geojson", self.map),
            ("GET", "/work/events", self.events),
        ]

    # -- who -------------------------------------------------------------------------------

    def who(self, request: web.Request, page: str | None = None) -> Principal:
        """The signed-in caller (401 without one), allowed on ``page`` (403 otherwise)."""
        from streams.signin import CrossSite, principal_of

        try:
            p = principal_of(request, self.registry)
        except CrossSite as err:
            raise Refused(403, str(err)) from None
        if p is None:
            raise Refused(401, "请先登录 sign in first: POST /login with your token, or send "
                          "Authorization: Bearer <token>")
        if page is not None and p.role not in PAGES[page]:
            raise Refused(403, f"{p.name!r} ({p.role}) may not use /{page}; it is for "
                          f"{', '.join(PAGES[page])}")
        return p

    def page(self, name: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            from streams.signin import HOME, login_redirect, principal_of

            p = principal_of(request, self.registry)
            if p is None:
                raise login_redirect(request)
            if p.role not in PAGES[name]:
                home = HOME.get(p.role, "/login")
                return web.Response(status=403, content_type="text/html", text=(
                    '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
                    '<title>无权访问 · Forbidden</title><link rel="icon" href="data:,">'
                    '<link rel="stylesheet" href="/work/static/work.css"></head>'
                    '<body class="forbidden"><main><h1>无权访问 · Forbidden</h1>'
                    f'<p>此页面供 {" / ".join(PAGES[name])} 使用；您以 {p.role} 身份登录。</p>'
                    f'<p>This page is for {", ".join(PAGES[name])}; you are signed in as '
                    f'{p.role}.</p><p><a href="{home}">我的页面 My page</a> · '
                    '<a href="/login">登录 Sign in</a></p></main></body></html>'),
                    headers={"Cache-Control": "no-store"})
            return web.FileResponse(STATIC / PAGE_FILES[name],
                                    headers={"Cache-Control": "no-cache"})
        return handler

    def api(self, fn: Any, page: str | None = None) -> Any:
        async def handler(request: web.Request) -> web.Response:
            try:
                p = self.who(request, page)
                return _json(await asyncio.to_thread(fn, p, dict(request.query),
                                                     dict(request.match_info)))
            except Refused as r:
                return _json({"error": str(r)}, r.status)
        handler.__doc__ = fn.__doc__
        return handler

    # -- names -----------------------------------------------------------------------------

    def row(self, c: Any, now: datetime) -> dict[str, Any]:
        """A case summary as the pages list it: names beside codes, due and lateness."""
        d = c.to_dict(now)
        d.pop("reporters", None)
        d["description"] = (d.get("description") or "")[:200]
        due = c.due()
        d.update(due=due.isoformat() if due else None,
                 type_name=self.names.type(c.type_code),
                 department_name=self.names.department(c.department),
                 street_name=self.names.place(c.street),
                 community_name=self.names.place(c.community),
                 district_name=self.names.place(c.district))
        return d

    # -- data ------------------------------------------------------------------------------

    def me(self, p: Principal, q: dict[str, str], m: dict[str, str]) -> dict[str, Any]:
        """The caller: name, role, scope in words, department name, the pages it may use."""
        return {**p.public(), "scope_text": p.scope_text(),
                "department_name": self.names.department(p.department)
                if p.department else None,
                "pages": [k for k, roles in PAGES.items() if p.role in roles],
                "now": self.now().isoformat(),
                "clock_speed": getattr(self.g.clock, "speed", 1.0)}

    def _filters(self, p: Principal, q: dict[str, str]) -> dict[str, Any]:
        return {"street": q.get("street") or None, "department": q.get("department") or None,
                "type_code": q.get("type") or None, "scope": p}

    def console(self, p: Principal, q: dict[str, str], m: dict[str, str]) -> dict[str, Any]:
        """The console's queues (each: count and the first :data:`QUEUE_MAX`) and the list
        (filters street, department, type, state; ``q`` a case id, report id or address)."""
        now, rs = self.now(), self.rs
        f = self._filters(p, q)
        queues: dict[str, dict[str, Any]] = {}
        for key, state in (("triage", "triage"), ("dispatch", "filed"),
                           ("returned", "returned"), ("verified", "verified")):
            cases, _, total = rs.page(QUEUE_MAX, None, state={state}, now=now, **f)
            queues[key] = {"count": total, "items": [self.row(c, now) for c in cases]}
        for item in queues["triage"]["items"]:
            item["suggestions"] = self.suggestions(item["description"])
        for item in queues["returned"]["items"]:
            item["arbitration"] = bool(item.get("arbitration") or item.get("returns", 0) >= 2)
        overdue, _, total = rs.page(500, None, overdue=True, now=now, **f)
        overdue.sort(key=lambda c: c.lateness(now) or timedelta(0), reverse=True)
        queues["overdue"] = {"count": total,
                             "items": [self.row(c, now) for c in overdue[:QUEUE_MAX]]}
        ext = W.pending_extensions(rs)
        rows = []
        for cid, minutes in ext.items():
            c = rs.get(cid)
            if c is None or not p.covers({"district": c.district, "street": c.street,
                                          "patrol_area": c.patrol_area}):
                continue
            if any(f[k] and getattr(c, a) != f[k] for k, a in
                   (("street", "street"), ("department", "department"),
                    ("type_code", "type_code"))):
                continue
            rows.append({**self.row(c, now), "extension_minutes": minutes,
                         "new_due": self.extended_due(c, minutes)})
        rows.sort(key=lambda r: r.get("due") or "")
        queues["extension"] = {"count": len(rows), "items": rows[:QUEUE_MAX]}
        listing = self.listing(p, q, f, now)
        return {"now": now.isoformat(), "clock_speed": getattr(self.g.clock, "speed", 1.0),
                "queues": queues, "list": listing}

    def listing(self, p: Principal, q: dict[str, str], f: dict[str, Any],
                now: datetime) -> dict[str, Any]:
        text = (q.get("q") or "").strip()
        if text:
            found = [c for c in self.rs.search(text, limit=LIST_MAX * 2)
                     if p.covers({"district": c.district, "street": c.street,
                                  "patrol_area": c.patrol_area})]
            title = f"搜索 Search: {text}"
            return {"title": title, "items": [self.row(c, now) for c in found[:LIST_MAX]],
                    "total": len(found)}
        state = q.get("state") or "open"
        cases, _, total = self.rs.page(LIST_MAX, None, state={state}, now=now, **f)
        return {"title": f"案件 Cases · {state}", "items": [self.row(c, now) for c in cases],
                "total": total}

    def suggestions(self, description: str) -> list[dict[str, Any]]:
        """The classifier's top three types for a description, with names."""
        out = []
        for c in self.g.engine.classifier.classify(description or "", top=3):
            out.append({"type_code": c.type_code, "score": c.score,
                        "type_name": self.names.type(c.type_code),
                        "matched": [m for m in c.matched if not m.startswith("~")][:4]})
        return out

    def extended_due(self, c: Any, minutes: int) -> str | None:
        """The dispose deadline after granting ``minutes`` (the case's calendar)."""
        from grid.deadlines import default_calendar, extend

        due = c.deadlines.get("dispose")
        if due is None:
            return None
        detail = self.rs.detail(c.case_id) or {}
        calendar = (detail.get("decision") or {}).get("calendar") or "24h"
        return extend(due, timedelta(minutes=minutes), default_calendar(calendar)).isoformat()

    def inbox(self, p: Principal, q: dict[str, str], m: dict[str, str]) -> dict[str, Any]:
        """The department's (or unit's) open work orders, soonest due first."""
        now = self.now()
        cases, _ = self.rs.list(state={"dispatched", "accepted", "rework"}, now=now,
                                holder=(p.department, p.unit), limit=500)
        ext = W.pending_extensions(self.rs, [c.case_id for c in cases])
        far = datetime.max.replace(tzinfo=now.tzinfo)
        cases.sort(key=lambda c: (c.due() or far, c.case_id))
        rows = [{**self.row(c, now), "extension_minutes": ext.get(c.case_id)} for c in cases]
        return {"now": now.isoformat(), "clock_speed": getattr(self.g.clock, "speed", 1.0),
                "department": p.department,
                "department_name": self.names.department(p.department),
                "unit": p.unit, "items": rows, "count": len(rows)}

    def mine(self, p: Principal, q: dict[str, str], m: dict[str, str]) -> dict[str, Any]:
        """The supervisor's latest reports and the cases waiting for verification in its
        patrol areas (its scope)."""
        now = self.now()
        reports, _ = self.rs.list(reporter=p.name, now=now, limit=50)
        tasks, _ = self.rs.list(state="disposed", scope=p, now=now, limit=LIST_MAX)
        return {"now": now.isoformat(), "clock_speed": getattr(self.g.clock, "speed", 1.0),
                "reports": [self.row(c, now) for c in reports],
                "verify": [self.row(c, now) for c in tasks]}

    def case(self, p: Principal, q: dict[str, str], m: dict[str, str]) -> dict[str, Any]:
        """One case for the case page (403 outside the caller's read scope)."""
        from streams.dashboard import strip_personal, why

        cid = m["case_id"]
        now = self.now()
        d = self.rs.detail(cid, now)
        if d is None:
            raise Refused(404, f"没有此案件 no case {cid!r}")
        held = W.holders(self.rs, [cid]).get(cid, frozenset())
        place = {k: d.get(k) for k in ("district", "street", "patrol_area")}
        try:
            auth.check_read(p, place, d.get("department"), d.get("reporters") or (), held)
        except Forbidden as err:
            raise Refused(403, str(err)) from None
        if p.role not in PERSONAL_OK:
            d = strip_personal(d)
        ext = W.pending_extensions(self.rs, [cid]).get(cid)
        d["actions"] = actions_for(p, d, held, ext)
        d.pop("reporters", None)
        n = self.names
        d.update(type_name=n.type(d.get("type_code")),
                 department_name=n.department(d.get("department")),
                 street_name=n.place(d.get("street")),
                 community_name=n.place(d.get("community")),
                 district_name=n.place(d.get("district")))
        t = self.taxonomy.types.get(d.get("type_code") or "")
        d["type_zh"], d["type_en"] = (t.name_zh, t.name_en) if t else (None, None)
        dep = self.taxonomy.departments.get(d.get("department") or "")
        d["department_zh"], d["department_en"] = (dep.name_zh, dep.name_en) if dep \
            else (None, None)
        d["why"] = why(d)
        d["closing_standard"] = t.closing_standard if t else None
        d["photos"] = W.photos(self.rs, cid)
        d["extension_minutes"] = ext
        summary = self.rs.get(cid)
        due = summary.due() if summary else None
        d["due"] = due.isoformat() if due else None
        if ext and summary is not None:
            d["new_due"] = self.extended_due(summary, ext)
        if d.get("state") == "triage":
            d["suggestions"] = self.suggestions(d.get("description") or "")
        for h in d.get("history") or ():
            h["actor_name"] = n.department(h["actor"]) if h.get("role") == "department" \
                and h.get("actor") in self.taxonomy.departments else h.get("actor")
        d["now"] = now.isoformat()
        d["clock_speed"] = getattr(self.g.clock, "speed", 1.0)
        return d

    def types(self, p: Principal, q: dict[str, str], m: dict[str, str]) -> dict[str, Any]:
        """The types for the picker: code, names, kind, self-disposable."""
        return {"items": [{"code": t.code, "zh": t.name_zh, "en": t.name_en, "kind": t.kind,
                           "self_disposable": t.handling == "self_disposable",
                           "keywords": list(t.keywords_zh)[:8]}
                          for t in self.taxonomy.types.values()]}

    def departments(self, p: Principal, q: dict[str, str], m: dict[str, str]
                    ) -> dict[str, Any]:
        """The departments a case can be dispatched to, with names."""
        return {"items": [{"code": k, "zh": d.name_zh, "en": d.name_en}
                          for k, d in self.taxonomy.departments.items()
                          if k != "command_center"]}

    async def map(self, request: web.Request) -> web.StreamResponse:
        """The streets of the caller's district (WGS-84 GeoJSON) for the pages' maps."""
        try:
            p = self.who(request)
        except Refused as r:
            return _json({"error": str(r)}, r.status)
        district = sorted(p.districts)[0] if p.districts else (
            (sorted(p.streets)[0][:6] if p.streets else None)
            or (sorted(p.patrol_areas)[0][:6] if p.patrol_areas else None)
            or self.default_district())
        if district not in self._geo:
            locator = self.g.engine.locator

            def build() -> bytes:
                return orjson.dumps(locator.geojson("streets", district, simplify_m=10.0,
                                                    precision=5))
            self._geo[district] = await asyncio.to_thread(build)
        body = self._geo[district]
        resp = web.Response(body=body, content_type="application/geo+json",
                            headers={"Cache-Control": "private, max-age=3600"})
        resp.enable_compression()
        return resp

    # -- live ------------------------------------------------------------------------------

    def _may_read(self, p: Principal, case_id: str) -> bool:
        c = self.rs.get(case_id)
        if c is None:
            return False
        try:
            auth.check_read(p, {"district": c.district, "street": c.street,
                                "patrol_area": c.patrol_area}, c.department, c.reporters,
                            {x for x in (c.department, c.unit) if x})
        except Forbidden:
            return False
        return True

    async def events(self, request: web.Request) -> web.StreamResponse:
        """``event: case`` with ``{case_id, type, state_to, at}`` for each stored event of
        a case the caller may read (the projector's live feed, as the dashboard's)."""
        try:
            p = self.who(request)
        except Refused as r:
            return _json({"error": str(r)}, r.status)
        feed = getattr(self.g, "projector", None) or getattr(self.g, "live_feed", None)
        resp = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q = feed.subscribe() if feed is not None else asyncio.Queue()
        self._streams.add(q)
        try:
            await resp.write(b"retry: 2000\n: connected\n\n")
            while True:
                try:
                    item = await asyncio.wait_for(q.get(), SSE_PING)
                except TimeoutError:
                    await resp.write(b": ping\n\n")
                    continue
                if item is None:
                    break
                if item["kind"] != "event":
                    continue
                data = item["data"]
                cid = data.get("case_id") or ""
                if not await asyncio.to_thread(self._may_read, p, cid):
                    continue
                out = {k: data.get(k) for k in ("case_id", "type", "state_to", "at")}
                await resp.write(b"event: case\ndata: " + orjson.dumps(out) + b"\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if feed is not None:
                feed.unsubscribe(q)
            self._streams.discard(q)
        return resp

    async def close_streams(self, _app: Any = None) -> None:
        for q in list(self._streams):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)


def install_work_pages(grid_app: Any) -> WorkPages:
    """Register the work pages beside the dashboard (call after
    :func:`streams.dashboard.install_dashboard`: its sign-in, read store and map layers)."""
    pages = WorkPages(grid_app, grid_app.api.registry)
    web_ = grid_app.app.web
    router = web_.web_app.router
    for method, path, handler in pages.routes():
        router.add_route(method, path, handler)
    router.add_static("/work/static/", STATIC, append_version=False)
    web_.web_app.on_shutdown.append(pages.close_streams)
    grid_app.work_pages = pages
    return pages
