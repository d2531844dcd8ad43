"""The dashboard in real headless Chromium (Debian's ``chromium``, driven by Playwright) against
a ``grid worker`` on the session's broker: sign-in, live updates over SSE, escaping, no console
errors; and who may read the dashboard's data (signed in, in scope, personal data).

Leaves a screenshot in test-artifacts/dashboard.png.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import make_report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SUPERVISOR = {"Authorization": "Bearer demo-supervisor"}  # demo token (embedded mode)
CC = {"Authorization": "Bearer demo-command-center"}  # Yangpu's command center
VIEWER = {"Authorization": "Bearer demo-viewer"}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian chromium not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, engine):
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    pg = ctx.new_page()
    pg.problems = []  # console errors and uncaught exceptions
    pg.on("console", lambda m: pg.problems.append(f"console.{m.type}: {m.text}")
          if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"pageerror: {e}"))
    pg.goto(f"http://127.0.0.1:{engine.web_port}/", wait_until="domcontentloaded")
    assert pg.url.endswith("/login?next=/")  # not signed in: the sign-in page first
    pg.fill("#token", "demo-command-center")
    pg.click("button[type=submit]")
    pg.wait_for_url(f"http://127.0.0.1:{engine.web_port}/")
    cookie = next(c for c in ctx.cookies() if c["name"] == "grid_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    pg.wait_for_selector("#live:not(.off)", timeout=15_000)  # the event stream is open
    pg.wait_for_selector("#map-msg", state="hidden", timeout=15_000)  # cells drawn
    yield pg
    ctx.close()


def post_report(engine, report: dict) -> None:
    """Submit through the HTTP API as the demo supervisor (reporting under its own name)."""
    base = f"http://127.0.0.1:{engine.web_port}/api/v1"
    me = httpx.get(f"{base}/me", headers=SUPERVISOR, timeout=10).json()
    r = httpx.post(f"{base}/reports", json={**report, "reporter_id": me["name"]},
                   headers=SUPERVISOR, timeout=10)
    assert r.status_code == 202, r.text


def test_submitted_case_appears_live_and_html_shows_as_text(page, engine):
    marker = f"xss-{uuid.uuid4().hex[:8]}"
    desc = (f'井盖缺失 {marker} <script>window.__pwned=1</script>'
            f'<img src=x onerror="window.__pwned=2"><b id="injected">bold</b>')
    report = make_report("0101", description=desc)
    post_report(engine, report)
    t0 = time.monotonic()
    item = page.locator("#feed li", has_text=marker).first
    item.wait_for(timeout=5_000)  # the bar: visible within 5 s of submission
    elapsed = time.monotonic() - t0
    # the description is text, not markup
    assert desc in item.locator(".desc").text_content()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#injected").count() == 0
    # counters follow (SSE triggers a refresh of the summary)
    # (polled from here: the page's CSP forbids the eval that wait_for_function needs)
    deadline = time.monotonic() + 5
    while int(page.locator("#k-reported").text_content() or 0) < 1:
        assert time.monotonic() < deadline, "the counters did not follow the event"
        page.wait_for_timeout(100)
    # a click opens the case: decision, deadlines, history, description as text
    item.click()
    page.wait_for_selector("#d-desc", timeout=5_000)
    assert page.locator("#d-desc").text_content() == desc
    body = page.locator("#d-body").text_content()
    assert "派遣决定 Decision" in body and "时限 Deadlines" in body and "上报 reported" in body
    assert page.locator("#d-body .timeline li").count() >= 3  # reported, filed, dispatched
    page.keyboard.press("Escape")
    # urgent manhole: an alert arrives and the map has a marker for the case
    page.locator("#alerts li", has_text="重点监管").first.wait_for(timeout=10_000)
    page.wait_for_timeout(1500)  # let the debounced summary refresh land before the shot
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert page.problems == [], page.problems
    print(f"case visible on the dashboard {elapsed:.2f} s after the API accepted it")


def test_dashboard_api_summary_and_case(engine):
    base = f"http://127.0.0.1:{engine.web_port}"
    report = make_report("0601", description="路边有垃圾")
    post_report(engine, report)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        s = httpx.get(f"{base}/dashboard/api/summary.json", headers=CC, timeout=10).json()
        if any(d["key"] == "sanitation" for d in s["departments"]):
            break
        time.sleep(0.3)
    assert s["district"] == "310110" and s["district_name"] == "杨浦区"
    assert set(s["counters"]) == {"reported", "filed", "self_closed", "dispatched", "closed",
                                  "overdue", "merged"}
    dept = next(d for d in s["departments"] if d["key"] == "sanitation")
    assert dept["dispatched"] >= 1 and dept["name_zh"]
    assert sum(s["cells"].values()) >= 1
    cells = httpx.get(f"{base}/dashboard/api/cells.geojson", headers=CC, timeout=30).json()
    assert cells["type"] == "FeatureCollection"
    assert all(f["properties"]["code"].startswith("310110") for f in cells["features"][:50])
    assert httpx.get(f"{base}/dashboard/api/cases/nope", headers=CC,
                     timeout=10).status_code == 404
    assert "<canvas" in httpx.get(base + "/", headers=CC, timeout=10).text


def _case_of(base: str, rid: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = httpx.get(f"{base}/api/v1/reports/{rid}", headers=CC, timeout=10)
        if r.status_code == 200:
            return r.json()["case_id"]
        time.sleep(0.3)
    raise AssertionError(f"report {rid} became no case")


def test_dashboard_data_needs_a_signed_in_viewer_in_scope(engine):
    base = f"http://127.0.0.1:{engine.web_port}"
    report = make_report("0601", description="private data test")
    post_report(engine, report)
    case_id = _case_of(base, report["report_id"])
    case_url = f"{base}/dashboard/api/cases/{case_id}"
    # nobody signed in: nothing but the sign-in page
    page = httpx.get(base + "/", timeout=10)
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=/"
    for path in ("/dashboard/api/summary.json", f"/dashboard/api/cases/{case_id}",
                 "/dashboard/api/cells.geojson", "/dashboard/events"):
        r = httpx.get(base + path, timeout=10)
        assert r.status_code == 401 and "sign in first" in r.json()["error"], path
    # a supervisor is not a dashboard user; a district command center sees only its district
    r = httpx.get(f"{base}/dashboard/api/summary.json", headers=SUPERVISOR, timeout=10)
    assert r.status_code == 403 and "command centers and viewers" in r.json()["error"]
    r = httpx.get(f"{base}/dashboard/api/summary.json?district=310101", headers=CC, timeout=10)
    assert r.status_code == 403 and "310101" in r.json()["error"]
    # the command center sees who reported; a viewer does not
    full = httpx.get(case_url, headers=CC, timeout=10).json()
    assert full["report"]["reporter_id"] == "sup-0042"
    bare = httpx.get(case_url, headers=VIEWER, timeout=10).json()
    assert bare["report"]["reporter_id"] is None and bare["case_id"] == case_id
    # signing in with a form sets the session cookie that the pages then use
    bad = httpx.post(f"{base}/login", data={"token": "nope"}, timeout=10)
    assert bad.status_code == 401 and "valid token" in bad.text
    ok = httpx.post(f"{base}/login", data={"token": "demo-viewer", "next": "/"}, timeout=10)
    assert ok.status_code == 303 and ok.headers["Location"] == "/"
    cookie = ok.cookies["grid_session"]
    assert "HttpOnly" in ok.headers["Set-Cookie"] and "SameSite=Strict" in ok.headers["Set-Cookie"]
    r = httpx.get(f"{base}/dashboard/api/summary.json", cookies={"grid_session": cookie},
                  timeout=10)  # a city-wide viewer: the city (the shipped set has 2 districts)
    assert r.status_code == 200 and r.json()["scope"]["level"] == "city"
    assert r.json()["district"] is None and r.json()["loaded"] == ["310110", "310118"]
    # pages and data carry the security headers
    for r in (httpx.get(f"{base}/login", timeout=10), page):
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_integration_reads_only_its_own_reports_cases(engine):
    base = f"http://127.0.0.1:{engine.web_port}/api/v1"
    hotline = {"Authorization": "Bearer demo-hotline"}
    mine = make_report(None, source="hotline_12345", reporter_id="hotline-12345",
                       description="小区门口有零星垃圾 garbage at the gate")
    assert httpx.post(f"{base}/reports", json=mine, headers=hotline,
                      timeout=10).status_code == 202
    other = make_report("0601", description="not the hotline's")
    post_report(engine, other)
    mine_case = _case_of(base.rsplit("/api/v1", 1)[0], mine["report_id"])
    other_case = _case_of(base.rsplit("/api/v1", 1)[0], other["report_id"])
    assert httpx.get(f"{base}/cases/{mine_case}", headers=hotline,
                     timeout=10).status_code == 200
    r = httpx.get(f"{base}/cases/{other_case}", headers=hotline, timeout=10)
    assert r.status_code == 403 and "reads only the cases it reported" in r.json()["error"]
    listed = httpx.get(f"{base}/cases?limit=200", headers=hotline, timeout=10).json()
    ids = {row["case_id"] for row in listed["items"]}
    assert mine_case in ids and other_case not in ids


# -- issue 19: names, links, drill-down, layout ---------------------------------------------

def signed_in(browser, engine, width: int, height: int):
    """A page of a new context at ``width`` × ``height``, signed in as Yangpu's command
    center (console errors collected in ``page.problems``)."""
    ctx = browser.new_context(viewport={"width": width, "height": height})
    pg = ctx.new_page()
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(f"console.{m.type}: {m.text}")
          if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"pageerror: {e}"))
    base = f"http://127.0.0.1:{engine.web_port}"
    pg.goto(f"{base}/login", wait_until="domcontentloaded")
    pg.fill("#token", "demo-command-center")
    pg.click("button[type=submit]")
    pg.wait_for_url(f"{base}/")
    pg.wait_for_selector("#map-msg", state="hidden", timeout=15_000)
    return ctx, pg


def list_ids(pg) -> list[str]:
    pg.wait_for_selector("#case-list", timeout=5_000)
    return pg.locator("#case-list li[data-case-id]").evaluate_all(
        "els => els.map(e => e.dataset.caseId)")


def hash_of(pg) -> str:
    return pg.evaluate("location.hash")


def test_names_case_link_drilldown_search_at_1280(browser, engine):
    from grid.names import Names

    names = Names.load()
    base = f"http://127.0.0.1:{engine.web_port}"
    report = make_report("0101", description="井盖缺失 drill-down test")
    post_report(engine, report)
    case_id = _case_of(base, report["report_id"])
    street = case_id.split("-")[0]
    street_name = names.place_name(street)
    assert street_name  # the shipped streets are named
    case = httpx.get(f"{base}/api/v1/cases/{case_id}", headers=CC, timeout=10).json()
    dept = case["department"]  # the owner of the cover: the rules decide
    dept_name = names.department(dept)
    assert dept_name != dept
    ctx, pg = signed_in(browser, engine, 1280, 800)
    try:
        # a link opens the case: names, not only codes, in the drawer
        pg.goto(f"{base}/#case={case_id}")
        pg.wait_for_selector("#d-where", timeout=5_000)
        assert pg.locator("#d-id").text_content() == case_id
        where = pg.locator("#d-where").text_content()
        assert f"{street_name} ({street})" in where and "杨浦区 (310110)" in where
        body = pg.locator("#d-body").text_content()
        assert "井盖缺失/损坏 · Manhole cover missing or damaged (0101)" in body
        assert dept_name in body
        d = httpx.get(f"{base}/dashboard/api/cases/{case_id}", headers=CC, timeout=10).json()
        assert d["unit_name"] and f"{d['unit_name']} ({d['unit']})" in body  # the registry's
        why = pg.locator("#d-why").text_content()
        assert f"Sent to {dept_name}" in why
        assert "key-supervision (重点监管) type (rule route.key-supervision)" in why
        assert pg.locator("#d-link").get_attribute("href") == f"#case={case_id}"
        # the alert names the type and the street
        alert = pg.locator(f"#alerts li[data-case-id='{case_id}']").first
        alert.wait_for(timeout=10_000)
        text = alert.text_content()
        assert "井盖缺失/损坏" in text and f"{street_name} ({street})" in text
        pg.keyboard.press("Escape")
        assert pg.locator("#drawer").is_hidden() and hash_of(pg) == ""

        # drill-down: a street row, a department row, a counter
        pg.click("#tab-street")
        pg.click(f"#figures-body tr[data-key='{street}']")
        assert hash_of(pg) == f"#street={street}" and case_id in list_ids(pg)
        assert street_name in pg.locator("#d-id").text_content()
        pg.click("#tab-dept")
        pg.click(f"#figures-body tr[data-key='{dept}']")
        assert hash_of(pg) == f"#department={dept}" and case_id in list_ids(pg)
        deadline = time.monotonic() + 30  # 2 h to dispose, engine time x600: 12 s
        pg.keyboard.press("Escape")  # the drawer covers the right-hand counters at 1280 px
        while True:
            pg.click(".kpi[data-key='overdue']")
            pg.wait_for_selector("#list-n", timeout=5_000)
            if case_id in list_ids(pg):
                break
            assert time.monotonic() < deadline, "the case never showed as overdue"
            pg.keyboard.press("Escape")
            pg.wait_for_timeout(1000)
        assert hash_of(pg) == "#counter=overdue"
        # a row opens the case, with a way back to the list
        pg.click(f"#case-list li[data-case-id='{case_id}']")
        pg.wait_for_selector("#d-where", timeout=5_000)
        assert hash_of(pg) == f"#case={case_id}"
        assert pg.locator("#d-back").is_visible()
        assert pg.locator("#d-back").get_attribute("href") == "#counter=overdue"

        # the search box finds the case by its report id
        pg.fill("#q", report["report_id"])
        pg.press("#q", "Enter")
        deadline = time.monotonic() + 5
        while "q=" not in hash_of(pg):
            assert time.monotonic() < deadline
            pg.wait_for_timeout(100)
        assert list_ids(pg) == [case_id]
        pg.keyboard.press("Escape")

        # 1280 px: nothing clipped, no sideways scrolling
        pg.wait_for_timeout(500)
        layout = pg.evaluate("""(() => {
          const wrap = document.querySelector('.table-wrap').getBoundingClientRect();
          const ths = [...document.querySelectorAll('#figures th')].map(
            (t) => t.getBoundingClientRect().right);
          const w = document.querySelector('.table-wrap');
          const cut = [...document.querySelectorAll('#alerts .what, #alerts .desc')].filter(
            (e) => e.scrollWidth > e.clientWidth + 1).length;
          return {page: document.documentElement.scrollWidth, right: wrap.right,
                  ths, scroll: w.scrollWidth, client: w.clientWidth, cut};
        })()""")
        assert layout["page"] <= 1280, layout
        assert len(layout["ths"]) == 8 and max(layout["ths"]) <= layout["right"] + 1, layout
        assert layout["scroll"] <= layout["client"], layout
        assert layout["cut"] == 0, layout
        assert pg.problems == [], pg.problems
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "dashboard-1280.png"), full_page=True)
    finally:
        ctx.close()


def test_street_map_and_wall_screen_layout(browser, engine):
    base = f"http://127.0.0.1:{engine.web_port}"
    report = make_report("0601", description="street map test")
    post_report(engine, report)
    case_id = _case_of(base, report["report_id"])
    street = case_id.split("-")[0]
    ctx, pg = signed_in(browser, engine, 1920, 1080)
    try:
        pg.click("#view-streets")
        assert pg.locator("#street-card").is_hidden()  # the map itself shows the streets
        assert pg.locator("#view-streets").get_attribute("class") == "on"
        deadline = time.monotonic() + 10
        while True:  # the summary carries open and overdue cases per street
            s = pg.evaluate("fetch('/dashboard/api/summary.json').then(r => r.json())")
            if s["street_open"].get(street, {}).get("open", 0) >= 1:
                break
            assert time.monotonic() < deadline, s["street_open"]
            pg.wait_for_timeout(300)
        assert s["street_open"][street]["name"] != street
        # a click inside the street opens its list
        pt = pg.evaluate(f"""(() => {{
          const st = map.streets.find((s) => s.code === '{street}');
          const r = map.canvas.getBoundingClientRect();
          return [r.left + st.label[0], r.top + st.label[1] + 12];
        }})()""")
        pg.mouse.click(pt[0], pt[1])
        deadline = time.monotonic() + 5
        while not hash_of(pg).startswith("#street="):
            assert time.monotonic() < deadline, hash_of(pg)
            pg.wait_for_timeout(100)
        assert hash_of(pg) == f"#street={street}" and case_id in list_ids(pg)
        pg.keyboard.press("Escape")
        # a wall screen uses the width: the live feed gets a column of its own
        boxes = pg.evaluate("""(() => Object.fromEntries(
          ['.map-panel', '.side', '.livefeed', '.depts'].map(
            (s) => [s, document.querySelector(s).getBoundingClientRect().toJSON()])))()""")
        assert boxes[".livefeed"]["left"] > boxes[".side"]["right"], boxes
        assert boxes[".depts"]["right"] >= boxes[".side"]["right"] - 1, boxes
        assert pg.evaluate("document.documentElement.scrollWidth") <= 1920
        assert pg.problems == [], pg.problems
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "dashboard-1920-streets.png"))
    finally:
        ctx.close()
