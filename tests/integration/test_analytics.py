"""Weak links and the monthly report from the read store (SQLite and a real PostgreSQL), on the
generated history with planted hot spots and recurrences (tests/fixtures/analytics/history.py);
the HTML report in real headless Chromium (Debian's), its PDF one page per section."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from geodata.adjacency import cell_weights
from grid import analytics as A
from grid.monthly import SECTIONS
from store.analytics import Analytics
from store.db import connect
from store.writer import Record, StoreWriter
from streams import topics as T
from streams.report_cli import report
from streams.report_page import TITLES
from tests.fixtures.analytics.history import DISTRICT, build, event_dicts

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
MARCH = (datetime(2026, 3, 1, tzinfo=CST), datetime(2026, 4, 1, tzinfo=CST))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PERIOD = ["--district", DISTRICT, "--from", "2026-03-01", "--to", "2026-03-31"]


@pytest.fixture(scope="module")
def history():
    return build()


def load(url: str, events: list[dict]) -> StoreWriter:
    w = StoreWriter(connect(url))
    w.load_positions([])
    recs = [Record(T.CASE_EVENTS, 0, i, orjson.dumps(e)) for i, e in enumerate(events)]
    for i in range(0, len(recs), 700):
        w.apply(recs[i:i + 700])
    return w


def test_weak_links_from_the_store(store_url, history):
    events = event_dicts(history)
    a = Analytics(load(store_url, events).engine)
    facts = a.facts(DISTRICT, *MARCH, lookback=timedelta(days=30))
    counts = a.cell_counts(DISTRICT, *MARCH)
    opened = {e["case_id"]: e for e in events if e["type"] == "reported"}
    march = [e for e in opened.values() if MARCH[0] <= datetime.fromisoformat(e["at"]) < MARCH[1]]
    assert sum(counts.values()) == len(march) == 268
    assert counts == Counter(e["data"]["placement"]["cell"] for e in march)
    hot, _ = A.hotspots(counts, cell_weights(DISTRICT))
    assert {h.cell for h in hot} == history.hot_cells
    rec = A.recurrences(facts, 30, lambda _: 50.0, since=MARCH[0])
    assert {r.case_id: (r.nth, r.earlier) for r in rec} == history.recurred
    weekly = A.weekly(facts, "street", *MARCH)
    assert sum(x.reports for w in weekly.values() for x in w.values()) == 268
    sup = {d.reporter: d.to_dict() for d in A.discovery(facts, a.verifications(
        DISTRICT, *MARCH), *MARCH)}
    verified = [e for e in events if e["type"] in ("verified", "rework")
                and MARCH[0] <= datetime.fromisoformat(e["at"]) < MARCH[1]
                and e["case_id"] in opened]
    assert sum(s["verifications"] for s in sup.values()) == len(verified)
    assert sup["sup-2"]["reports"] == 145 and sup["sup-2"]["mean_verify_hours"] == 0.5
    # the flag on one case, at read time
    for cid, (nth, earlier) in history.recurred.items():
        flag = a.recurrence_of(cid, 30)
        assert (flag.nth, flag.earlier) == (nth, earlier), cid
    misses = [history.names[n] for n in ("r1-a", "n4-b", "n4-c", "n5-b")]
    assert [a.recurrence_of(cid, 30) for cid in misses] == [None] * 4
    assert a.recurrence_of(history.names["n4-b"], 60).earlier == (history.names["n4-a"],)
    assert a.recurrence_of(history.names["r3-b"], 30, lambda _: 10.0) is None  # 15 m away
    assert a.recurrence_of("no-such-case") is None


@pytest.fixture(scope="module")
def report_store(tmp_path_factory, history) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'store.db'}"
    load(url, event_dicts(history)).engine.dispose()
    return url


def run(*args: str) -> str:
    got = CliRunner().invoke(report, list(args), catch_exceptions=False)
    assert got.exit_code == 0, got.output
    return got.output


def _shown(v) -> str:
    return "—" if v is None else f"{v * 100:.1f}%" if isinstance(v, float) else str(v)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed")
def test_html_report_in_chromium_equals_the_json(report_store, tmp_path):
    from playwright.sync_api import sync_playwright

    data = orjson.loads(run(*PERIOD, "--format", "json", "--store", report_store))
    page_file = tmp_path / "report.html"
    run(*PERIOD, "--format", "html", "--store", report_store, "-o", str(page_file))
    errors, requests = [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = b.new_page(viewport={"width": 1123, "height": 794})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_file.as_uri())
        page.wait_for_load_state("load")
        shown = page.evaluate("""() => [...document.querySelectorAll('[data-scope] [data-f]')]
            .map(td => [td.closest('[data-scope]').dataset.scope,
                        td.closest('[data-key]') ? td.closest('[data-key]').dataset.key : '',
                        td.dataset.f, td.matches('div') ? td.querySelector('b').textContent
                                                        : td.textContent])""")
        titles = page.locator("section h2").all_inner_texts()
        images = page.evaluate("() => [...document.images].every(i => i.naturalWidth > 0)")
        ARTIFACTS.mkdir(exist_ok=True)
        page.emulate_media(media="print")
        page.locator("#overview").screenshot(path=str(ARTIFACTS / "report-first-page.png"))
        b.close()
    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests  # self-contained
    assert images is True
    assert titles == [TITLES[s] for s in SECTIONS]
    got = {(scope, key, f): text for scope, key, f, text in shown}
    fields = ["dispatched", "closed", "closure_rate", "on_time_rate", "rework_rate",
              "extension_rate", "open", "overdue"]
    want = {(scope, row["key"], f): _shown(row[f])
            for scope, rows in (("department", data["departments"]),
                                ("street", data["streets"])) for row in rows for f in fields}
    want.update({("total", "", f): _shown(data["total"][f]) for f in fields})
    assert got == want
    assert got[("total", "", "dispatched")] == "268"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed")
def test_pdf_report_has_one_page_per_section(report_store, tmp_path):
    from pypdf import PdfReader

    out = tmp_path / "report.pdf"
    run(*PERIOD, "--format", "pdf", "--store", report_store, "-o", str(out))
    pages = PdfReader(out).pages
    assert len(pages) == len(SECTIONS) == 6
    firsts = [p.extract_text().splitlines() for p in pages]
    assert firsts[0][0] == "杨浦区城市网格化管理月度考核评价报告"
    assert [next(ln for ln in lines if ln.startswith(TITLES[s][:2])) for lines, s in
            zip(firsts, SECTIONS, strict=True)] == [TITLES[s] for s in SECTIONS]


# -- the analytics view on a worker ------------------------------------------------------------

CC = {"Authorization": "Bearer demo-command-center"}
VIEWER = {"Authorization": "Bearer demo-viewer"}
MARCH_Q = "from=2026-03-01&to=2026-03-31&days=30"


@pytest.fixture(scope="module")
def view_worker(broker, tmp_path_factory, history):
    """A worker reading a store filled with the history (no projector of its own)."""
    from tests.integration.conftest import WorkerProc, wait_http

    tmp = tmp_path_factory.mktemp("view")
    url = f"sqlite:///{tmp / 'store.db'}"
    load(url, event_dicts(history)).engine.dispose()
    w = WorkerProc(broker.url, tmp, f"grid-an-{tmp.name[-6:]}", GRID_STORE_URL=url,
                   GRID_PROJECTOR="0").start()
    try:
        wait_http(f"http://127.0.0.1:{w.web_port}/api/v1/ready", timeout=90, proc=w.proc,
                  log=w.log_tail)
        yield w
    finally:
        w.stop()


def test_analytics_api_scopes_and_numbers(view_worker, history):
    import httpx

    base = f"http://127.0.0.1:{view_worker.web_port}/analytics/api/data.json"
    assert httpx.get(f"{base}?{MARCH_Q}", timeout=60).status_code == 401
    r = httpx.get(f"{base}?from=2026-03-31&to=2026-03-01", headers=CC, timeout=60)
    assert r.status_code == 422 and "from ≤ to" in r.json()["error"]
    d = httpx.get(f"{base}?{MARCH_Q}", headers=CC, timeout=120).json()
    assert {h["cell"] for h in d["hotspots"]["hot"]} == history.hot_cells
    assert {x["case_id"]: (x["nth"], tuple(x["earlier"])) for x in d["recurrences"]["queue"]} \
        == history.recurred
    assert d["recurrences"]["queue"][0]["text"] == "第3次（30天内）recurred: 3rd time in 30 days"
    assert d["recurrences"]["by_street"][0] == {"key": d["recurrences"]["queue"][0]["street"],
                                                "name": d["recurrences"]["by_street"][0]["name"],
                                                "cases": 2}
    assert d["trends"]["supervisors"][0]["reporter"] == "sup-2"
    nth3 = next(c for c, (n, _) in history.recurred.items() if n == 3)
    flag = httpx.get(f"{base[:-len('data.json')]}cases/{nth3}/recurrence", headers=VIEWER,
                     timeout=60).json()
    assert flag["recurred"] is True and flag["nth"] == 3
    assert flag["earlier"] == list(history.recurred[nth3][1])
    first = history.names["r1-a"]
    assert httpx.get(f"{base[:-len('data.json')]}cases/{first}/recurrence", headers=VIEWER,
                     timeout=60).json() == {"case_id": first, "recurred": False}
    # the case drawer carries the same flag
    drawer = f"http://127.0.0.1:{view_worker.web_port}/dashboard/api/cases"
    d3 = httpx.get(f"{drawer}/{nth3}", headers=CC, timeout=60).json()
    assert (d3["recurrence"]["nth"], d3["recurrence"]["earlier"]) == (
        3, list(history.recurred[nth3][1]))
    assert d3["recurrence"]["text"] == "第3次（30天内）recurred: 3rd time in 30 days"
    assert httpx.get(f"{drawer}/{first}", headers=CC, timeout=60).json()["recurrence"] is None
    v = httpx.get(f"{base}?{MARCH_Q}", headers=VIEWER, timeout=120).json()
    assert v["trends"]["supervisors"] == []  # no personal data for viewers
    assert v["hotspots"]["hot"] == d["hotspots"]["hot"]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed")
def test_analytics_view_in_chromium(view_worker, history):
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{view_worker.web_port}"
    problems: list[str] = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        ctx = b.new_context(viewport={"width": 1500, "height": 1000})
        page = ctx.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{base}/analytics?{MARCH_Q}")
        assert "/login" in page.url  # signed-in users only
        page.fill("#token", "demo-command-center")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/analytics?{MARCH_Q}")
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        hot = page.locator("#hot tbody tr").evaluate_all("rs => rs.map(r => r.dataset.cell)")
        queue = page.locator("#recur tbody tr").evaluate_all(
            "rs => rs.map(r => r.dataset.case)")
        links = page.locator("#recur tbody tr").first.locator("a").evaluate_all(
            "as => as.map(a => a.getAttribute('href'))")
        district = page.locator("#district-name").text_content()
        page.select_option("#trend-by", "street")
        page.select_option("#trend-key", "310110005")
        bars = page.locator("#weekly rect").evaluate_all(
            "rs => rs.map(r => [r.dataset.week, r.dataset.value])")
        page.select_option("#trend-by", "district")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "analytics.png"), full_page=True)
        b.close()
    assert problems == []
    assert district == "杨浦区"
    assert set(hot) == history.hot_cells
    direct = Counter(A.week_of(datetime.fromisoformat(e["at"])).isoformat()
                     for e in event_dicts(history) if e["type"] == "reported"
                     and e["case_id"].startswith("310110005")
                     and MARCH[0] <= datetime.fromisoformat(e["at"]) < MARCH[1])
    assert {w: int(v) for w, v in bars if v != "0"} == dict(direct)
    assert set(queue) == set(history.recurred)
    nth3 = next(c for c, (n, _) in history.recurred.items() if n == 3)
    assert links == [f"/#case={c}" for c in (nth3, *history.recurred[nth3][1])]
