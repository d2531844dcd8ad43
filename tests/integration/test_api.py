"""The HTTP API and Open311 end to end: two real ``grid worker`` processes (one consumer group,
partitions split between them) on the embedded broker, driven over real HTTP with httpx."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from geodata.locator import Locator
from streams.app import partition_of
from tests.integration.conftest import WorkerProc, fresh_point, make_report

P14 = (121.5260, 31.2590)  # patrol area 310110012-P14 (Yangpu)
P17 = (121.5150, 31.2950)  # patrol area 310110008-P17
DEPARTMENTS = ("roads", "water", "power", "sanitation", "urban_enforcement", "landscaping")
TOKENS = [
    {"token": "tok-sup-test", "name": "sup-test", "role": "supervisor", "districts": ["310110"]},
    {"token": "tok-sup-p14", "name": "sup-p14", "role": "supervisor",
     "patrol_areas": ["310110012-P14"]},
    {"token": "tok-cc-yangpu", "name": "cc-yangpu", "role": "command_center",
     "districts": ["310110"]},
    {"token": "tok-cc-huangpu", "name": "cc-huangpu", "role": "command_center",
     "districts": ["310101"]},
    {"token": "tok-viewer", "name": "viewer", "role": "viewer"},
    {"token": "tok-hotline", "name": "hotline", "role": "integration", "source": "hotline_12345"},
    {"token": "tok-citizen", "name": "citizen-app", "role": "integration", "source": "citizen"},
    *({"token": f"tok-dept-{d}", "name": d, "role": "department", "department": d}
      for d in DEPARTMENTS),
    *({"token": f"tok-pm{n}", "name": f"pm{n}", "role": "department",
       "department": "property_management", "unit": f"310110.property_management.{n}"}
      for n in ("01", "02")),  # property companies (registry units) of compounds Z0001, Z0002
]


def eventually(fetch, check, timeout: float = 20):
    """Lists come from the read model, which follows the event log: poll until ``check``."""
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if check(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer tok-{name}"}


class Api:
    """Two workers of one consumer group and an httpx client for each."""

    def __init__(self, a: WorkerProc, b: WorkerProc) -> None:
        self.workers = [a, b]
        self.clients = [httpx.Client(base_url=f"http://127.0.0.1:{w.web_port}", timeout=15)
                        for w in (a, b)]
        self.a, self.b = self.clients

    def url_of(self, i: int) -> str:
        return f"http://127.0.0.1:{self.workers[i].web_port}"

    def owner_index(self, street: str) -> int:
        """Which worker (0/1) holds the street's partition, per the workers' health."""
        health = [c.get("/api/v1/health").json() for c in self.clients]
        p = partition_of(street, health[0]["partition_count"])
        return next(i for i, h in enumerate(health) if p in h["partitions"])

    def post_report(self, report: dict, token: str = "sup-test", client: httpx.Client | None = None
                    ) -> httpx.Response:
        return (client or self.a).post("/api/v1/reports", json=report, headers=bearer(token))

    # 90 s: on a loaded CI machine the first offset commit after two workers join has been
    # seen to take ~31 s (the producer flush it waits for), holding processing back meanwhile
    def case_of(self, report_id: str, timeout: float = 90) -> dict:
        """Poll GET /reports/{id} until the report is a case; then the case."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.a.get(f"/api/v1/reports/{report_id}", headers=bearer("viewer"))
            if r.status_code == 200:
                return self.a.get(r.json()["case_url"], headers=bearer("viewer")).json()
            assert r.status_code == 404, r.text
            assert "not yet processed" in r.json()["error"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"report {report_id} did not become a case")
            time.sleep(0.2)

    def act(self, case_id: str, token: str, client: httpx.Client | None = None,
            **body) -> httpx.Response:
        return (client or self.a).post(f"/api/v1/cases/{case_id}/actions", json=body,
                                       headers=bearer(token))

    def close(self) -> None:
        for c in self.clients:
            c.close()


def _wait_ready(api: Api, timeout: float = 120) -> None:
    """Both workers joined, the cases table split between them, and a report went through."""
    deadline = time.monotonic() + timeout
    views: list = []
    while time.monotonic() < deadline:
        for w in api.workers:
            if w.proc.poll() is not None:
                pytest.fail(f"worker exited with {w.proc.returncode}:\n{w.log_tail()}")
        try:
            health = [c.get("/api/v1/health").json() for c in api.clients]
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        views = [h["partitions"] for h in health]
        n = health[0]["partition_count"]
        if all(views) and sorted(views[0] + views[1]) == list(range(n)):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"workers did not share the partitions: {views}\n"
                    + api.workers[0].log_tail())
    probe = make_report("0701", reporter_id="sup-test", description="api probe")
    assert api.post_report(probe).status_code == 202
    api.case_of(probe["report_id"], timeout=max(10.0, deadline - time.monotonic()))


