"""City scale (issue 22): the dashboard at city, district and street level on a two-district
layer set built in the test from the shipped layers (Yangpu 310110, Qingpu 310118) with its
per-level map files (``grid geodata web``), a worker of its own on its own broker, in real
headless Chromium (Debian's ``chromium``).

Leaves screenshots in test-artifacts/dashboard-{city,district,street}.png.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import start_broker
from tests.integration.conftest import WorkerProc, fresh_point, make_report, submit, wait_http

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
YANGPU, QINGPU = "310110", "310118"
VIEWER = {"Authorization": "Bearer demo-viewer"}  # city-wide
CC = {"Authorization": "Bearer demo-command-center"}  # Yangpu only

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian chromium not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def two_districts(tmp_path_factory) -> Path:
    """The shipped layers copied and given their map files, as ``grid geodata build`` does."""
    from geodata.cli import geodata
    from geodata.locator import DATA_DIR

    d = tmp_path_factory.mktemp("two") / "layers"
    shutil.copytree(DATA_DIR, d, ignore=shutil.ignore_patterns("web"))
    out = CliRunner().invoke(geodata, ["web", str(d)])
    assert out.exit_code == 0, out.output
    assert "streets 2 file(s)" in out.output and (d / "web" / "manifest.json").exists()
    return d


@pytest.fixture(scope="module")
def city(tmp_path_factory, two_districts):
    """A worker on its own broker with the two-district layers, and the cases it was sent:
    {district: [report ids]} (3 in Yangpu, 2 in Qingpu)."""
    from geodata.locator import Locator
    from streams.simulate import sample_points

    tmp = tmp_path_factory.mktemp("city")
    broker = start_broker(tmp)
    w = WorkerProc(broker.url, tmp, f"grid-city-{uuid.uuid4().hex[:6]}",
                   GRID_GEODATA=str(two_districts))
    # real time: the session's x600 clock passes engine midnight within a minute at some
    # hours of the day, and "today"'s counters start again (this test compares them)
    w.env["GRID_CLOCK"] = "system"
    w.start()
    try:
        base = f"http://127.0.0.1:{w.web_port}"
        wait_http(f"{base}/api/v1/ready", timeout=120, proc=w.proc, log=w.log_tail)
        qingpu = sample_points(Locator.load(two_districts), 2, seed=22, weights={QINGPU: 1})
        sent = {YANGPU: [make_report("0601", *fresh_point(), description=f"city test {i}")
                         for i in range(3)],
                QINGPU: [make_report("0601", lon, lat, description=f"city test q{i}")
                         for i, (lon, lat) in enumerate(qingpu)]}
        submit(broker.bootstrap, [r for rs in sent.values() for r in rs])
        deadline = time.monotonic() + 90
        while True:  # every case opened and dispatched, as the projector stored it
            s = httpx.get(f"{base}/dashboard/api/summary.json", headers=VIEWER, timeout=10).json()
            if sum(d["dispatched"] for d in s["districts"]) >= 5:
                break
            assert time.monotonic() < deadline, (s["districts"], w.log_tail())
            time.sleep(0.5)
        yield w, {d: [r["report_id"] for r in rs] for d, rs in sent.items()}
    finally:
        w.stop()
        broker.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def signed_in(browser, w, token: str, path: str = "/"):
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    pg = ctx.new_page()
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(f"console.{m.type}: {m.text}")
          if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"pageerror: {e}"))
    base = f"http://127.0.0.1:{w.web_port}"
    pg.goto(f"{base}/login", wait_until="domcontentloaded")
    pg.fill("#token", token)
    pg.click("button[type=submit]")
    pg.wait_for_url(f"{base}/")
    if path != "/":
        pg.goto(base + path)
    return ctx, pg


def until(pg, expr: str, timeout: float = 20.0) -> None:
    """Poll ``expr`` in the page until it is true (``wait_for_function`` compiles its
    predicate in the page, which the page's CSP refuses: no eval)."""
    deadline = time.monotonic() + timeout
    while not pg.evaluate(expr):
        assert time.monotonic() < deadline, f"never true: {expr}"
        pg.wait_for_timeout(100)


def drawn(pg) -> None:
    pg.wait_for_selector("#map-msg", state="hidden", timeout=20_000)
    until(pg, "map.view !== null && map.streets.length > 0")


def summary(pg) -> dict:
    return pg.evaluate("lastSummary")


def kpi(pg, key: str) -> int:
    return int(pg.locator(f"#k-{key}").text_content())


def counter_list(pg, key: str) -> list[dict]:
    """The case list behind a counter, as the page asks for it (its scope included)."""
    return pg.evaluate(f"getJSON(withScope(API + '/cases?counter={key}'))")["items"]


def test_city_district_street_drilldown_and_scope(city, browser):  # city first: no loop yet
    w, sent = city
    base = f"http://127.0.0.1:{w.web_port}"
    ctx, pg = signed_in(browser, w, "demo-viewer")
    try:
        # the city: 16 districts drawn, the two loaded ones with their open cases
        drawn(pg)
        s = summary(pg)
        assert s["scope"]["level"] == "city" and pg.locator("#district-name").text_content() \
            == "上海市"
        assert "上海市 Shanghai" in pg.locator("#scope-label").text_content()
        assert pg.evaluate("map.streets.length") == 16
        assert pg.evaluate("map.level") == "city"
        opened = s["district_open"]
        assert opened[YANGPU]["open"] >= 3 and opened[QINGPU]["open"] >= 2
        assert opened[YANGPU]["name"] == "杨浦区" and opened[QINGPU]["name"] == "青浦区"
        assert set(opened) == {YANGPU, QINGPU}
        # the district ranking on the page: both districts, with the same open counts
        assert pg.locator("#tab-district").get_attribute("class") == "on"
        rows = pg.locator("#figures-body tr").evaluate_all(
            "rs => rs.map(r => [r.dataset.key, r.children[0].textContent,"
            " +r.children[6].textContent])")
        assert {r[0] for r in rows} == {YANGPU, QINGPU}
        for key, name, n_open in rows:
            assert n_open == opened[key]["open"] and opened[key]["name"] in name
        assert sorted(r["rank"] for r in s["districts"]) == [1, 2]
        # counters cover the city: each equals the cases behind it, and the districts' sum
        until(pg, "+document.getElementById('k-reported').textContent >= 5")
        reported = counter_list(pg, "reported")
        assert kpi(pg, "reported") == len(reported) >= 5
        per = {d: httpx.get(f"{base}/dashboard/api/summary.json?district={d}", headers=VIEWER,
                            timeout=10).json() for d in (YANGPU, QINGPU)}
        for key in ("reported", "filed", "dispatched", "overdue"):
            assert s["counters"][key] == sum(p["counters"][key] for p in per.values()), key
        assert s["cases"] == sum(p["cases"] for p in per.values())
        assert {c["street"][:6] for c in reported} == {YANGPU, QINGPU}
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / "dashboard-city.png"))

        # switch to Qingpu from the header: only its streets and its cases
        assert pg.locator("#district-select").is_enabled()
        pg.select_option("#district-select", QINGPU)
        pg.wait_for_url(f"{base}/?district={QINGPU}")
        drawn(pg)
        s = summary(pg)
        assert s["scope"] == {**s["scope"], "level": "district", "district": QINGPU}
        assert pg.locator("#district-name").text_content() == "青浦区"
        codes = pg.evaluate("map.streets.map((s) => s.code)")
        assert len(codes) == 11 and all(c.startswith(QINGPU) for c in codes)
        assert s["street_open"] and all(k.startswith(QINGPU) for k in s["street_open"])
        assert sum(v["open"] for v in s["street_open"].values()) == opened[QINGPU]["open"]
        reported = counter_list(pg, "reported")
        assert kpi(pg, "reported") == len(reported) >= 2
        assert all(c["street"].startswith(QINGPU) for c in reported)
        assert all(d["case_id"].startswith(QINGPU) for d in s["overdue"] + s["markers"])
        assert all(a["case_id"].startswith(QINGPU) for a in s["alerts"])
        pg.click("#tab-street")
        keys = pg.locator("#figures-body tr[data-key]").evaluate_all(
            "rs => rs.map(r => r.dataset.key)")
        assert keys and all(k.startswith(QINGPU) for k in keys)
        pg.screenshot(path=str(ARTIFACTS / "dashboard-district.png"))
        # zoomed in (wheel) far enough, the district map shows the cells of the streets in
        # view, and only those are fetched
        assert pg.evaluate("map.zoomedCells().length") == 0
        box = pg.locator("#map").bounding_box()
        pg.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        for _ in range(3):
            pg.mouse.wheel(0, -500)
            pg.wait_for_timeout(200)
        until(pg, "map.zoomedCells().length > 0")
        assert all(c.startswith(QINGPU) for c in pg.evaluate(
            "map.zoomedCells().map((c) => c.code)"))
        fetched = pg.evaluate("Object.keys(map.streetCells)")
        assert 0 < len(fetched) < 11 and pg.evaluate("map.cellPx()") >= 3
        assert pg.locator("#map-reset").is_visible()
        pg.screenshot(path=str(ARTIFACTS / "dashboard-district-zoomed.png"))
        pg.click("#map-reset")
        assert pg.evaluate("[map.z, map.zoomedCells().length]") == [1, 0]
        assert pg.locator("#map-reset").is_hidden()

        # down to the street of one Qingpu case: its communities and cells
        street = reported[0]["street"]
        pg.select_option("#street-select", street)
        pg.wait_for_url(f"{base}/?district={QINGPU}&street={street}")
        drawn(pg)
        until(pg, "map.cells.length > 0")
        assert pg.evaluate("map.mode") == "cells"
        cells = pg.evaluate("map.cells.map((c) => c.code)")
        assert all(c.startswith(street) for c in cells)
        assert all(c.startswith(street) for c in pg.evaluate("map.streets.map((s) => s.code)"))
        s = summary(pg)
        assert s["scope"]["level"] == "street" and s["scope"]["street"] == street
        assert s["cells"] and set(s["cells"]) <= set(cells)
        listed = counter_list(pg, "reported")
        assert kpi(pg, "reported") == len(listed) >= 1
        assert all(c["street"] == street for c in listed)
        assert pg.locator("#scope-label").text_content().endswith(f"({street})")
        pg.screenshot(path=str(ARTIFACTS / "dashboard-street.png"))
        # a case link still opens the case, at any level
        pg.goto(f"{base}/?district={QINGPU}#case={listed[0]['case_id']}")
        pg.wait_for_selector("#d-where", timeout=10_000)
        assert "青浦区 (310118)" in pg.locator("#d-where").text_content()
        assert pg.problems == [], pg.problems
    finally:
        ctx.close()


