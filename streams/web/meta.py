"""The API's own endpoints: the index, health, readiness, the OpenAPI document, the caller."""

from __future__ import annotations

from aiohttp import web

from streams.web.common import API, AUTH, O311, Api, Route, json_response


async def index(api: Api, request: web.Request) -> web.Response:
    """Links to everything (no token needed)."""
    return json_response({
        "api": API, "openapi": f"{API}/openapi.json", "health": f"{API}/health",
        "reports": f"{API}/reports", "cases": f"{API}/cases",
        "work_orders": f"{API}/work-orders", "open311": f"{O311}/services.json",
        "ready": f"{API}/ready", "auth": "Authorization: Bearer <token>"})


async def ready(api: Api, request: web.Request) -> web.Response:
    """Whether this worker can serve yet (no token).

    200 when the consumers have started, the tables are recovered and the read model has
    caught up; else 503 with the reasons in words."""
    why = api.g.not_ready()
    return json_response({"ready": not why, "reasons": why}, status=503 if why else 200)


async def health(api: Api, request: web.Request) -> web.Response:
    """This worker, its partitions and each consumer's state, lag and oldest waiting input.

    503 with ``status: failing`` and the reasons in words when a consumer is stuck (no
    token)."""
    consumers = api.g.consumers()
    failing = [c["reason"] for c in consumers.values() if c["stuck"]]
    return json_response({"status": "failing" if failing else "ok", "reasons": failing,
                          "consumers": consumers,
                          "worker": str(api.app.conf.canonical_url),
                          "app_id": api.g.settings.app_id,
                          "partitions": sorted(api.g.cases.stores),
                          "partition_count": api.g.settings.partitions,
                          "exactly_once": api.g.exactly_once,
                          "read_store": getattr(api.g, "read_store", None) is not None},
                         status=503 if failing else 200)


async def openapi(api: Api, request: web.Request) -> web.Response:
    """The OpenAPI document of this API; ``servers`` is the address it was asked on."""
    from streams.openapi import spec

    return json_response({**spec(), "servers": [{"url": f"{request.scheme}://{request.host}"}]})


async def me(api: Api, request: web.Request) -> web.Response:
    """The caller's role and scope."""
    return json_response(api.principal(request).public())


ROUTES = [
    Route("GET", API, index, {200: "links to the endpoints"}, public=True, tag="meta"),
    Route("GET", f"{API}/", index, {200: "links to the endpoints"}, public=True,
          in_document=False),
    Route("GET", f"{API}/health", health,
          {200: "every consumer makes progress",
           503: "a consumer is stuck: status failing, reasons in words"}, public=True, tag="meta"),
    Route("GET", f"{API}/ready", ready, {200: "ready", 503: "not ready: reasons in words"},
          public=True, tag="meta"),
    Route("GET", f"{API}/openapi.json", openapi, {200: "this document"}, public=True,
          tag="meta"),
    Route("GET", f"{API}/me", me, {200: "the caller's role and scope", **AUTH}, tag="meta"),
]
