"""Which buttons a work page shows (the API's role, state and scope rules) and the sign-in
door's cross-site check, without a server."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from grid.auth import Principal
from streams.settings import Settings
from streams.signin import (
    ALLOWED_ORIGINS,
    COOKIE,
    CrossSite,
    allow_origins,
    principal_of,
    same_origin,
)
from streams.work_pages import actions_for

CC = Principal("yangpu-cc", "command_center", districts=frozenset({"310110"}))
OTHER_CC = Principal("pudong-cc", "command_center", districts=frozenset({"310115"}))
WATER = Principal("water", "department", department="water")
GAS = Principal("gas", "department", department="gas")
SUP = Principal("sup-p14", "supervisor", patrol_areas=frozenset({"310110012-P14"}))
VIEWER = Principal("viewer", "viewer")


def case(state: str, **kw) -> dict:
    return {"state": state, "district": "310110", "street": "310110012",
            "patrol_area": "310110012-P14", "department": "water", "overdue": False,
            "reporters": ["sup-p14"], **kw}


@pytest.mark.parametrize("p,state,ext,want", [
    (CC, "triage", None, ["classify", "reject"]),
    (CC, "filed", None, ["reject", "dispatch"]),
    (CC, "returned", None, ["dispatch"]),
    (CC, "accepted", 120, ["grant_extension", "deny_extension"]),
    (CC, "accepted", None, []),
    (CC, "verified", None, ["close"]),
    (OTHER_CC, "verified", None, []),  # outside its district
    (WATER, "dispatched", None, ["accept", "dispose", "return", "request_extension"]),
    (WATER, "accepted", 120, ["dispose", "return"]),  # one extension request at a time
    (WATER, "verified", None, []),
    (GAS, "dispatched", None, []),  # another department's work order
    (SUP, "disposed", None, ["verify"]),
    (SUP, "dispatched", None, []),
    (VIEWER, "filed", None, []),
])
def test_buttons_follow_role_state_and_scope(p, state, ext, want):
    assert actions_for(p, case(state), frozenset({"water"}), ext) == want


def test_an_overdue_case_offers_a_supervision_order():
    assert actions_for(CC, case("accepted", overdue=True), frozenset({"water"}), None) == \
        ["supervise"]
    out_of_patrol = case("disposed", patrol_area="310110012-P01")
    assert actions_for(SUP, out_of_patrol, frozenset(), None) == []


class Registry:
    def lookup(self, token):
        return {"demo-command-center": CC}.get(token)


def request(method: str, app: web.Application | None = None, **headers: str):
    return make_mocked_request(method, "/api/v1/cases/x/actions", app=app,
                               headers={"Host": "grid.local:6066", **headers})


def test_a_cookie_signed_post_must_come_from_this_origin():
    cookie = {"Cookie": f"{COOKIE}=demo-command-center"}
    assert principal_of(request("GET", **cookie), Registry()) == CC  # reads need no origin
    ok = request("POST", Origin="http://grid.local:6066", **cookie)
    assert same_origin(ok) and principal_of(ok, Registry()) == CC
    referer = request("POST", Referer="http://grid.local:6066/console", **cookie)
    assert principal_of(referer, Registry()) == CC
    for bad in (request("POST", Origin="http://evil.example", **cookie),
                request("POST", **cookie), request("POST", Origin="null", **cookie)):
        with pytest.raises(CrossSite, match="cross-site request refused"):
            principal_of(bad, Registry())
    bearer = request("POST", Authorization="Bearer demo-command-center",
                     Origin="http://evil.example")
    assert principal_of(bearer, Registry()) == CC  # a token is not a browser session
    assert principal_of(request("POST", Origin="http://evil.example"), Registry()) is None


def test_allowed_origins_for_a_proxy(monkeypatch):
    monkeypatch.setenv("GRID_ALLOWED_ORIGINS", "https://grid.example.org/, https://b.example")
    app = web.Application()
    allow_origins(app, Settings().allowed_origins)  # as streams.web.install does
    assert app[ALLOWED_ORIGINS] == {"https://grid.example.org", "https://b.example"}
    assert same_origin(request("POST", app, Origin="https://grid.example.org"))
    assert same_origin(request("POST", app, Origin="https://b.example"))
    assert not same_origin(request("POST", app, Origin="https://grid.example.org.evil.example"))
    # the environment is read by the settings only, never by the door itself
    assert not same_origin(request("POST", Origin="https://grid.example.org"))


async def test_the_served_door_takes_its_origins_from_the_settings(monkeypatch):
    """Through a real aiohttp server: sign-out from a page of an allowed origin passes, from
    another origin it is refused (the origins set by install_signin, not read per request)."""
    from aiohttp.test_utils import TestClient, TestServer

    from streams.signin import install_signin

    monkeypatch.setenv("GRID_ALLOWED_ORIGINS", "https://grid.example.org")
    app = web.Application()
    install_signin(app, Registry(), Settings().allowed_origins)
    monkeypatch.delenv("GRID_ALLOWED_ORIGINS")  # read once, at install
    async with TestClient(TestServer(app)) as client:
        ok = await client.post("/logout", headers={"Origin": "https://grid.example.org"},
                               allow_redirects=False)
        bad = await client.post("/logout", headers={"Origin": "https://evil.example"},
                                allow_redirects=False)
        assert (ok.status, ok.headers["Location"]) == (303, "/login")
        assert bad.status == 403