@pytest.fixture(scope="module")
def api(broker, tmp_path_factory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("api")
    app_id = f"grid-api-{uuid.uuid4().hex[:6]}"
    env = {"GRID_TOKENS": json.dumps(TOKENS), "GRID_MODE": "production"}
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    a = WorkerProc(broker.url, tmp / "a", app_id, **env)
    b = WorkerProc(broker.url, tmp / "b", app_id, **env)
    a.start()
    b.start()
    client = Api(a, b)
    try:
        _wait_ready(client)
        yield client
    finally:
        client.close()
        a.stop()
        b.stop()


def point_owned_by(api: Api, index: int) -> tuple[float, float]:
    """A fresh Yangpu point whose street's partition the given worker owns."""
    loc = Locator.load(None)
    for _ in range(200):
        lon, lat = fresh_point()
        street = loc.locate(lon, lat).street
        if street and api.owner_index(street) == index:
            return lon, lat
    raise AssertionError("no point found in the worker's partitions")


def report(type_code: str | None = "0601", at: tuple[float, float] | None = None, **kw) -> dict:
    lon, lat = at or fresh_point()
    return make_report(type_code, lon=lon, lat=lat, **{"reporter_id": "sup-test", **kw})


# --- 401 / 403 / 413 / 422 -----------------------------------------------------------------

def test_missing_or_unknown_token_is_401(api):
    r = api.a.get("/api/v1/cases")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = api.a.get("/api/v1/cases", headers={"Authorization": "Bearer nope-not-a-token"})
    assert r.status_code == 401 and r.json()["error"] == "unknown bearer token"
    assert api.a.post("/api/v1/reports", json=report()).status_code == 401


def test_production_mode_has_no_demo_tokens(api):
    assert api.a.get("/api/v1/me", headers=bearer("viewer")).json()["role"] == "viewer"
    assert api.a.get("/api/v1/me", headers={"Authorization": "Bearer demo-city"}
                     ).status_code == 401


def test_invalid_report_is_422_with_one_error_per_field(api):
    bad = report(report_id="not-a-uuid")
    bad["location"]["lat"] = 95.0
    bad["reported_at"] = "2026-01-01T09:00:00"  # no offset
    r = api.post_report(bad)
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"report_id", "location.lat", "reported_at"}
    r = api.a.post("/api/v1/reports", content=b'{"schema": "grid.report/1", "report_id": ',
                   headers=bearer("sup-test"))
    assert r.status_code == 422 and r.json()["reason"] == "invalid_json"


def test_body_over_the_limit_is_413(api):
    big = report(description="x" * 70_000)
    r = api.post_report(big)
    assert r.status_code == 413 and "65536" in r.json()["error"]

    def chunks():  # no Content-Length: the actual size counts
        yield json.dumps(big).encode()

    r = api.a.post("/api/v1/reports", content=chunks(), headers=bearer("sup-test"))
    assert r.status_code == 413


def test_report_outside_scope_or_role_is_403(api):
    narrow = make_report("0601", lon=P17[0], lat=P17[1], reporter_id="sup-p14")
    r = api.post_report(narrow, token="sup-p14")
    assert r.status_code == 403 and "310110012-P14" in r.json()["error"]
    inside = make_report("0601", lon=P14[0], lat=P14[1], reporter_id="sup-p14")
    assert api.post_report(inside, token="sup-p14").status_code == 202
    assert api.post_report(report(), token="viewer").status_code == 403
    assert api.post_report(report(reporter_id="someone-else")).status_code == 403
    assert api.post_report(report(), token="dept-roads").status_code == 403


# --- report → case → closed ------------------------------------------------------------------

