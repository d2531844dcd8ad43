"""The dashboard in real headless Chromium (Debian's ``chromium``, driven by Playwright) against
a ``grid worker`` on the embedded broker: live updates over SSE, escaping, no console errors.

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
    page.wait_for_function("Number(document.getElementById('k-reported').textContent) >= 1",
                           timeout=5_000)
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
        s = httpx.get(f"{base}/dashboard/api/summary.json", timeout=10).json()
        if any(d["key"] == "sanitation" for d in s["departments"]):
            break
        time.sleep(0.3)
    assert s["district"] == "310110" and s["district_name"] == "杨浦区"
    assert set(s["counters"]) == {"reported", "filed", "self_closed", "dispatched", "closed",
                                  "overdue", "merged"}
    dept = next(d for d in s["departments"] if d["key"] == "sanitation")
    assert dept["dispatched"] >= 1 and dept["name_zh"]
    assert sum(s["cells"].values()) >= 1
    cells = httpx.get(f"{base}/dashboard/api/cells.geojson", timeout=30).json()
    assert cells["type"] == "FeatureCollection"
    assert all(f["properties"]["code"].startswith("310110") for f in cells["features"][:50])
    assert httpx.get(f"{base}/dashboard/api/cases/nope", timeout=10).status_code == 404
    assert "<canvas" in httpx.get(base + "/", timeout=10).text
