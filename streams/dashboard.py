"""The command-center dashboard on the worker's web server (aiohttp routes).

* ``GET /`` — the page (streams/static/index.html; assets under ``/dashboard/static/``)
* ``GET /dashboard/api/summary.json?district=&street=`` — the scope (city, one district or
  one street: :meth:`Dashboard.scope_for`) and, for it: counters for today, tier flow,
  per-district (city), per-department and per-street figures, overdue list, open cases per
  district / street / community / cell, markers, recent alerts
* ``GET /dashboard/api/map/{layer}.geojson`` — one level's map (``districts``;
  ``streets?district=``; ``communities`` or ``cells?street=``): pre-built gzipped GeoJSON
  (:mod:`geodata.webmaps`), cached by the browser; ``/dashboard/api/cells.geojson`` and
  ``streets.geojson?district=`` stay (a district's cells only while it is small)
* ``GET /dashboard/api/cases?street=|department=|counter=|q=&state=&overdue=`` — a
  filtered case list of the scope (the drill-down from a street, a department, a counter;
  the search)
* ``GET /dashboard/api/cases/{case_id}`` — one case: summary, names of its place, type and
  department, decision with a plain-words reason, deadlines, history
* ``GET /dashboard/events`` — server-sent events: ``event`` (a case event with the case's
  new summary) and ``alert``

Everything comes from the read model (:mod:`streams.readmodel`); times use the engine clock,
so a sped-up clock (``GRID_CLOCK=x600``) shows the same overdue list as the escalation timer.

Signed-in users only (:mod:`streams.signin`): command centers and viewers, each within their
scope (a district command center sees its district; the live stream carries only its
cases). Viewers get no personal data (reporter ids, who acted). ``GRID_DASHBOARD_PUBLIC=1``
serves it without sign-in, with personal data stripped, for a public screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from grid import auth
from grid.auth import Principal
from grid.projection import TZ, CaseSummary, Figures
from grid.report import CityEvaluation
from streams.signin import login_redirect, principal_of

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SSE_PING = 15.0
MARKERS_MAX = 800
OVERDUE_MAX = 100
EVENT_FIELDS = ("event_id", "case_id", "seq", "type", "state_from", "state_to", "actor", "role",
                "at", "reason")
DASHBOARD_ROLES = ("command_center", "viewer")
PERSONAL_ROLES = ("supervisor", "citizen")  # actors whose names are personal data
PUBLIC = Principal("public", "viewer")  # GRID_DASHBOARD_PUBLIC: city scope, no personal data
CITY_NAME = "上海市"
DISTRICT_RE = re.compile(r"\d{6}")
STREET_RE = re.compile(r"\d{9}")
MAP_LAYERS = ("districts", "streets", "communities", "cells")


@dataclass(frozen=True)
class Scope:
    """What one page shows: the city (``district`` and ``street`` None), one district, or
    one street (``district`` is then the street's)."""

    level: str  # "city" | "district" | "street"
    district: str | None = None
    street: str | None = None

    def holds(self, district: str | None, street: str | None) -> bool:
        """Whether a case or alert at ``district`` / ``street`` belongs to this scope."""
        if self.level == "city":
            return True
        if self.level == "district":
            return district == self.district
        return street == self.street


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS) + b"\n",
                        status=status,
                        content_type="application/json",
                        headers={"Cache-Control": "no-store"})