def test_report_becomes_case_with_decision(api):
    r = report("0101", component_id="SS-9001", description="井盖缺失")
    resp = api.post_report(r)
    assert resp.status_code == 202
    body = resp.json()
    assert body["report_id"] == r["report_id"] and body["status"] == "accepted"
    assert resp.headers["Location"] == body["report_url"] == f"/api/v1/reports/{r['report_id']}"
    case = api.case_of(r["report_id"])
    assert case["state"] == "dispatched" and case["priority"] == "urgent"
    dec = case["decision"]
    assert dec["winner"] and dec["explanation"] and dec["department"] == case["department"]
    assert set(case["deadlines"]) >= {"dispose"}
    assert [e["type"] for e in case["history"]] == ["reported", "filed", "dispatched"]
    assert case["placement"]["district"] == "310110"


def test_same_report_twice_is_one_case(api):
    r = report("0602", description="楼道堆物")
    assert api.post_report(r).status_code == 202
    assert api.post_report(r).status_code == 202
    case = api.case_of(r["report_id"])
    # another type at the same place: same street partition, so processed after both copies
    again = report("0101", at=(r["location"]["lon"], r["location"]["lat"]),
                   component_id="SS-9002")
    api.post_report(again)
    api.case_of(again["report_id"])
    case = api.a.get(f"/api/v1/cases/{case['case_id']}", headers=bearer("viewer")).json()
    assert case["report_ids"] == [r["report_id"]]
    assert [e["type"] for e in case["history"]].count("reported") == 1


def test_department_actions_drive_case_to_closed(api):
    r = report("0101", component_id="SS-9003")
    api.post_report(r)
    case = api.case_of(r["report_id"])
    cid, dept = case["case_id"], case["department"]
    assert dept in DEPARTMENTS
    other = next(d for d in DEPARTMENTS if d != dept)

    refused = api.act(cid, "cc-yangpu", action="close")
    assert refused.status_code == 409
    assert refused.json()["state"] == "dispatched" and refused.json()["action"] == "close"
    assert "'close' is not allowed in state 'dispatched'" in refused.json()["error"]

    # another department may neither close nor accept this case
    assert api.act(cid, f"dept-{other}", action="close").status_code == 403
    r403 = api.act(cid, f"dept-{other}", action="accept")
    assert r403.status_code == 403 and "own work orders" in r403.json()["error"]
    assert api.act(cid, "cc-huangpu", action="supervise").status_code == 403  # other district
    assert api.act(cid, "viewer", action="accept").status_code == 403

    assert api.a.get(f"/api/v1/work-orders?department={other}",
                     headers=bearer(f"dept-{dept}")).status_code == 403
    wos = eventually(lambda: api.a.get("/api/v1/work-orders",
                                       headers=bearer(f"dept-{dept}")).json()["items"],
                     lambda items: cid in {w["case_id"] for w in items})
    assert cid in {w["case_id"] for w in wos}
    assert all(w["department"] == dept for w in wos)

    ok = api.act(cid, f"dept-{dept}", action="accept", command_id=f"accept-{cid}")
    assert ok.status_code == 200, ok.text
    assert ok.json()["state"] == "accepted"
    assert [e["type"] for e in ok.json()["events"]] == ["accepted"]
    # a client's retry of the same command_id: its events then, from the case's history
    retry = eventually(lambda: api.act(cid, f"dept-{dept}", action="accept",
                                       command_id=f"accept-{cid}"),
                       lambda r: r.status_code == 200 and "applied before" in
                       (r.json().get("note") or ""))
    assert retry.json()["events"] == ok.json()["events"]
    assert api.act(cid, f"dept-{dept}", action="dispose").status_code == 409  # no evidence
    assert api.act(cid, f"dept-{dept}", action="dispose",
                   evidence_photos=["https://img.example/fixed.jpg"]).status_code == 200
    assert api.act(cid, "sup-test", action="verify", passed=True).json()["state"] == "verified"
    closed = api.act(cid, "cc-yangpu", action="close")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"

    case = api.a.get(f"/api/v1/cases/{cid}", headers=bearer("viewer")).json()
    assert case["state"] == "closed" and case["closed_at"]
    steps = [e["type"] for e in case["history"] if e["type"] not in ("warned", "supervised")]
    assert steps == ["reported", "filed", "dispatched", "accepted", "disposed", "verified",
                     "closed"]
    again = api.act(cid, "cc-yangpu", action="close")
    assert again.status_code == 409 and again.json()["state"] == "closed"


def test_bad_action_body_is_422(api):
    r = report("0601")
    api.post_report(r)
    cid = api.case_of(r["report_id"])["case_id"]
    assert api.act(cid, "cc-yangpu", action="fly").status_code == 422
    bad = api.act(cid, "cc-yangpu", action="grant_extension", extension_minutes=-5)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "extension_minutes"
    assert api.act("310110001-000000000000", "cc-yangpu", action="close").status_code == 404


