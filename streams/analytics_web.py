"""The analytics view (薄弱环节分析) on the worker's web server: hot spots on the map, the
recurrence queue, trend charts — beside the dashboard, with its sign-in and scopes.

* ``GET /analytics`` — the page (streams/static/analytics.html, .js, .css)
* ``GET /analytics/api/cases/{case_id}/recurrence?days=`` — the case's recurrence flag
  ("recurred: 3rd time in 30 days", the earlier cases), computed at read time
* ``GET /analytics/api/data.json?district=&from=&to=&days=`` — the content of
  :func:`store.analytics.monthly_report` for the period (Shanghai days, both inclusive;
  default: the last 28 days up to the engine's today); supervisors' ids only for command
  centers (viewers get no personal data)
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta
from typing import Any

import orjson
from aiohttp import web

from grid.analytics import RECUR_DAYS
from grid.projection import TZ
from streams.dashboard import STATIC, Dashboard, _json

CACHE_SECONDS = 60.0
MAX_DAYS = 366


def _fail(status: int, message: str) -> web.HTTPException:
    cls = {404: web.HTTPNotFound, 422: web.HTTPUnprocessableEntity}[status]
    return cls(body=orjson.dumps({"error": message}), content_type="application/json")


class AnalyticsView:
    """Handlers over the dashboard's read store and geodata (``dash``: its sign-in)."""

    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash
        self._cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("GET", "/analytics", self.page),
                ("GET", "/analytics/api/data.json", self.data),
                ("GET", "/analytics/api/cases/{case_id}/recurrence", self.recurrence)]

    async def page(self, request: web.Request) -> web.StreamResponse:
        self.dash.viewer(request, page=True)
        return web.FileResponse(STATIC / "analytics.html", headers={"Cache-Control": "no-cache"})

    def period(self, q: Any) -> tuple[date, date, int]:
        """(from, to, recurrence days) of the query; 422 names a bad parameter."""
        try:
            end = date.fromisoformat(q["to"]) if q.get("to") else \
                self.dash.now().astimezone(TZ).date()
            start = date.fromisoformat(q["from"]) if q.get("from") else end - timedelta(days=27)
            days = int(q.get("days") or RECUR_DAYS)
        except ValueError as err:
            raise _fail(422, f"from/to are YYYY-MM-DD and days a whole number: {err}") from err
        if end < start or (end - start).days >= MAX_DAYS or not 1 <= days <= 365:
            raise _fail(422, f"a period of 1 to {MAX_DAYS} days (from ≤ to) and days 1–365")
        return start, end, days

    async def data(self, request: web.Request) -> web.Response:
        p = self.dash.viewer(request)
        district = self.dash.district_for(p, request.query.get("district"))
        if not district:
            raise _fail(422, "no district: ask for one (district=310110)")
        start, end, days = self.period(request.query)
        key = (district, start, end, days)
        hit = self._cache.get(key)
        if hit is None or time.monotonic() - hit[0] > CACHE_SECONDS:
            try:
                out = await asyncio.to_thread(self.compute, district, start, end, days)
            except (KeyError, ValueError, FileNotFoundError) as err:
                raise _fail(404, f"no analytics for district {district}: {err}") from err
            hit = self._cache[key] = (time.monotonic(), out)
        out = hit[1]
        if not self.dash.personal_ok(p):
            out = {**out, "trends": {**out["trends"], "supervisors": []}}
        return _json(out)

    async def recurrence(self, request: web.Request) -> web.Response:
        """The case's recurrence flag, computed now from the earlier closed cases of its type
        at its place (``days``: the window, default 30): ``recurred`` false or the flag."""
        from store.analytics import Analytics

        p = self.dash.viewer(request)
        cid = request.match_info["case_id"]
        _, _, days = self.period({"from": "2000-01-01", "to": "2000-01-01",
                                  "days": request.query.get("days")})
        summary = await asyncio.to_thread(self.dash.projection.get, cid)
        if summary is None:
            raise _fail(404, f"no case {cid!r}")
        if not p.covers(summary.to_dict()):
            raise _fail(404, f"no case {cid!r} in {p.scope_text()}")
        dup = self.dash.g.engine.ruleset.duplicates
        flag = await asyncio.to_thread(
            Analytics(self.dash.projection.engine).recurrence_of, cid, days,
            lambda t: dup.by_type.get(t, dup).distance_m)
        return _json({"case_id": cid, "recurred": flag is not None,
                      **(flag.to_dict() if flag else {})})

    def compute(self, district: str, start: date, end: date, days: int) -> dict[str, Any]:
        from geodata.adjacency import cell_weights
        from store.analytics import monthly_report

        d, tax = self.dash, self.dash.taxonomy
        names = {**{k: t.name_zh for k, t in tax.departments.items()},
                 **{k: t.name_zh for k, t in tax.types.items()},
                 **{k: c.name_zh for k, c in tax.categories.items()},
                 **d.locator.district_names, **d._names("streets")}
        folder = str(d.locator.directory) if d.locator.directory else None
        dup = d.g.engine.ruleset.duplicates  # the worker's rules
        out = monthly_report(d.projection.engine, district, start, end, names,
                             cell_weights(district, folder),
                             lambda t: dup.by_type.get(t, dup).distance_m, days)
        out["hotspots"]["counts"] = {k: n for k, n in out["hotspots"]["counts"].items() if n}
        return out


def install_analytics(grid_app: Any) -> AnalyticsView:
    """Register the analytics view beside the dashboard (call after install_dashboard)."""
    view = AnalyticsView(grid_app.dashboard)
    router = grid_app.app.web.web_app.router
    for method, path, handler in view.routes():
        router.add_route(method, path, handler)
    return view