class Dashboard:
    """Handlers over ``grid_app.read_store`` (SQL) and ``grid_app.projector`` (live events)."""

    def __init__(self, grid_app: Any, registry: auth.TokenRegistry, public: bool = False,
                 district: str | None = None) -> None:
        """``public``: served without sign-in (GRID_DASHBOARD_PUBLIC); ``district``: the one a
        city-wide user sees first instead of the city (GRID_DASHBOARD_DISTRICT)."""
        self.g = grid_app
        self.registry = registry
        self.public = public
        self.taxonomy = grid_app.engine.taxonomy
        self.locator = grid_app.engine.locator
        streets = Counter(s[:6] for s in self.locator.streets())
        self.loaded = sorted(streets)  # districts with streets (and cells) in the geodata
        self.main_district = streets.most_common(1)[0][0] if streets else None
        self.district = district or None
        from geodata.webmaps import WebMaps

        self.maps = WebMaps(self.locator.directory, self.locator.layers)
        if not self.maps.prebuilt:
            log.info("dashboard maps are built in memory on first use: %s",
                     self.maps.stale_reason)
        self._name_cache: dict[str, dict[str, str]] = {}
        self._streams: set[asyncio.Queue] = set()

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/", self.index),
            ("GET", "/dashboard", self.index),
            ("GET", "/dashboard/api/summary.json", self.summary),
            ("GET", "/dashboard/api/cells.geojson", self.cells),
            ("GET", "/dashboard/api/streets.geojson", self.streets),
            ("GET", "/dashboard/api/map/{layer}.geojson", self.map_layer),
            ("GET", "/dashboard/api/cases", self.case_list),
            ("GET", "/dashboard/api/cases/{case_id}", self.case),
            ("GET", "/dashboard/events", self.events),
        ]

    @property
    def projection(self) -> Any:
        return self.g.read_store

    def now(self) -> datetime:
        return self.g.clock.now()

    # -- who may look ----------------------------------------------------------------------

    def viewer(self, request: web.Request, page: bool = False) -> Principal:
        """The signed-in caller allowed to use the dashboard; otherwise a redirect to the
        sign-in page (``page``), 401 or 403 with a message that says why."""
        p = principal_of(request, self.registry)
        if p is None:
            if self.public:
                return PUBLIC
            if page:
                raise login_redirect(request)
            raise _error(401, "sign in first: POST /login with your token, or send "
                         "Authorization: Bearer <token>")
        if p.role not in DASHBOARD_ROLES:
            raise _error(403, f"the dashboard is for command centers and viewers; "
                         f"{p.name!r} signed in as {p.role!r}")
        return p

    def scope_for(self, p: Principal, district: str | None = None,
                  street: str | None = None) -> Scope:
        """The scope to show ``p``: the street or district asked for if ``p`` covers it (403
        otherwise; 422 for a malformed code), else ``p``'s own — a city-wide user the city
        (or ``GRID_DASHBOARD_DISTRICT``, or the one district loaded), a district user its
        (first) district, a street user its (first) street."""
        if street:
            if not STREET_RE.fullmatch(street):
                raise _error(422, f"street {street!r}: a 9-digit street code")
            if district and not street.startswith(district):
                raise _error(422, f"street {street} is not in district {district}")
            d = street[:6]
            if not (p.city_wide or d in p.districts or street in p.streets):
                raise _error(403, f"{p.name!r} may see only {p.scope_text()}, not street "
                             f"{street}")
            return Scope("street", d, street)
        if district:
            if not DISTRICT_RE.fullmatch(district):
                raise _error(422, f"district {district!r}: a 6-digit district code")
            if not p.city_wide and district not in p.districts:
                raise _error(403, f"{p.name!r} may see only {p.scope_text()}, not district "
                             f"{district}")
            return Scope("district", district)
        if p.city_wide:
            if self.district:
                return Scope("district", self.district)
            return Scope("district", self.loaded[0]) if len(self.loaded) == 1 \
                else Scope("city")
        if p.districts:
            return Scope("district", sorted(p.districts)[0])
        if p.streets:
            s = sorted(p.streets)[0]
            return Scope("street", s[:6], s)
        raise _error(403, f"the dashboard shows districts and streets; {p.name!r} covers "
                     f"{p.scope_text()} only")

    def district_for(self, p: Principal, asked: str | None) -> str | None:
        """One district for pages that show one (the analytics view): the one asked for if
        ``p`` covers it, else that of ``p``'s scope, else the configured one or the loaded
        district with the most streets."""
        return self.scope_for(p, asked).district or self.district or self.main_district

    def choices(self, p: Principal, scope: Scope) -> dict[str, Any]:
        """Where ``p`` may go from ``scope``: the city (city-wide users), the districts (all
        loaded ones for city-wide users, else its own), the streets of the scope's district
        it covers."""
        dn = self.locator.district_names
        districts = self.loaded if p.city_wide else sorted(p.districts)
        snames = self._names("streets")
        streets = []
        if scope.district:
            whole = p.city_wide or scope.district in p.districts
            streets = [s for s in self.locator.streets() if s.startswith(scope.district)
                       and (whole or s in p.streets)]
        return {"city": p.city_wide,
                "districts": [{"code": d, "name": dn.get(d, d)} for d in districts],
                "streets": [{"code": s, "name": snames.get(s, s)} for s in streets]}

    def scope_row(self, scope: Scope) -> dict[str, Any]:
        """The scope with names, and the header's words for it."""
        dn = self.locator.district_names.get(scope.district or "")
        sn = self._names("streets").get(scope.street or "")
        label = {"city": f"{CITY_NAME} Shanghai",
                 "district": f"{dn or scope.district} ({scope.district})",
                 "street": f"{dn or scope.district} › {sn or scope.street} ({scope.street})"
                 }[scope.level]
        return {"level": scope.level, "district": scope.district, "street": scope.street,
                "district_name": dn, "street_name": sn, "label": label,
                "title": {"city": CITY_NAME, "district": dn or scope.district,
                          "street": sn or scope.street}[scope.level]}

    @staticmethod
    def personal_ok(p: Principal) -> bool:
        return p.role == "command_center"

    # -- pages -----------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        self.viewer(request, page=True)
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def summary(self, request: web.Request) -> web.Response:
        p = self.viewer(request)
        scope = self.scope_for(p, request.query.get("district"), request.query.get("street"))
        body = await asyncio.to_thread(self.summary_data, scope)
        body["choices"] = self.choices(p, scope)
        return _json(body)

    def summary_data(self, scope: Scope | str | None) -> dict[str, Any]:
        """Everything the page shows for ``scope`` (a district code: that district; None:
        the city). Counters, tables, map counts, markers, lists and alerts all cover the
        same cases."""
        if not isinstance(scope, Scope):
            scope = Scope("district", scope) if scope else Scope("city")
        district, street = scope.district, scope.street
        p, now = self.projection, self.now()
        day = now.astimezone(TZ).date()
        overdue = p.overdue(now, district, street)
        markers = [self._marker(c, c.lateness(now) is not None)
                   for c in p.marked(now, district, street, MARKERS_MAX)]
        start, end = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
        depts = p.department_figures(start, end, now, district=district, street=street)
        counters = p.counters(day, now, district, street)
        counters["overdue"] = len(overdue)
        rm = getattr(self.g, "projector", None)
        snames, dnames = self._names("streets"), self.locator.district_names
        out: dict[str, Any] = {
            "now": now.isoformat(), "day": day.isoformat(), "scope": self.scope_row(scope),
            "district": district, "street": street,
            "clock_speed": getattr(self.g.clock, "speed", 1.0),
            "district_name": dnames.get(district or ""),
            "caught_up": bool(rm and rm.caught_up.is_set()),
            "cases": p.count(district, street),
            "counters": counters,
            "tier_flow": p.tier_flow(day, district, street),
            "tier_flow_all": p.tier_flow(None, district, street),
            "departments": [self._dept_row(f) for f in depts.values()],
            "overdue": [self._row(c, now) for c in overdue[:OVERDUE_MAX]],
            "overdue_total": len(overdue),
            "markers": markers,
            "alerts": [self.alert_row(a) for a in p.recent_alerts(50, district, street)][::-1],
            "districts": [], "streets": [], "cells": {}, "street_open": {},
            "district_open": {}, "community_open": {}, "loaded": self.loaded,
        }
        if scope.level == "city":
            out["district_open"] = {
                code: {**n, "name": dnames.get(code, code)}
                for code, n in p.open_by_district(now).items()}
            figs = p.district_figures(start, end, now)
            ranked = CityEvaluation(day, day, figs, Figures("city")).ranking()
            out["districts"] = [{**f.to_dict(), "rank": i, "name": dnames.get(f.key, f.key)}
                                for i, f in enumerate(ranked, 1)]
        else:
            streets = p.street_figures(start, end, now, district=district)
            out["streets"] = [self._street_row(f) for f in streets.values()
                              if street is None or f.key == street]
            out["street_open"] = {
                code: {**n, "name": snames.get(code, code)}
                for code, n in p.open_by_street(now, district).items()
                if street is None or code == street}
            out["cells"] = p.open_by_cell(district, street)
        if scope.level == "street":
            cnames = self._names("communities")
            out["community_open"] = {code: {**n, "name": cnames.get(code, code)}
                                     for code, n in p.open_by_community(now, street).items()}
        return out

    def _type_names(self, code: str | None) -> tuple[str | None, str | None]:
        t = self.taxonomy.types.get(code) if code else None
        return (t.name_zh, t.name_en) if t else (None, None)

    def _marker(self, c: CaseSummary, overdue: bool) -> dict[str, Any]:
        return {"case_id": c.case_id, "lon": c.lon, "lat": c.lat, "priority": c.priority,
                "overdue": overdue, "state": c.state, "type_code": c.type_code,
                "type_zh": self._type_names(c.type_code)[0]}

    def _dept_names(self, code: str | None) -> tuple[str | None, str | None]:
        d = self.taxonomy.departments.get(code) if code else None
        return (d.name_zh, d.name_en) if d else (None, None)

    def _row(self, c: CaseSummary, now: datetime) -> dict[str, Any]:
        zh, en = self._type_names(c.type_code)
        dzh, den = self._dept_names(c.department)
        late = c.lateness(now)
        return {"case_id": c.case_id, "type_code": c.type_code, "type_zh": zh, "type_en": en,
                "description": c.description[:160], "street": c.street,
                "street_name": self._names("streets").get(c.street or ""),
                "department": c.department, "department_zh": dzh, "department_en": den,
                "priority": c.priority, "created_at": _iso(c.created_at),
                "state": c.state, "stage": c.stage, "level": c.level,
                "late_seconds": round(late.total_seconds()) if late else 0,
                "lon": c.lon, "lat": c.lat}

    def _dept_row(self, f: Any) -> dict[str, Any]:
        d = self.taxonomy.departments.get(f.key)
        return {**f.to_dict(), "name_zh": d.name_zh if d else f.key,
                "name_en": d.name_en if d else f.key}

    def _street_row(self, f: Any) -> dict[str, Any]:
        return {**f.to_dict(), "name": self._names("streets").get(f.key, f.key)}

    def _names(self, layer: str) -> dict[str, str]:
        """Code -> name of a loaded layer (streets, communities); empty when unnamed."""
        if layer not in self._name_cache:
            gdf = self.locator.layers.get(layer)
            self._name_cache[layer] = (
                {str(c): str(n) for c, n in zip(gdf["code"], gdf["name"], strict=True)}
                if gdf is not None and {"code", "name"} <= set(gdf.columns) else {})
        return self._name_cache[layer]

    def alert_row(self, a: dict[str, Any]) -> dict[str, Any]:
        """An alert with the names of its type and street, and a sentence that uses them
        (``message``, the engine's own words with codes, stays)."""
        zh, en = self._type_names(a.get("type_code"))
        street = self._names("streets").get(a.get("street") or "")
        what = f"{zh} {en}" if zh else (a.get("type_code") or "unclassified 未分类")
        where = f"{street} ({a.get('street')})" if street else (a.get("street") or "")
        kind = ALERT_WORDS.get(a.get("kind", ""), a.get("kind", ""))
        text = f"{kind}: {what}" + (f" — {where}" if where else "")
        if a.get("kind") in ("warning", "supervision_order", "arbitration") and a.get("message"):
            text += f" · {a['message']}"
        return {**a, "type_zh": zh, "type_en": en, "street_name": street, "text": text}

    # -- geodata ---------------------------------------------------------------------------

    def _geo_response(self, request: web.Request, body: bytes | None,
                      what: str) -> web.Response:
        """Gzipped GeoJSON as it is (Content-Encoding: gzip), cached by the browser for a
        day and revalidated by its ETag; 404 naming ``what`` when there is none."""
        if body is None:
            return _json({"error": f"no map of {what} in the loaded geodata"}, 404)
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        headers = {"Cache-Control": "private, max-age=86400", "ETag": etag,
                   "Vary": "Accept-Encoding"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/geo+json",
                            headers={**headers, "Content-Encoding": "gzip"})

    async def map_layer(self, request: web.Request) -> web.Response:
        """One level's map: ``districts``; ``streets?district=``; ``communities`` or
        ``cells?street=``. Geometry only (no case data): any dashboard user may load it."""
        self.viewer(request)
        layer = request.match_info["layer"]
        if layer not in MAP_LAYERS:
            return _json({"error": f"no map layer {layer!r}: one of "
                                   f"{', '.join(MAP_LAYERS)}"}, 404)
        code: str | None = None
        if layer == "streets":
            code = request.query.get("district") or ""
            if not DISTRICT_RE.fullmatch(code):
                return _json({"error": "streets need ?district= (a 6-digit code)"}, 422)
        elif layer in ("communities", "cells"):
            code = request.query.get("street") or ""
            if not STREET_RE.fullmatch(code):
                return _json({"error": f"{layer} need ?street= (a 9-digit code)"}, 422)
        body = await asyncio.to_thread(self.maps.get, layer, code)
        return self._geo_response(request, body, f"{layer} {code or ''}".strip())

    async def cells(self, request: web.Request) -> web.Response:
        """A district's cells in one piece (while it has at most
        :data:`geodata.webmaps.DISTRICT_CELLS_MAX`; 422 otherwise: ask per street)."""
        from geodata.webmaps import DISTRICT_CELLS_MAX

        p = self.viewer(request)
        district = request.query.get("district") or self.scope_for(p).district \
            or (self.loaded[0] if self.loaded else "")
        if not DISTRICT_RE.fullmatch(district or ""):
            return _json({"error": "cells need ?district= (a 6-digit code)"}, 422)
        streets = [s for s in self.locator.streets() if s.startswith(district)]
        body = await asyncio.to_thread(self.maps.district_cells, district, streets)
        if body is None and streets:
            return _json({"error": f"district {district} has more than {DISTRICT_CELLS_MAX:,} "
                                   "cells: load them per street (/dashboard/api/map/"
                                   "cells.geojson?street=)"}, 422)
        return self._geo_response(request, body, f"cells {district}")

    async def streets(self, request: web.Request) -> web.Response:
        p = self.viewer(request)
        district = request.query.get("district") or self.scope_for(p).district \
            or (self.loaded[0] if self.loaded else "")
        if not DISTRICT_RE.fullmatch(district or ""):
            return _json({"error": "streets need ?district= (a 6-digit code)"}, 422)
        body = await asyncio.to_thread(self.maps.get, "streets", district)
        return self._geo_response(request, body, f"streets {district}")

    # -- one case --------------------------------------------------------------------------

    async def case(self, request: web.Request) -> web.Response:
        p = self.viewer(request)
        cid = request.match_info["case_id"]
        d = await asyncio.to_thread(self.projection.detail, cid, self.now())
        if d is None:
            return _json({"error": f"no case {cid!r}"}, 404)
        if not p.covers(d):
            return _json({"error": f"{p.name!r} may see only {p.scope_text()}; this case is "
                                   f"in district {d.get('district')}"}, 403)
        if not self.personal_ok(p):
            d = strip_personal(d)
        d["type_zh"], d["type_en"] = self._type_names(d.get("type_code"))
        d["department_zh"], d["department_en"] = self._dept_names(d.get("department"))
        d["district_name"] = self.locator.district_names.get(d.get("district") or "")
        d["street_name"] = self._names("streets").get(d.get("street") or "")
        d["community_name"] = self._names("communities").get(d.get("community") or "")
        d["why"] = why(d)
        d["recurrence"] = await asyncio.to_thread(self.recurrence, cid)
        return _json(d)

    def recurrence(self, case_id: str) -> dict[str, Any] | None:
        """The case's recurrence flag (issue 20): earlier closed cases of its type at its
        place within the window; None when it did not recur."""
        from store.analytics import Analytics

        dup = self.g.engine.ruleset.duplicates
        flag = Analytics(self.projection.engine).recurrence_of(
            case_id, radius_m=lambda t: dup.by_type.get(t, dup).distance_m)
        return {**flag.to_dict(), "text": flag.text} if flag else None

    async def case_list(self, request: web.Request) -> web.Response:
        """Cases of the caller's district for one drill-down: ``street``, ``department``
        (with ``state``: open (default) or all, and ``overdue=1``), ``counter`` (today's
        counter key) or ``q`` (case id, report id or text); newest first, at most
        ``LIST_MAX`` (then ``more`` is true and ``total`` null). 422 names a bad
        parameter."""
        p = self.viewer(request)
        q = dict(request.query)
        scope = self.scope_for(p, q.get("district"), q.get("street"))
        body, status = await asyncio.to_thread(self.case_list_data, q, scope, self.now())
        return _json(body, status)

    def case_list_data(self, q: dict[str, str], scope: Scope | str | None,
                       now: datetime) -> tuple[dict[str, Any], int]:
        """The body and status of :meth:`case_list` (runs in a thread: the store is SQL):
        the cases of ``scope`` (a district code: that district; None: the city)."""
        if not isinstance(scope, Scope):
            scope = Scope("district", scope) if scope else Scope("city")
        district, street = scope.district, scope.street
        proj = self.projection
        where = "" if scope.level == "city" else " · " + self.scope_row(scope)["label"]
        at = {"street": street} if street else {}  # (the in-memory Projection has no street)
        if q.get("q") is not None:
            cases = proj.search(q["q"], district, limit=LIST_MAX + 1, **at)
            title = f"搜索 Search: {q['q'].strip()}"
        elif q.get("counter"):
            day = now.astimezone(TZ).date()
            try:
                cases = proj.day_cases(day, q["counter"], now, district, **at)
            except ValueError as err:
                return {"error": str(err)}, 422
            title = f"今日 Today: {COUNTER_WORDS.get(q['counter'], q['counter'])}{where}"
        elif q.get("street") or q.get("department"):
            state = q.get("state") or "open"
            if state not in ("open", "all"):
                return {"error": f"state {state!r}: open or all"}, 422
            overdue = True if q.get("overdue") in ("1", "true") else None
            cases, _ = proj.list(district=district, street=q.get("street") or street,
                                 department=q.get("department"),
                                 state="open" if state == "open" else None,
                                 overdue=overdue, now=now, limit=LIST_MAX + 1)
            if q.get("street"):
                name = self._names("streets").get(q["street"])
                title = f"街镇 Street: {name} ({q['street']})" if name else \
                    f"街镇 Street: {q['street']}"
            else:
                zh, en = self._dept_names(q["department"])
                title = (f"部门 Department: {zh} {en}" if zh else
                         f"部门 Department: {q['department']}") + where
            title += " · " + ("超期 overdue" if overdue else STATE_WORDS[state])
        else:
            return {"error": "give one of street, department, counter or q"}, 422
        rows = [self._row(c, now) for c in cases[:LIST_MAX]]
        return {"title": title, "district": district, "street": street,
                "level": scope.level, "items": rows,
                "total": len(cases) if len(cases) <= LIST_MAX else None,
                "more": len(cases) > LIST_MAX}, 200

    # -- live ------------------------------------------------------------------------------

    def _sse_payload(self, item: dict[str, Any], p: Principal,
                     scope: Scope | None = None) -> bytes | None:
        """The message for ``p`` looking at ``scope``, or ``None`` when it is outside
        either."""
        kind, data = item["kind"], item["data"]
        scope = scope or Scope("city")
        if kind == "event":
            c = self.projection.get(data.get("case_id", ""))
            if c is None or not p.covers({"district": c.district, "street": c.street}) \
                    or not scope.holds(c.district, c.street):
                return None
            event = {k: data.get(k) for k in EVENT_FIELDS}
            if not self.personal_ok(p) and event.get("role") in PERSONAL_ROLES:
                event["actor"] = None
            out = {"event": event,
                   "case": self._row(c, self.now()) | {"state": c.state, "cell": c.cell}}
        else:
            if not p.city_wide and data.get("district") not in p.districts:
                return None
            if not scope.holds(data.get("district"), data.get("street")):
                return None
            out = self.alert_row(data)
        return f"event: {kind}\ndata: ".encode() + orjson.dumps(out) + b"\n\n"

    async def events(self, request: web.Request) -> web.StreamResponse:
        p = self.viewer(request)
        scope = self.scope_for(p, request.query.get("district"), request.query.get("street"))
        rm = self.g.projector or getattr(self.g, "live_feed", None)  # who publishes events
        resp = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q = rm.subscribe() if rm is not None else asyncio.Queue()
        self._streams.add(q)
        try:
            await resp.write(b"retry: 2000\n: connected\n\n")
            while True:
                try:
                    item = await asyncio.wait_for(q.get(), SSE_PING)
                except TimeoutError:
                    await resp.write(b": ping\n\n")
                    continue
                if item is None:  # server shutting down
                    break
                if (payload := self._sse_payload(item, p, scope)) is not None:
                    await resp.write(payload)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if rm is not None:
                rm.unsubscribe(q)
            self._streams.discard(q)
        return resp

    async def close_streams(self, _app: Any = None) -> None:
        """End open event streams, so that the web server stops without waiting for them."""
        for q in list(self._streams):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