# --- any worker answers for any case (reads from its read store, actions as commands) ----------

@pytest.mark.parametrize("owner", [0, 1])
def test_any_worker_answers_for_a_case_the_other_owns(api, owner):
    r = report("0601", at=point_owned_by(api, owner))
    assert api.post_report(r, client=api.clients[1 - owner]).status_code == 202
    case = api.case_of(r["report_id"])
    cid = case["case_id"]
    for client in api.clients:  # the worker not holding the street answers from its store
        got = wait_for(lambda c=client: c.get(f"/api/v1/cases/{cid}", headers=bearer("viewer")),
                       lambda resp: resp.status_code == 200)
        assert got.json()["case_id"] == cid and got.json()["state"] == case["state"]
    # an action sent to the worker not holding the street is applied by the one that does
    dept = case["department"]
    ok = api.act(cid, f"dept-{dept}", client=api.clients[1 - owner], action="accept")
    assert ok.status_code == 200 and ok.json()["state"] == "accepted"
    again = api.act(cid, f"dept-{dept}", client=api.clients[1 - owner], action="accept")
    assert again.status_code == 409 and again.json()["state"] == "accepted"


def wait_for(call, ok, timeout: float = 30.0):
    """``call()`` until ``ok(result)`` (a worker's store catches up within moments)."""
    deadline = time.monotonic() + timeout
    while True:
        got = call()
        if ok(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_case_list_filters_and_pages(api):
    lon, lat = point_owned_by(api, 0)
    street = Locator.load(None).locate(lon, lat).street
    ids = []
    for _ in range(3):
        r = report("0601", at=fresh_point())
        api.post_report(r)
        ids.append(r["report_id"])
    r = report("0601", at=(lon, lat))
    api.post_report(r)
    mine = api.case_of(r["report_id"])
    for rid in ids:
        api.case_of(rid)
    owner = api.clients[1]  # the read model is complete in every worker
    page = eventually(lambda: owner.get("/api/v1/cases",
                                        params={"street": street, "state": "dispatched"},
                                        headers=bearer("viewer")).json(),
                      lambda p: mine["case_id"] in {c["case_id"] for c in p["items"]})
    assert mine["case_id"] in {c["case_id"] for c in page["items"]}
    assert all(c["street"] == street and c["state"] == "dispatched" for c in page["items"])
    first = owner.get("/api/v1/cases", params={"limit": 1}, headers=bearer("viewer")).json()
    assert first["count"] == 1 and first["next_cursor"]
    second = owner.get("/api/v1/cases", params={"limit": 1, "cursor": first["next_cursor"]},
                       headers=bearer("viewer")).json()
    assert second["items"][0]["case_id"] != first["items"][0]["case_id"]
    assert owner.get("/api/v1/cases", params={"state": "nonsense"},
                     headers=bearer("viewer")).status_code == 422
    huangpu = owner.get("/api/v1/cases", headers=bearer("cc-huangpu")).json()
    assert huangpu["items"] == []  # scope: nothing of Yangpu


# --- Open311 -----------------------------------------------------------------------------------

def test_open311_services_lists_the_types_grouped_by_national_class(api):
    services = api.b.get("/open311/v2/services.json").json()
    assert len(services) == 132  # 120 types + one catch-all per national class
    manhole = next(s for s in services if s["service_code"] == "0101")
    assert manhole["metadata"] is False and manhole["type"] == "realtime"
    assert manhole["group"] == "部件·公用设施" and "manhole" in manhole["keywords"]
    assert len({s["group"] for s in services}) == 12
    xml = api.b.get("/open311/v2/services.xml")
    assert xml.headers["content-type"].startswith("text/xml")
    assert xml.text.count("<service>") == 132


def test_open311_errors_in_spec_format(api):
    r = api.a.post("/open311/v2/requests.json",
                   data={"service_code": "0601", "lat": "31.27", "long": "121.52"})
    assert r.status_code == 401 and r.json()[0]["code"] == 401
    r = api.a.post("/open311/v2/requests.json",
                   data={"api_key": "tok-citizen", "service_code": "9999", "lat": "95",
                         "long": "121.52"})
    assert r.status_code == 400
    descs = [e["description"] for e in r.json()]
    assert all(e["code"] == 400 for e in r.json())
    assert any(d.startswith("lat:") for d in descs)
    assert any(d.startswith("service_code:") for d in descs)
    r = api.a.get(f"/open311/v2/requests/{uuid.uuid4()}.xml")
    assert r.status_code == 404 and "<errors><error><code>404</code>" in r.text


def test_open311_request_followed_to_closed(api):
    lon, lat = fresh_point()
    created = api.b.post("/open311/v2/requests.json", data={
        "api_key": "tok-hotline", "service_code": "0601", "lat": str(lat), "long": str(lon),
        "description": "路边有暴露垃圾", "media_url": "https://img.example/c.jpg",
        "email": "citizen@example.com", "address_string": "政通路 100 号"})
    assert created.status_code == 201, created.text
    [ack] = created.json()
    rid = ack["service_request_id"]
    assert ack["service_notice"]

    case = api.case_of(rid)
    assert case["report"]["source"] == "hotline_12345"
    assert case["report"]["reporter_id"].startswith("email-")  # no e-mail address kept
    [req] = api.a.get(f"/open311/v2/requests/{rid}.json").json()
    assert req["status"] == "open" and req["service_code"] == "0601"
    assert req["agency_responsible"] and req["expected_datetime"].endswith("+08:00")
    assert req["requested_datetime"].endswith("+08:00")
    assert req["address"] == "政通路 100 号" and req["media_url"] == "https://img.example/c.jpg"
    assert req["lat"] == pytest.approx(lat) and req["long"] == pytest.approx(lon)

    cid, dept = case["case_id"], case["department"]
    for token, body in ((f"dept-{dept}", {"action": "accept"}),
                        (f"dept-{dept}", {"action": "dispose", "reason": "cleaned"}),
                        ("sup-test", {"action": "verify", "passed": True}),
                        ("cc-yangpu", {"action": "close"})):
        assert api.act(cid, token, **body).status_code == 200

    for client in api.clients:  # the other worker's store follows the log a moment later
        [req] = eventually(lambda c=client: c.get(f"/open311/v2/requests/{rid}.json").json(),
                           lambda got: got[0]["status"] == "closed")
        assert req["status"] == "closed" and req["expected_datetime"] is None
        assert req["updated_datetime"] >= req["requested_datetime"]
    listed = api.a.get("/open311/v2/requests.json",
                       params={"service_request_id": f"{rid},{uuid.uuid4()}"}).json()
    assert [x["service_request_id"] for x in listed] == [rid]
    xml = api.a.get(f"/open311/v2/requests/{rid}.xml").text
    assert f"<service_request_id>{rid}</service_request_id>" in xml
    assert "<status>closed</status>" in xml


def test_open311_json_post_from_citizen_app(api):
    lon, lat = fresh_point()
    created = api.a.post("/open311/v2/requests.json", headers=bearer("citizen"), json={
        "lat": lat, "long": lon, "description": "井盖没了，很危险", "device_id": "dev-42"})
    assert created.status_code == 201
    rid = created.json()[0]["service_request_id"]
    case = api.case_of(rid)
    assert case["report"]["source"] == "citizen" and case["report"]["reporter_id"] == "dev-42"
    # a key-supervision type guessed from the words waits for the command center with the
    # classifier's suggestions instead of an urgent order on a guess (issue 17)
    assert case["state"] == "triage" and case["type_code"] is None
    assert case["decision"]["suggestions"][0]["type_code"] == "0101"
    assert case["decision"]["suggestions"][0]["name_zh"] == "井盖缺失/损坏"



def test_supervisor_scoped_to_a_patrol_area_lists_its_cases(api):
    """List rows carry the patrol area, so a supervisor scoped to one sees its cases."""
    r = report("0601", at=P14, reporter_id="sup-p14")
    assert api.post_report(r, token="sup-p14").status_code == 202
    case_id = api.case_of(r["report_id"])["case_id"]
    page = eventually(lambda: api.a.get("/api/v1/cases", params={"limit": 500},
                                        headers=bearer("sup-p14")).json(),
                      lambda p: case_id in {c["case_id"] for c in p["items"]})
    assert case_id in {c["case_id"] for c in page["items"]}
    assert {c["patrol_area"] for c in page["items"]} == {"310110012-P14"}


def test_unmatched_routes_answer_in_the_api_format_and_openapi_names_this_server(api):
    r = api.a.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"].startswith(
        "no such endpoint: GET /api/v1/nothing-here")
    r = api.a.get("/open311/v2/nothing.json")
    assert r.status_code == 404 and r.json()[0]["code"] == 404
    assert api.a.delete("/api/v1/cases").status_code == 405
    doc = api.b.get("/api/v1/openapi.json").json()
    assert doc["servers"] == [{"url": api.url_of(1)}]
    from streams.openapi import spec  # the served document is the generated one

    assert {**doc, "servers": None} == {**json.loads(json.dumps(spec())), "servers": None}
    d = api.a.get("/open311/v2/services/0101.json").json()
    assert d == {"service_code": "0101", "attributes": []}
    assert "<service_code>0101</service_code>" in api.a.get(
        "/open311/v2/services/0101.xml").text
    missing = api.a.get("/open311/v2/services/9999.json")
    assert missing.status_code == 404 and "9999" in missing.json()[0]["description"]