def test_a_district_user_cannot_switch(city, browser):
    w, _ = city
    base = f"http://127.0.0.1:{w.web_port}"
    r = httpx.get(f"{base}/dashboard/api/summary.json?district={QINGPU}", headers=CC,
                  timeout=10)
    assert r.status_code == 403 and QINGPU in r.json()["error"]
    r = httpx.get(f"{base}/dashboard/api/summary.json?street={QINGPU}001", headers=CC,
                  timeout=10)
    assert r.status_code == 403
    r = httpx.get(f"{base}/dashboard/api/summary.json?street=31011", headers=CC, timeout=10)
    assert r.status_code == 422 and "9-digit" in r.json()["error"]
    ctx, pg = signed_in(browser, w, "demo-command-center")
    try:
        drawn(pg)
        s = summary(pg)
        assert s["scope"]["level"] == "district" and s["scope"]["district"] == YANGPU
        assert s["choices"]["city"] is False
        assert [d["code"] for d in s["choices"]["districts"]] == [YANGPU]
        assert pg.locator("#to-city").is_hidden()
        sel = pg.locator("#district-select")
        assert sel.is_disabled() and sel.locator("option").count() == 1
        # its streets it may open
        assert pg.locator("#street-select option").count() == 1 + 12
        # asking for Qingpu in the address bar shows why not, and no Qingpu data
        pg.goto(f"{base}/?district={QINGPU}")
        until(pg, "document.getElementById('map-msg').textContent.includes('403')")
        assert pg.evaluate("lastSummary") is None
    finally:
        ctx.close()