def why(d: dict[str, Any]) -> list[str]:
    """A case's routing decision in sentences with names (the rule ids kept in brackets),
    from the detail's fields and the decision's ``<field> <value> <- <rule>`` lines."""
    dec = d.get("decision") or {}
    if not dec:
        return []
    by: dict[str, str] = {}
    for line in dec.get("explanation") or ():
        head, sep, rule = line.partition(" <- ")
        if sep and " " in head:
            by.setdefault(head.split(" ", 1)[0], rule.strip())
    what = " ".join(x for x in (d.get("type_zh"), d.get("type_en")) if x) or \
        (d.get("type_code") or "this report")
    out = []
    dept = " ".join(x for x in (d.get("department_zh"), d.get("department_en")) if x)
    if d.get("department"):
        out.append(f"Sent to {dept or d['department']} ({d['department']}): it is the "
                   f"department responsible for {what}"
                   + (f" (rule {by['department']})." if by.get("department") else "."))
    prio = d.get("priority")
    if prio and prio != "normal":
        reason = {"key_supervision": f"{what} is a key-supervision (重点监管) type"}.get(
            dec.get("handling") or "", f"the rules rate {what} {prio}")
        out.append(f"{PRIORITY_WORDS.get(prio, prio).capitalize()} because {reason}"
                   + (f" (rule {by['priority']})." if by.get("priority") else "."))
    tier = d.get("tier")
    if tier:
        out.append(f"Handled in the {TIER_WORDS.get(tier, tier)}"
                   + (f" (rule {by['tier']})." if by.get("tier") else "."))
    due = (d.get("deadlines") or {}).get("dispose")
    if due:
        cal = "around the clock" if dec.get("calendar") == "24h" else \
            f"on the {dec.get('calendar')} calendar (working time)"
        at = datetime.fromisoformat(due).astimezone(TZ)
        out.append(f"To be disposed of by {at:%Y-%m-%d %H:%M} Shanghai time, counted {cal}.")
    return out


