"""HTTP API (``/api/v1``, JSON) and Open311 GeoReport v2 (``/open311/v2``) on the worker's
Faust web server (aiohttp). :func:`install` wires every route in one place; see docs/api.md.

One module per job: :mod:`.common` (the route declaration, errors, the handlers'
dependencies :class:`~streams.web.common.Api`), :mod:`.meta` (index, health, readiness,
OpenAPI, the caller), :mod:`.reports`, :mod:`.cases` (one case, case and work-order lists),
:mod:`.actions`, :mod:`.photos` (the handlers of :mod:`streams.photos`), :mod:`.open311`.
Each declares its routes (method, path, handler, parameters
with their ranges, body model, the statuses it answers); :mod:`streams.openapi` builds the
OpenAPI document from the same declarations.

* Writes (reports, actions) are checked here — :func:`grid.intake.parse_report`,
  :class:`grid.models.ActionRequest`, the token's role and scope (:mod:`grid.auth`) — and
  produced to ``grid.reports.v1`` / ``grid.commands.v1``. The engine decides; an action
  waits for the engine's answer on the event stream (:mod:`streams.results`).
* Reads — one case, lists, Open311 requests — come from the read store
  (``grid_app.read_store``, SQL: :mod:`store.reader`): every worker answers for every case.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from grid import open311 as georeport
from streams.signin import allow_origins
from streams.web import actions, cases, meta, photos, reports
from streams.web import open311 as o311
from streams.web.common import API, O311, Api, Handler, HttpError, Route, json_response, log

ROUTES: list[Route] = [*meta.ROUTES, *reports.ROUTES, *cases.ROUTES, *actions.ROUTES,
                       *photos.ROUTES, *o311.ROUTES]


def install(grid_app: Any) -> Api:
    """Register the API (photos included), the Open311 routes and the JSON answer for an
    unmatched path on ``grid_app.app``'s web server; ``grid_app.api`` is the handlers'
    :class:`Api`."""
    api = Api(grid_app)
    web_app = grid_app.app.web.web_app
    allow_origins(web_app, grid_app.settings.allowed_origins)  # the cookie door's origins
    for route in ROUTES:
        web_app.router.add_route(route.method, route.path, bind(api, route))
    web_app.middlewares.append(unmatched_as_json)
    grid_app.api = api
    return api


def bind(api: Api, route: Route) -> Handler:
    """The aiohttp handler of ``route``: its function with ``api``; an :class:`HttpError`
    becomes its answer (Open311 routes: in the GeoReport format), any other exception a 500
    without a traceback."""
    fn = functools.partial(route.handler, api)

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except HttpError as err:
            if route.open311:
                return o311.error_response(request, err.status, err.body["error"],
                                           err.headers)
            return json_response(err.body, err.status, err.headers)
        except Exception as err:  # never leak a traceback page
            log.exception("API %s %s failed", request.method, request.path)
            msg = f"internal error: {type(err).__name__}"
            if route.open311:
                return o311.error_response(request, 500, msg)
            return json_response({"error": msg}, 500)

    handler.__doc__ = route.handler.__doc__
    return handler


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
            return json_response(georeport.errors_json([(exc.status, msg)]), exc.status)
        return json_response({"error": f"{msg}; the endpoints are listed in "
                                       f"{API}/openapi.json"}, exc.status)
