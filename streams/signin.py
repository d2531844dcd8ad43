"""Sign-in for the pages: a form takes a user's token (the API's bearer tokens) and keeps it
in an HttpOnly, SameSite=Strict cookie; every page and page API reads the caller from that
cookie or from an ``Authorization: Bearer`` header, checked server-side by the same role
and scope rules as the API (grid.auth).

* ``GET /login`` — the form, and who is signed in (name, role, scope)
* ``POST /login`` — field ``token`` (and ``next``): sets the cookie, redirects to ``next``
* ``POST /logout`` — clears the cookie

Every response of the web server carries a Content-Security-Policy (scripts, styles and
connections from this origin only; no framing), ``X-Frame-Options: DENY`` and
``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from aiohttp import web

from grid import auth
from grid.auth import Principal

COOKIE = "grid_session"
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


def principal_of(request: web.Request, registry: auth.TokenRegistry) -> Principal | None:
    """The caller: a bearer token, else the sign-in cookie; ``None`` when neither is valid."""
    token = auth.bearer_token(request.headers.get("Authorization"))
    if token is None:
        token = request.cookies.get(COOKIE)
    return registry.lookup(token)


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
        return self._page(p, safe_next(request.query.get("next")))

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("token") or "").strip()
        target = safe_next(str(form.get("next") or "/"))
        p = self.registry.lookup(token) if token else None
        if p is None:
            return self._page(None, target, status=401, error=(
                "请输入有效的令牌 · Enter a valid token" if token else
                "请输入令牌 · Enter your token"))
        resp = web.HTTPSeeOther(target)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                        secure=request.secure)
        raise resp

    async def logout(self, request: web.Request) -> web.Response:
        resp = web.HTTPSeeOther("/login")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    def _page(self, p: Principal | None, target: str, status: int = 200,
              error: str | None = None) -> web.Response:
        e = html.escape
        who = ""
        if p is not None:
            who = (f'<p class="who">已登录 Signed in: <b>{e(p.name)}</b> · {e(p.role)} · '
                   f'{e(p.scope_text())}</p><form method="post" action="/logout">'
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


def install_signin(web_app: web.Application, registry: auth.TokenRegistry) -> SignIn:
    """Add the sign-in routes and the security headers to ``web_app`` (before it starts)."""
    s = SignIn(registry)
    for method, path, handler in s.routes():
        web_app.router.add_route(method, path, handler)
    web_app.middlewares.append(security_headers)
    return s