PRIORITY_WORDS = {"urgent": "urgent 紧急", "high": "high priority 高", "normal": "normal 一般"}
TIER_WORDS = {"self": "self loop 自循环 (fixed on the spot)",
              "community": "community loop 微循环", "street": "street loop 小循环",
              "district": "district loop 大循环·区", "city": "city loop 大循环·市"}
ALERT_WORDS = {"key_supervision": "重点监管 Key supervision", "warning": "预警 Deadline warning",
               "supervision_order": "督办 Supervision order", "arbitration": "仲裁 Arbitration"}
COUNTER_WORDS = {"reported": "上报 reported (cases opened)", "filed": "立案 filed",
                 "self_closed": "自行处置 self-closed", "dispatched": "派遣 dispatched (cases)",
                 "closed": "结案 closed", "overdue": "超期 overdue now",
                 "merged": "重复合并 took in duplicate reports"}
STATE_WORDS = {"open": "在办 open", "all": "全部 all"}
LIST_MAX = 200


def _error(status: int, message: str) -> web.HTTPException:
    cls = {401: web.HTTPUnauthorized, 403: web.HTTPForbidden,
           422: web.HTTPUnprocessableEntity}[status]
    return cls(body=orjson.dumps({"error": message}), content_type="application/json",
               headers={"Cache-Control": "no-store"})


