"""Sign-in for the pages: a form takes a user's token (the API's bearer tokens) and keeps it
in an HttpOnly, SameSite=Strict cookie; every page and page API reads the caller from that
cookie or from an ``Authorization: Bearer`` header, checked server-side by the same role
and scope rules as the API (grid.auth).

* ``GET /login`` — the form, and who is signed in (name, role, scope)
* ``POST /login`` — field ``token`` (and ``next``): sets the cookie, redirects to ``next``
* ``POST /logout`` — clears the cookie

:func:`principal_of` is the one door for the API, the pages and the photos: a bearer token
(or an Open311 ``api_key``), else the cookie. A request that changes something (POST, PUT,
PATCH, DELETE) and is signed in by the cookie must come from this origin — its ``Origin``
header (else ``Referer``) names this host or one of the allowed origins (GRID_ALLOWED_ORIGINS,
set on the web app by :func:`allow_origins`) — or it is
refused (:class:`CrossSite`, 403): the SameSite=Strict cookie is the first guard against
cross-site request forgery, this check the second.

Every response of the web server carries a Content-Security-Policy (scripts, styles and
connections from this origin only; no framing), ``X-Frame-Options: DENY`` and
``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from grid import auth
from grid.auth import Principal

COOKIE = "grid_session"
#: the other origins (``scheme://host[:port]``) whose pages may post with the cookie
ALLOWED_ORIGINS = web.AppKey("grid_allowed_origins", frozenset)
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as exc:  # redirects and errors raised as exceptions
        _secure(exc)
        raise
    return _secure(resp)


def _secure(resp: web.StreamResponse) -> web.StreamResponse:
    if not resp.prepared:  # a stream already sent its headers
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
    return resp


UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CrossSite(Exception):
    """A cookie-signed request that changes something came from another origin (403)."""


def allow_origins(web_app: web.Application, origins: Iterable[str]) -> None:
    """Let pages of ``origins`` (``scheme://host[:port]``: the settings' ``allowed_origins``,
    GRID_ALLOWED_ORIGINS, for a proxy that rewrites Host) post to ``web_app`` with the
    cookie; call before it starts."""
    web_app[ALLOWED_ORIGINS] = frozenset(o.rstrip("/") for o in origins)


def same_origin(request: web.Request) -> bool:
    """Whether ``request`` says it comes from a page of this server: its ``Origin`` (else its
    ``Referer``) has this request's host, or is one of its app's :func:`allow_origins`.
    Neither header: not same-origin (browsers send ``Origin`` with every POST)."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin or origin == "null":
        return False
    u = urlsplit(origin)
    try:
        allowed = request.app[ALLOWED_ORIGINS]
    except KeyError:  # none set: this host only
        allowed = frozenset()
    return u.netloc == request.host or f"{u.scheme}://{u.netloc}" in allowed


def principal_of(request: web.Request, registry: auth.TokenRegistry,
                 api_key: str | None = None) -> Principal | None:
    """The caller: a bearer token (or an Open311 ``api_key``), else the sign-in cookie;
    ``None`` when none is valid. The one door of the API, the pages and the photos.

    Raises :class:`CrossSite` for a request that changes something, is signed in by the
    cookie only and does not come from this origin (:func:`same_origin`)."""
    token = auth.bearer_token(request.headers.get("Authorization"), api_key)
    if token is not None:
        return registry.lookup(token)
    token = request.cookies.get(COOKIE)
    p = registry.lookup(token)
    if p is not None and request.method in UNSAFE and not same_origin(request):
        raise CrossSite(f"a signed-in change must come from this site's own pages: the request "
                        f"came from {request.headers.get('Origin') or 'an unnamed origin'}, "
                        f"not {request.scheme}://{request.host} (cross-site request refused)")
    return p


def safe_next(target: str | None) -> str:
    """A local path to go to after sign-in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def login_redirect(request: web.Request) -> web.HTTPFound:
    return web.HTTPFound(f"/login?next={quote(request.path_qs, safe='')}")


class SignIn:
    def __init__(self, registry: auth.TokenRegistry) -> None:
        self.registry = registry

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("GET", "/login", self.form), ("POST", "/login", self.login),
                ("POST", "/logout", self.logout)]

    async def form(self, request: web.Request) -> web.Response:
        p = principal_of(request, self.registry)
        asked = request.query.get("next")
        return self._page(p, safe_next(asked) if asked else "")

    async def login(self, request: web.Request) -> web.Response:
        _not_cross_site(request)
        form = await request.post()
        token = str(form.get("token") or "").strip()
        asked = str(form.get("next") or "")
        p = self.registry.lookup(token) if token else None
        if p is None:
            return self._page(None, asked, status=401, error=(
                "请输入有效的令牌 · Enter a valid token" if token else
                "请输入令牌 · Enter your token"))
        # no page asked for (or the dashboard, which is not theirs): the role's own page
        target = safe_next(asked) if asked else "/"
        if target == "/":
            target = HOME.get(p.role, "/")
        resp = web.HTTPSeeOther(target)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                        secure=request.secure)
        raise resp

    async def logout(self, request: web.Request) -> web.Response:
        _not_cross_site(request)
        resp = web.HTTPSeeOther("/login")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    def _page(self, p: Principal | None, target: str, status: int = 200,
              error: str | None = None) -> web.Response:
        e = html.escape
        who = ""
        if p is not None:
            who = (f'<p class="who">已登录 Signed in: <b>{e(p.name)}</b> · {e(p.role)} · '
                   f'{e(p.scope_text())}</p>{_links(p)}<form method="post" action="/logout">'
                   '<button type="submit">退出 Sign out</button></form>')
        err = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
        body = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>登录 · Sign in — 城市网格化管理</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/dashboard/static/dashboard.css">
</head><body class="signin"><main>
<h1>城市网格化管理 · Grid management</h1>{who}{err}
<form method="post" action="/login">
<label for="token">令牌 Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{e(target)}">
<button type="submit">登录 Sign in</button>
</form></main></body></html>"""
        return web.Response(text=body, status=status, content_type="text/html",
                            headers={"Cache-Control": "no-store"})


HOME = {"command_center": "/", "viewer": "/", "department": "/inbox",
        "supervisor": "/m"}
PAGES = {"command_center": (("/console", "指挥中心 Console"), ("/", "大屏 Dashboard")),
         "viewer": (("/", "大屏 Dashboard"), ("/console", "指挥中心 Console (只读 read-only)")),
         "department": (("/inbox", "部门工单 Inbox"),),
         "supervisor": (("/m", "监督员 Supervisor"),)}


def _links(p: Principal) -> str:
    links = " · ".join(f'<a href="{href}">{html.escape(label)}</a>'
                       for href, label in PAGES.get(p.role, ()))
    return f'<p class="pages">{links}</p>' if links else ""


def _not_cross_site(request: web.Request) -> None:
    """Sign-in and sign-out from another site's page are refused (login CSRF)."""
    if request.headers.get("Origin") and not same_origin(request):
        raise web.HTTPForbidden(text="跨站请求被拒绝 · cross-site request refused",
                                headers={"Cache-Control": "no-store"})


def install_signin(web_app: web.Application, registry: auth.TokenRegistry,
                   allowed_origins: Iterable[str] = ()) -> SignIn:
    """Add the sign-in routes and the security headers to ``web_app`` (before it starts);
    ``allowed_origins``: see :func:`allow_origins`."""
    allow_origins(web_app, allowed_origins)
    s = SignIn(registry)
    for method, path, handler in s.routes():
        web_app.router.add_route(method, path, handler)
    web_app.middlewares.append(security_headers)
    return s
