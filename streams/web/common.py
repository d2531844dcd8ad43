"""What every HTTP handler shares: the route declaration (:class:`Route`, read by
:mod:`streams.openapi`), the error answer (:class:`HttpError`), the JSON answer, the
dependencies of a handler (:class:`Api`) and the small parameter parsers."""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel

from grid import auth
from grid.auth import Forbidden, Principal
from grid.models import Case, CaseEvent
from streams.photos import PhotoRoutes, photo_routes
from streams.results import CommandResults
from streams.signin import CrossSite, principal_of

log = logging.getLogger("streams.web")

API = "/api/v1"
O311 = "/open311/v2"
PENDING_MAX = 10_000
LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT = 1, 500, 50  # the ``limit`` of list endpoints

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
    """``data`` as JSON (orjson) with a final newline: a shell prompt after ``curl`` starts on
    its own line."""
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS) + b"\n",
                        status=status, headers=headers, content_type="application/json")


# --- the declaration of a route -----------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """A query (or path) parameter: its JSON Schema carries the type and the range."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    where: str = "query"
    required: bool = False


Answer = str | tuple[str, type[BaseModel] | None]


@dataclass(frozen=True)
class Route:
    """One endpoint: what :func:`streams.web.install` registers and what
    :func:`streams.openapi.spec` documents. ``handler(api, request)``; its docstring's first
    line is the summary. ``responses``: status -> description, or (description, model of
    the body); error bodies default to ``Error`` (Open311 routes: ``Open311Errors``).
    ``public``: no token needed. ``open311``: errors in the GeoReport format."""

    method: str
    path: str
    handler: Callable[..., Awaitable[web.StreamResponse]]
    responses: dict[int, Answer]
    params: tuple[Param, ...] = ()
    body: type[BaseModel] | None = None
    body_description: str = ""
    body_content: dict[str, Any] | None = None  # media type -> OpenAPI media object
    public: bool = False
    open311: bool = False
    in_document: bool = True
    tag: str = ""

    @property
    def summary(self) -> str:
        return (inspect.getdoc(self.handler) or "").split("\n", 1)[0].strip()

    @property
    def description(self) -> str:
        parts = (inspect.getdoc(self.handler) or "").split("\n\n", 1)
        return parts[1].replace("\n", " ").strip() if len(parts) > 1 else ""


AUTH: dict[int, Answer] = {
    401: "missing or unknown bearer token (WWW-Authenticate: Bearer)",
    403: "outside the token's role or scope"}


def limit_param() -> Param:
    return Param("limit", f"page size ({LIMIT_MIN}..{LIMIT_MAX})",
                 {"type": "integer", "minimum": LIMIT_MIN, "maximum": LIMIT_MAX,
                  "default": LIMIT_DEFAULT})


CURSOR = Param("cursor", "next_cursor of the previous page")


# --- the dependencies of a handler ----------------------------------------------------------

class Api:
    """What the handlers use: the worker (``grid_app``: engine, read store, producer, clock),
    the token registry, the body limit, the accepted reports not yet in the read store
    (bounded), the engine's answers to actions (:class:`CommandResults`) and the photo
    handlers (:class:`PhotoRoutes`)."""

    photos: PhotoRoutes

    def __init__(self, grid_app: Any, registry: auth.TokenRegistry | None = None) -> None:
        self.g = grid_app
        self.app = grid_app.app
        self.taxonomy = grid_app.engine.taxonomy
        s = grid_app.settings  # streams.settings.Settings: read once at the edge
        self.registry = registry or auth.load_registry(s.token_config(), self.taxonomy.departments)
        self.max_body: int = s.api_max_bytes
        self.action_wait: float = s.api_action_wait
        self.pending: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.results = CommandResults()  # the engine's answers, from the stored event stream
        self.photos = photo_routes(grid_app, self.registry)
        feed = getattr(grid_app, "projector", None) or getattr(grid_app, "live_feed", None)
        if feed is not None:
            feed.listeners.append(self.results.on_event)
        if not len(self.registry):
            log.warning("no API tokens configured (GRID_MODE=production): every API call is 401")

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

    async def stored_case(self, case_id: str) -> Case | None:
        """The case from the read store (rebuilt from its events; None: not stored yet).
        Every worker answers for every case: none needs the one holding its street."""
        return await asyncio.to_thread(self.g.read_store.case, case_id)

    async def load_case(self, case_id: str) -> Case:
        """The stored case; 404 when there is none."""
        case = await self.stored_case(case_id)
        if case is None:
            raise HttpError(404, f"no case {case_id!r}", case_id=case_id)
        return case

    async def load_case_and_history(self, case_id: str) -> tuple[Case, list[CaseEvent]]:
        """The stored case and its events (the engine's case keeps no history); 404."""
        got = await asyncio.to_thread(self.g.read_store.case_and_history, case_id)
        if got is None:
            raise HttpError(404, f"no case {case_id!r}", case_id=case_id)
        return got

    async def case_of_report(self, rid: str) -> Case | None:
        cid = await asyncio.to_thread(self.g.read_store.case_for_report, rid)
        return await self.stored_case(cid) if cid else None

    def report_id_of(self, case_id: str) -> str | None:
        """The id of the report that opened ``case_id`` (blocking: the read store)."""
        rs = getattr(self.g, "read_store", None)
        return rs.report_id(case_id) if rs is not None else None


# --- parameters -------------------------------------------------------------------------------

def parse_limit(q: dict[str, str]) -> int:
    """The ``limit`` parameter: LIMIT_MIN..LIMIT_MAX, default LIMIT_DEFAULT (422 otherwise)."""
    span = f"{LIMIT_MIN}..{LIMIT_MAX}"
    try:
        limit = int(q.get("limit") or LIMIT_DEFAULT)
    except ValueError:
        raise HttpError(422, "limit must be an integer",
                        errors=[{"field": "limit", "message": span}]) from None
    if not LIMIT_MIN <= limit <= LIMIT_MAX:
        raise HttpError(422, f"limit must be between {LIMIT_MIN} and {LIMIT_MAX}",
                        errors=[{"field": "limit", "message": span}])
    return limit


def parse_bool(v: str | None, name: str) -> bool | None:
    """``1/true/yes`` or ``0/false/no`` (None when absent); 422 otherwise."""
    if v is None or v == "":
        return None
    if v.lower() in ("1", "true", "yes"):
        return True
    if v.lower() in ("0", "false", "no"):
        return False
    raise HttpError(422, f"{name} must be true or false",
                    errors=[{"field": name, "message": "true or false"}])


def as_uuid(v: str) -> str | None:
    """``v`` as a canonical UUID string, None when it is not one."""
    try:
        return str(uuid.UUID(v))
    except ValueError:
        return None


def report_uuid(v: str) -> str:
    """A report id in a path: a UUID, else 404."""
    rid = as_uuid(v)
    if rid is None:
        raise HttpError(404, f"{v[:80]!r} is not a report id (a UUID)")
    return rid


def loads(raw: bytes) -> Any:
    """A JSON body; 422 when it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise HttpError(422, f"invalid JSON: {err}", errors=[
            {"field": "body", "message": "not valid JSON"}]) from None


def guard(check: Callable[..., None], *args: Any) -> None:
    """Run an authorisation check of :mod:`grid.auth`; its refusal is a 403."""
    try:
        check(*args)
    except Forbidden as err:
        raise HttpError(403, str(err)) from None


def to_datetime(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v)
        except ValueError:
            return None
    return None