def strip_personal(detail: dict[str, Any]) -> dict[str, Any]:
    """A case detail without personal data: no reporter id, no names of supervisors or
    citizens who acted (departments and the command center stay: they act in office)."""
    out = dict(detail)
    if isinstance(out.get("report"), dict):
        out["report"] = {**out["report"], "reporter_id": None}
    out["history"] = [{**h, "actor": None} if h.get("role") in PERSONAL_ROLES else h
                      for h in out.get("history") or []]
    return out


def install_dashboard(grid_app: Any, registry: auth.TokenRegistry | None = None) -> Dashboard:
    """Register the dashboard and sign-in routes on ``grid_app.app``'s web server (needs the
    read store: call :func:`streams.readmodel.attach_read_store` first). ``registry``: the
    API's tokens (default: loaded as the API loads them)."""
    from streams.signin import install_signin

    if getattr(grid_app, "read_store", None) is None:
        from streams.readmodel import attach_read_store

        attach_read_store(grid_app)
    s = grid_app.settings
    if registry is None:
        registry = auth.load_registry(s.token_config(), grid_app.engine.taxonomy.departments)
    dash = Dashboard(grid_app, registry, s.dashboard_public, s.dashboard_district)
    install_signin(grid_app.app.web.web_app, registry, s.allowed_origins)
    web_ = grid_app.app.web  # streams.webserver: Faust's placeholder "/" is not there
    router = web_.web_app.router
    for method, path, handler in dash.routes():
        router.add_route(method, path, handler)
    router.add_static("/dashboard/static/", STATIC, append_version=False)
    web_.web_app.on_shutdown.append(dash.close_streams)
    grid_app.dashboard = dash
    return dash