def test_a_reused_report_id_with_other_content_is_409(api):
    r = report("0601")
    assert api.post_report(r).status_code == 202
    assert api.post_report(r).status_code == 202  # the same report again: idempotent
    other = {**r, "description": "a different problem"}
    got = api.post_report(other)
    assert got.status_code == 409 and got.json()["reason"] == "duplicate_conflict"


def test_strict_types_a_string_longitude_is_422(api):
    r = report("0601")
    r["location"] = {**r["location"], "lon": str(r["location"]["lon"])}
    got = api.post_report(r)
    assert got.status_code == 422
    assert got.json()["errors"][0]["field"] == "location.lon"


# --- responsible units and the hotline's callback (issue 18) ------------------------------------

def _in_compound(zone_id: str) -> tuple[float, float]:
    zones = Locator.load(None).layers["zones"]
    pt = zones[zones["id"] == zone_id].geometry.iloc[0].representative_point()
    return pt.x, pt.y


def test_property_company_sees_only_its_compound_and_the_hotline_calls_back(api):
    ticket = {"hotline": "12345", "ticket_no": f"T{uuid.uuid4().hex[:10]}"}
    mine = report("0602", at=_in_compound("310110-Z0001"), source="hotline_12345",
                  reporter_id="hotline", description="楼道堆物", ticket=ticket)
    other = report("0602", at=_in_compound("310110-Z0002"), description="楼道堆物")
    assert api.post_report(mine, token="hotline").status_code == 202
    assert api.post_report(other).status_code == 202
    a, b = api.case_of(mine["report_id"]), api.case_of(other["report_id"])
    assert a["unit"] == "310110.property_management.01"
    assert a["decision"]["unit_name"] == "上海杨浦安居物业管理有限公司"
    assert b["unit"] == "310110.property_management.02"
    assert api.a.get(f"/api/v1/cases/{a['case_id']}", headers=bearer("pm01")).status_code == 200
    hidden = api.a.get(f"/api/v1/cases/{b['case_id']}", headers=bearer("pm01"))
    assert hidden.status_code == 403 and "310110.property_management.01" in hidden.json()["error"]
    assert api.act(b["case_id"], "pm01", action="accept").status_code == 403
    inbox = eventually(lambda: api.a.get("/api/v1/work-orders", headers=bearer("pm01")).json(),
                       lambda page: a["case_id"] in {w["case_id"] for w in page["items"]})
    assert a["case_id"] in {w["case_id"] for w in inbox["items"]}
    assert b["case_id"] not in {w["case_id"] for w in inbox["items"]}

    cid = a["case_id"]
    assert api.act(cid, "pm01", action="accept").json()["state"] == "accepted"
    assert api.act(cid, "pm01", action="dispose",
                   evidence_photos=["https://img.example/clear.jpg"]).status_code == 200
    assert api.act(cid, "sup-test", action="verify", passed=True).json()["state"] == "verified"
    assert api.act(cid, "cc-yangpu", action="close").json()["state"] == "closed"
    assert api.act(cid, "citizen", action="callback",
                   satisfaction="satisfied").status_code == 403  # not its report
    back = api.act(cid, "hotline", action="callback", satisfaction="not_satisfied",
                   reason="又堆满了")
    assert back.status_code == 200, back.text
    assert back.json()["state"] == "rework"
    assert [e["type"] for e in back.json()["events"]] == ["callback", "reopened"]
    status = api.a.get(f"/open311/v2/requests/{mine['report_id']}.json",
                       headers=bearer("hotline")).json()[0]
    assert status["status"] == "open"
    assert status["status_notes"].startswith(f"12345 ticket {ticket['ticket_no']}: reopened")
