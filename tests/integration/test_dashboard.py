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
                  timeout=10)
    assert r.status_code == 200 and r.json()["district"] == "310110"
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