def test_map_files_are_compact_and_cached(city, two_districts):
    w, _ = city
    base = f"http://127.0.0.1:{w.web_port}/dashboard/api/map"
    r = httpx.get(f"{base}/districts.geojson", headers=VIEWER, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
    assert len(r.json()["features"]) == 16
    assert "max-age=86400" in r.headers["Cache-Control"]
    again = httpx.get(f"{base}/districts.geojson", timeout=10,
                      headers={**VIEWER, "If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304
    assert int(r.headers["Content-Length"]) == \
        (two_districts / "web" / "districts.geojson.gz").stat().st_size  # the file, as it is
    cells = httpx.get(f"{base}/cells.geojson?street={QINGPU}001", headers=VIEWER,
                      timeout=10).json()
    assert cells["features"] and all(f["properties"]["code"].startswith(f"{QINGPU}001")
                                     for f in cells["features"])
    # a large district's cells come per street only
    r = httpx.get(f"http://127.0.0.1:{w.web_port}/dashboard/api/cells.geojson?district={QINGPU}",
                  headers=VIEWER, timeout=10)
    assert r.status_code == 422 and "per street" in r.json()["error"]
    r = httpx.get(f"{base}/cells.geojson?street=abc", headers=VIEWER, timeout=10)
    assert r.status_code == 422 and "9-digit" in r.json()["error"]
    assert httpx.get(f"{base}/roads.geojson", headers=VIEWER, timeout=10).status_code == 404
