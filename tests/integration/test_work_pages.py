"""The work screens (issue 16) in real headless Chromium (Debian's ``chromium``, driven by
Playwright) against the session's ``grid worker``: a whole case only through the pages, triage,
arbitration, extensions, who sees which buttons, sign-in and CSRF, refused uploads.

Screenshots of each page at desktop and phone sizes go to test-artifacts/work-*.png.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from PIL import Image

from streams import topics as T
from streams.kafka_io import collect
from tests.integration.conftest import fresh_point, make_report
from tests.unit.test_photos import camera_exif, jpeg

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SUP = {"Authorization": "Bearer demo-supervisor"}  # sup-0042, Yangpu
CC = {"Authorization": "Bearer demo-command-center"}  # yangpu-cc
HOTLINE = {"Authorization": "Bearer demo-hotline"}
PHONE = (390, 844)
DESKTOP = (1440, 900)
SHANGHAI = ZoneInfo("Asia/Shanghai")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="Debian chromium not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def base_of(engine) -> str:
    return f"http://127.0.0.1:{engine.web_port}"


class Screen:
    """A signed-in page in its own browser context; ``problems``: console errors."""

    def __init__(self, browser, engine, token: str, path: str, size: tuple[int, int],
                 **ctx_kw) -> None:
        self.base = base_of(engine)
        self.ctx = browser.new_context(viewport={"width": size[0], "height": size[1]},
                                       **ctx_kw)
        self.pg = self.ctx.new_page()
        self.problems: list[str] = []
        self.pg.on("console", lambda m: self.problems.append(f"console.{m.type}: {m.text}")
                   if m.type == "error" else None)
        self.pg.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        self.pg.goto(f"{self.base}{path}", wait_until="domcontentloaded")
        assert "/login?next=" in self.pg.url  # no session: the sign-in page first
        self.pg.fill("#token", token)
        self.pg.click("button[type=submit]")
        self.pg.wait_for_url(f"{self.base}{path}")
        self.pg.wait_for_selector("#who b", timeout=10_000)  # signed in: who is shown

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.pg.screenshot(path=str(ARTIFACTS / f"work-{name}.png"), full_page=True)

    def close(self) -> None:
        self.ctx.close()


def until(check, what: str, timeout: float = 30.0, pg=None):
    """Poll ``check()`` until it returns something true (the page's CSP forbids the eval that
    Playwright's wait_for_function needs)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if pg is not None:
            pg.wait_for_timeout(200)
        else:
            time.sleep(0.2)


def case_of(engine, rid: str) -> str:
    def look():
        r = httpx.get(f"{base_of(engine)}/api/v1/reports/{rid}", headers=CC, timeout=10)
        return r.json()["case_id"] if r.status_code == 200 else None
    return until(look, f"report {rid} to become a case")


def case_json(engine, case_id: str) -> dict:
    return httpx.get(f"{base_of(engine)}/api/v1/cases/{case_id}", headers=CC,
                     timeout=10).json()


def stored_case(engine, case_id: str, pred, what: str) -> dict:
    """The case once the read store shows ``pred`` true of it (the pages read the store)."""
    def look():
        d = httpx.get(f"{base_of(engine)}/work/api/cases/{case_id}", headers=CC, timeout=10)
        return d.json() if d.status_code == 200 and pred(d.json()) else None
    return until(look, what)


def api_report(engine, report: dict, headers=SUP) -> str:
    if headers is SUP:
        report = {**report, "reporter_id": "sup-0042"}
    r = httpx.post(f"{base_of(engine)}/api/v1/reports", json=report, headers=headers,
                   timeout=10)
    assert r.status_code == 202, r.text
    return case_of(engine, report["report_id"])


def photo_files(engine) -> list[str]:
    root = engine.tmp / "data" / "photos"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def upload(pg, selector: str, name: str, data: bytes, mime: str = "image/jpeg") -> str:
    """Choose a file in a photo input; the message under it once the upload is answered."""
    msg = f"{selector}-msg"
    pg.set_input_files(selector, files=[{"name": name, "mimeType": mime, "buffer": data}])
    pg.wait_for_selector(f"{msg}.ok, {msg}.err", timeout=20_000)
    return pg.locator(msg).text_content()


def click_row(pg, case_id: str, timeout: float = 30.0, where: str = "#list") -> None:
    """Click a case's row in the list ``where`` once it shows there (live updates)."""
    row = pg.locator(f"{where} li[data-case-id='{case_id}']").first
    row.wait_for(timeout=timeout * 1000)
    row.click()
    pg.wait_for_selector(f"#c-id:text-is('{case_id}')", timeout=10_000)


def act(pg, button: str, expect: str) -> None:
    """Click an action button of the case page; wait for the engine's answer in words."""
    pg.click(button)  # sets the message to "Sending…" until the API answers

    def answered():
        msg = pg.locator("#act-msg")
        cls = msg.get_attribute("class") or ""
        return msg.text_content() if ("ok" in cls or "err" in cls) else None
    text = until(answered, f"the answer to {button}", timeout=15, pg=pg)
    if "已提交" in text:  # 202: the engine answered after the API's wait; the page follows live
        until(lambda: expect in (pg.locator("#c-title").text_content() or ""),
              f"the case page to show {expect}", pg=pg)
        return
    assert expect in text, text


# -- the whole case, only through the pages ----------------------------------------------------

def test_a_whole_case_only_through_the_pages(browser, engine, broker):
    lon, lat = fresh_point()
    marker = f"e2e-{uuid.uuid4().hex[:8]}"
    before = jpeg(camera_exif(), color=(90, 90, 90))
    after = jpeg(camera_exif(), color=(20, 140, 60))
    # the supervisor, on a phone: a missing manhole cover of the water company (SS-), a photo
    m = Screen(browser, engine, "demo-supervisor", "/m", PHONE,
               geolocation={"longitude": lon, "latitude": lat}, permissions=["geolocation"])
    con = inbox = None
    try:
        pg = m.pg
        pg.fill("#type-q", "井盖")
        pg.click("#type-list button[data-code='0101']")
        assert "井盖缺失/损坏" in pg.locator("#type-chosen").text_content()
        pg.click("#geo")
        until(lambda: "设备定位" in (pg.locator("#where").text_content() or ""),
              "the device location", pg=pg)
        assert f"{lon:.6f}, {lat:.6f}" in pg.locator("#where").text_content()
        assert "已上传 1 张照片" in upload(pg, "#photos", "cover.jpg", before)
        pg.fill("#desc", f"井盖缺失，路口有人绊倒风险 {marker}")
        pg.fill("#component", f"SS-{marker}")
        m.shot("m-report-phone")
        pg.click("#submit")
        pg.wait_for_selector("#report-id", timeout=10_000)
        rid = pg.locator("#report-id").text_content()
        pg.click("#tab-mine")
        row = pg.locator("#mine-list li", has_text=marker).first
        row.wait_for(timeout=30_000)
        case_id = row.get_attribute("data-case-id")
        assert case_id and case_of(engine, rid) == case_id
        case = case_json(engine, case_id)
        assert case["department"] == "water", case["department"]  # the cover's owner
        photo_url = case["report"]["photos"][0]
        assert photo_url.startswith("/api/v1/photos/")

        # the command center finds it in the console; the decision in words, the photo
        con = Screen(browser, engine, "demo-command-center", "/console", DESKTOP)
        cp = con.pg
        cp.fill("#q", case_id)
        cp.click("#f-go")
        click_row(cp, case_id)
        why = cp.locator("#c-why").text_content()
        assert "Sent to 供水企业" in why and "(water)" in why, why
        assert cp.locator("#c-photos img").first.get_attribute("src") == photo_url
        assert "井盖缺失/损坏 Manhole cover missing or damaged (0101)" in \
            cp.locator("#c-title").text_content()
        assert marker in cp.locator("#c-desc").text_content()

        # the water company's inbox: accept, dispose with an after-photo
        inbox = Screen(browser, engine, "demo-dept-water", "/inbox", DESKTOP)
        ip = inbox.pg
        click_row(ip, case_id)
        assert ip.locator("#act-close").count() == 0 and ip.locator("#act-dispatch").count() == 0
        act(ip, "#act-accept", "已签收 accepted")
        ip.wait_for_selector("#act-dispose", timeout=10_000)
        assert "已上传 1 张照片" in upload(ip, "#f-dispose-photos", "fixed.jpg", after)
        ip.fill("#f-dispose-reason", "已更换井盖 new cover fitted")
        inbox.shot("inbox-case-desktop")
        act(ip, "#act-dispose", "已处置 disposed")

        # the supervisor verifies it on the phone
        pg.click("#tab-verify")
        click_row(pg, case_id, where="#verify-list")
        assert pg.evaluate("document.documentElement.scrollWidth") <= PHONE[0], pg.evaluate(
            "[...document.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1"
            " && getComputedStyle(e).overflowX === 'visible').map(e => e.tagName + '#' + e.id"
            " + '.' + e.className + ' ' + e.scrollWidth + '/' + e.clientWidth).slice(-12)")
        assert pg.locator("#c-photos img").count() == 2  # the report's and the after-photo
        act(pg, "#act-verify-pass", "已核查 verified")
        m.shot("m-verify-phone")

        # the command center closes it from the verified queue, one click
        cp.click("#q-verified")
        row = cp.locator(f"#list li[data-case-id='{case_id}']")
        row.wait_for(timeout=30_000)
        row.locator("button.close").click()
        stored_case(engine, case_id, lambda d: d["state"] == "closed", "the case to close")
        cp.click("#q-list")
        cp.fill("#q", case_id)
        cp.click("#f-go")
        click_row(cp, case_id)
        until(lambda: "已结案 closed" in cp.locator("#c-title").text_content(),
              "the case page to show closed", pg=cp)
        assert cp.locator("#c-actions button").count() == 0  # nothing left to do
        con.shot("console-case-desktop")
        for s in (m, con, inbox):
            assert s.problems == [], s.problems
    finally:
        for s in (m, con, inbox):
            if s is not None:
                s.close()

    # the events on grid.case-events.v1: the case went through every step, by whom
    # (read in a thread: Playwright's sync API keeps an event loop running in this one;
    # from the start of a topic every earlier test wrote to: ~19,000 events in CI, more
    # than 30 s of reading on a loaded machine; and a worker an earlier test killed leaves
    # its transaction open until the 60 s transaction timeout, holding a read_committed
    # reader at that partition: 120 s were once not enough on a contended host)
    def closed(vs: list) -> bool:
        return any(isinstance(v, dict) and v.get("case_id") == case_id
                   and v.get("type") == "closed" for v in vs)
    with ThreadPoolExecutor(1) as pool:
        seen = pool.submit(asyncio.run, collect(broker.bootstrap, T.CASE_EVENTS, closed,
                                                timeout=240)).result()
    events = [v for v in seen if isinstance(v, dict) and v.get("case_id") == case_id]
    steps = [(e["type"], e["role"], e["actor"]) for e in events
             if e["state_from"] != e["state_to"]]
    kinds = [s[0] for s in steps]
    assert kinds[0] == "reported" and kinds[-4:] == ["accepted", "disposed", "verified",
                                                      "closed"], kinds
    assert "dispatched" in kinds
    assert steps[-4:] == [("accepted", "department", "water"),
                          ("disposed", "department", "water"),
                          ("verified", "supervisor", "sup-0042"),
                          ("closed", "command_center", "yangpu-cc")], steps
    by_type = {e["type"]: e for e in events}
    assert by_type["reported"]["data"]["report"]["photos"] == [photo_url]
    assert by_type["reported"]["data"]["report"]["reporter_id"] == "sup-0042"
    disposed_photos = by_type["disposed"]["data"]["evidence_photos"]
    assert len(disposed_photos) == 1 and disposed_photos[0] != photo_url
    assert by_type["disposed"]["reason"] == "已更换井盖 new cover fitted"


def test_fixed_on_the_spot_with_a_tap_on_the_map(browser, engine):
    """A self-disposable type, the place tapped on the map, an after-photo: the case closes
    itself (self_closed) with both photos, from the phone page alone."""
    marker = f"spot-{uuid.uuid4().hex[:8]}"
    m = Screen(browser, engine, "demo-supervisor", "/m", PHONE)
    try:
        pg = m.pg
        pg.fill("#type-q", "乱张贴")
        pg.click("#type-list button[data-code='0701']")
        assert "可自行处置 self-disposable" in pg.locator("#type-chosen").text_content()
        box = pg.locator("#m-map").bounding_box()
        pg.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        assert "地图点选 tapped on the map" in pg.locator("#where").text_content()
        assert "已上传 1 张照片" in upload(pg, "#photos", "ads.jpg", jpeg(color=(200, 200, 0)))
        pg.fill("#desc", f"电线杆上的小广告，已清除 {marker}")
        pg.check("#fixed")
        assert "已上传 1 张照片" in upload(pg, "#after-photos", "clean.jpg",
                                         jpeg(color=(10, 10, 200)))
        pg.click("#submit")
        pg.wait_for_selector("#report-id", timeout=10_000)
        case_id = case_of(engine, pg.locator("#report-id").text_content())
        d = stored_case(engine, case_id, lambda d: d["state"] == "closed", "self-closing")
        assert d["self_closed"] and d["type_code"] == "0701"
        assert [p["what"] for p in d["photos"]] == ["report", "evidence"]
        pg.click("#tab-mine")
        row = pg.locator(f"#mine-list li[data-case-id='{case_id}']")
        row.wait_for(timeout=15_000)
        assert "已结案 closed" in row.text_content()
        assert m.problems == [], m.problems
    finally:
        m.close()


# -- the console's queues -------------------------------------------------------------------------

def test_a_triaged_hotline_report_is_classified_from_the_console(browser, engine):
    report = make_report(None, source="hotline_12345", reporter_id="hotline-12345",
                         description=f"地上脏乱 {uuid.uuid4().hex[:6]}")
    case_id = api_report(engine, report, headers=HOTLINE)
    stored_case(engine, case_id, lambda d: d["state"] == "triage", "the case in triage")
    con = Screen(browser, engine, "demo-command-center", "/console", DESKTOP)
    try:
        pg = con.pg
        pg.click("#q-triage")
        row = pg.locator(f"#list li[data-case-id='{case_id}']")
        row.wait_for(timeout=15_000)
        codes = row.locator("button.suggest").evaluate_all("els => els.map(e => e.dataset.code)")
        assert codes[:2] == ["0601", "0608"], codes  # the classifier's top suggestions
        assert "暴露垃圾" in row.locator("button.suggest").first.text_content()
        con.shot("console-triage-desktop")
        row.locator("button.suggest").first.click()  # one click
        d = stored_case(engine, case_id, lambda d: d["state"] == "dispatched",
                        "the classified case to be dispatched")
        assert d["type_code"] == "0601" and d["department"]
        kinds = [(h["type"], h["actor"]) for h in d["history"]]
        assert ("classified", "yangpu-cc") in kinds, kinds
        until(lambda: pg.locator(f"#list li[data-case-id='{case_id}']").count() == 0,
              "the case to leave the triage queue (live)", pg=pg)
        assert con.problems == [], con.problems
    finally:
        con.close()


def test_a_twice_returned_case_is_arbitrated_in_the_console(browser, engine):
    case_id = api_report(engine, make_report("0601", description="arbitration test"))
    d = stored_case(engine, case_id, lambda d: d["state"] == "dispatched", "dispatch")
    dept = d["department"]
    dept_h = {"Authorization": f"Bearer demo-dept-{dept}"}
    url = f"{base_of(engine)}/api/v1/cases/{case_id}/actions"
    r = httpx.post(url, json={"action": "return", "reason": "不属于本部门 not ours"},
                   headers=dept_h, timeout=10)
    assert r.status_code == 200, r.text
    con = Screen(browser, engine, "demo-command-center", "/console", DESKTOP)
    try:
        pg = con.pg
        pg.click("#q-returned")
        click_row(pg, case_id)
        assert "重新派遣 Re-dispatch" in pg.locator("#act-dispatch").text_content()
        act(pg, "#act-dispatch", "已派遣 dispatched")  # back to the same department
        r = httpx.post(url, json={"action": "return", "reason": "仍不属于本部门 still not ours"},
                       headers=dept_h, timeout=10)
        assert r.status_code == 200 and r.json()["state"] == "returned", r.text
        pg.click("#q-returned")
        row = pg.locator(f"#list li[data-case-id='{case_id}']")
        row.wait_for(timeout=15_000)
        until(lambda: row.locator(".arb").count() == 1, "the arbitration mark", pg=pg)
        assert "退回 2 次" in row.locator(".arb").text_content()
        click_row(pg, case_id)
        assert "仲裁派遣 Arbitrate" in pg.locator("#act-dispatch").text_content()
        pg.select_option("#f-dept", "urban_enforcement")
        pg.fill("#f-dispatch-reason", "仲裁：由城管执法处置 arbitration: enforcement")
        con.shot("console-arbitration-desktop")
        act(pg, "#act-dispatch", "已派遣 dispatched")
        d = stored_case(engine, case_id, lambda d: d["department"] == "urban_enforcement",
                        "the arbitrated dispatch")
        kinds = [h["type"] for h in d["history"]]
        assert kinds.count("returned") == 2 and "arbitration" in kinds
        assert kinds[-1] == "redispatched" or "redispatched" in kinds[-3:], kinds
        assert con.problems == [], con.problems
    finally:
        con.close()


def test_an_extension_granted_in_the_console_shows_in_the_inbox(browser, engine):
    case_id = api_report(engine, make_report("0601", description="extension test"))
    d = stored_case(engine, case_id, lambda d: d["state"] == "dispatched", "dispatch")
    dept = d["department"]
    inbox = Screen(browser, engine, f"demo-dept-{dept}", "/inbox", DESKTOP)
    con = None
    try:
        ip = inbox.pg
        click_row(ip, case_id)
        act(ip, "#act-accept", "已签收 accepted")
        ip.wait_for_selector("#act-request_extension", timeout=10_000)
        ip.fill("#f-ext-minutes", "1440")
        ip.fill("#f-ext-reason", "需要等待配件 waiting for parts")
        act(ip, "#act-request_extension", "已签收 accepted")  # the state stays
        assert ip.locator("#act-request_extension").count() == 0  # one request at a time
        con = Screen(browser, engine, "demo-command-center", "/console", DESKTOP)
        cp = con.pg
        cp.click("#q-extension")
        row = cp.locator(f"#list li[data-case-id='{case_id}']")
        row.wait_for(timeout=15_000)
        asked = stored_case(engine, case_id, lambda d: d.get("new_due"), "the request")
        new_due = datetime.fromisoformat(asked["new_due"]).astimezone(SHANGHAI)
        shown = new_due.strftime("%Y-%m-%d %H:%M")
        assert f"+1440 min → {shown}" in row.text_content()  # the new due time, Shanghai
        row.locator("button.grant").click()
        d = stored_case(engine, case_id, lambda d: d["extensions"] == 1, "the grant")
        due = datetime.fromisoformat(d["deadlines"]["dispose"]).astimezone(SHANGHAI)
        assert due == new_due
        # the inbox shows the new due time without a reload
        inbox_row = ip.locator(f"#list li[data-case-id='{case_id}']")
        until(lambda: shown in (inbox_row.locator(".due").text_content() or ""),
              f"the inbox to show {shown}", pg=ip)
        assert "已延期 extended ×1" in inbox_row.text_content()
        inbox.shot("inbox-extension-desktop")
        assert inbox.problems == [] and con.problems == [], inbox.problems + con.problems
    finally:
        inbox.close()
        if con is not None:
            con.close()


# -- who sees what, who may do what ------------------------------------------------------------

def test_each_role_sees_only_its_buttons_and_pages(browser, engine):
    base = base_of(engine)
    case_id = api_report(engine, make_report("0601", description="roles test"))
    d = stored_case(engine, case_id, lambda d: d["state"] == "dispatched", "dispatch")
    dept = d["department"]
    # a page without a session goes to sign-in; another role's page is 403
    for path in ("/console", "/inbox", "/m"):
        r = httpx.get(base + path, timeout=10)
        assert r.status_code == 302 and r.headers["Location"] == f"/login?next={path}", path
    for token, path in (("demo-dept-water", "/console"), ("demo-supervisor", "/inbox"),
                        ("demo-command-center", "/m"), ("demo-viewer", "/inbox")):
        r = httpx.get(base + path, cookies={"grid_session": token}, timeout=10)
        assert r.status_code == 403 and "Forbidden" in r.text, (token, path)
        api = {"/console": "console", "/inbox": "inbox", "/m": "mine"}[path]
        r = httpx.get(f"{base}/work/api/{api}", cookies={"grid_session": token}, timeout=10)
        assert r.status_code == 403, (token, api)
    # a viewer reads the console but gets no button
    v = Screen(browser, engine, "demo-viewer", "/console", DESKTOP)
    try:
        v.pg.fill("#q", case_id)
        v.pg.click("#f-go")
        click_row(v.pg, case_id)
        assert v.pg.locator("#c-actions h3").text_content() == "只读 Read-only"
        assert v.pg.locator("#c-actions button").count() == 0
        v.pg.click("#q-triage")
        assert v.pg.locator("#list button").count() == 0
        assert v.problems == [], v.problems
    finally:
        v.close()
    # the department's case page: its own actions only; another department cannot read it
    dp = Screen(browser, engine, f"demo-dept-{dept}", "/inbox", DESKTOP)
    try:
        click_row(dp.pg, case_id)
        buttons = dp.pg.locator("#c-actions button").evaluate_all("els => els.map(e => e.id)")
        assert set(buttons) == {"act-accept", "act-return", "act-dispose",
                                "act-request_extension"}, buttons
        # a forged post from the page, outside its scope or role: 403 from the API itself
        other = api_report(engine, make_report("0101", description="not sanitation's"))
        stored_case(engine, other, lambda d: d["state"] == "dispatched", "dispatch")
        for case, body, says in (
                (other, {"action": "accept"}, "may act only on its own work orders"),
                (case_id, {"action": "close"}, "may not 'close'")):
            got = dp.pg.evaluate("""async ([id, body]) => {
              const r = await fetch(`/api/v1/cases/${id}/actions`, {method: 'POST',
                headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)});
              return [r.status, await r.json()];
            }""", [case, body])
            assert got[0] == 403 and says in got[1]["error"], got
        dp.problems = [p for p in dp.problems if "403" not in p]  # the forged posts' own
        assert dp.problems == [], dp.problems
    finally:
        dp.close()
    # the command center's buttons on the same case: no department action
    c = httpx.get(f"{base}/work/api/cases/{case_id}", headers=CC, timeout=10).json()
    assert not set(c["actions"]) & {"accept", "dispose", "return", "request_extension",
                                     "verify"}, c["actions"]
    s = httpx.get(f"{base}/work/api/cases/{case_id}", headers=SUP, timeout=10).json()
    assert s["actions"] == []  # dispatched: nothing for a supervisor yet


def test_cross_site_posts_are_refused(engine):
    base = base_of(engine)
    case_id = api_report(engine, make_report("0601", description="csrf test"))
    stored_case(engine, case_id, lambda d: d["state"] == "dispatched", "dispatch")
    session = {"grid_session": "demo-command-center"}
    url = f"{base}/api/v1/cases/{case_id}/actions"
    body = {"action": "supervise", "stage": "dispose"}
    for origin in ({"Origin": "http://evil.example"}, {}):  # another site, or unnamed
        r = httpx.post(url, json=body, cookies=session, headers=origin, timeout=10)
        assert r.status_code == 403 and r.json()["reason"] == "cross_site", r.text
        assert "cross-site request refused" in r.json()["error"]
    r = httpx.post(f"{base}/api/v1/photos", content=jpeg(), cookies=session, timeout=10,
                   headers={"Origin": "http://evil.example", "Content-Type": "image/jpeg"})
    assert r.status_code == 403 and r.json()["reason"] == "cross_site"
    r = httpx.post(f"{base}/api/v1/reports", json=make_report("0601"), timeout=10,
                   cookies={"grid_session": "demo-supervisor"},
                   headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["reason"] == "cross_site"
    r = httpx.post(f"{base}/login", data={"token": "demo-command-center"}, timeout=10,
                   headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    # the same post from the site's own origin is taken; the history shows the order
    r = httpx.post(url, json=body, cookies=session, headers={"Origin": base}, timeout=10)
    assert r.status_code == 200, r.text
    # a bearer token is not a browser session: no origin needed
    r = httpx.post(url, json=body, headers=CC, timeout=10)
    assert r.status_code in (200, 409), r.text


def test_photos_are_served_only_to_who_may_see_the_case(engine):
    base = base_of(engine)
    r = httpx.post(f"{base}/api/v1/photos", content=jpeg(color=(1, 2, 3)), timeout=10,
                   headers={**SUP, "Content-Type": "image/jpeg"})
    assert r.status_code == 201, r.text
    url = r.json()["url"]
    wrong = {"Authorization": "Bearer demo-dept-water"}
    r = httpx.get(base + url, headers=wrong, timeout=10)  # no case refers to it yet
    assert r.status_code == 403 and "belongs to no case" in r.json()["error"]
    assert httpx.get(base + url, headers=SUP, timeout=10).status_code == 200  # the uploader
    case_id = api_report(engine, make_report("0601", description="photo scope",
                                             photos=[url]))
    d = stored_case(engine, case_id, lambda d: d["state"] == "dispatched", "dispatch")
    assert httpx.get(base + url, headers=CC, timeout=10).status_code == 200
    mine = {"Authorization": f"Bearer demo-dept-{d['department']}"}
    assert httpx.get(base + url, headers=mine, timeout=10).status_code == 200
    r = httpx.get(base + url, headers=wrong, timeout=10)
    assert r.status_code == 403 and "may not see" in r.json()["error"]


def test_bad_uploads_are_refused_on_the_page_and_nothing_is_stored(browser, engine):
    exif = camera_exif()
    exif[0x010E] = "<script>alert(document.cookie)</script>"
    img = Image.frombytes("RGB", (2650, 2650), os.urandom(2650 * 2650 * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=0)
    big = buf.getvalue()
    assert len(big) > 20_000_000
    m = Screen(browser, engine, "demo-supervisor", "/m", PHONE)
    try:
        before = photo_files(engine)
        for name, data, mime, says in (
                ("notes.txt", b"just some text, not a photo", "text/plain",
                 "send a JPEG, PNG or WebP photo"),
                ("huge.png", big, "image/png", "at most 10 MB"),
                ("evil.jpg", jpeg(exif), "image/jpeg", "holds markup")):
            text = upload(m.pg, "#photos", name, data, mime)
            assert text.startswith(f"照片被拒绝 Photo refused ({name})") and says in text, text
            assert m.pg.locator("#photos-box .photos img").count() == 0
        assert photo_files(engine) == before  # nothing stored for any of them
        m.shot("m-refused-phone")
        # the refusals are the only console errors (the browser logs each 4xx answer)
        assert all("status of 4" in p for p in m.problems), m.problems
    finally:
        m.close()


# -- screenshots of each page at both sizes, no console errors ---------------------------------

# the elements that reach past the viewport's right edge, innermost first (a failure names them)
WIDEST = """[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > innerWidth + 1 && !e.querySelector('*'))
  .slice(0, 5).map(e => `${e.tagName.toLowerCase()}.${e.className} ${
    Math.round(e.getBoundingClientRect().right)}px: ${(e.textContent || '').slice(0, 60)}`)"""


@pytest.mark.parametrize("token,path,name", [
    ("demo-command-center", "/console", "console"),
    ("demo-dept-sanitation", "/inbox", "inbox"),
    ("demo-supervisor", "/m", "m"),
])
def test_each_page_at_desktop_and_phone_size(browser, engine, token, path, name):
    api_report(engine, make_report("0601", description=f"screenshot {name}"))
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        s = Screen(browser, engine, token, path, size)
        try:
            s.pg.wait_for_selector("#live:not(.off)", timeout=15_000)  # live events open
            s.pg.wait_for_timeout(800)
            width = s.pg.evaluate("document.documentElement.scrollWidth")
            assert width <= size[0], (label, width, s.pg.evaluate(WIDEST))  # no sideways scroll
            s.shot(f"{name}-{label}")
            assert s.problems == [], s.problems
        finally:
            s.close()
    ARTIFACTS.mkdir(exist_ok=True)
    ctx = browser.new_context(viewport={"width": PHONE[0], "height": PHONE[1]})
    try:
        pg = ctx.new_page()
        pg.goto(f"{base_of(engine)}/login?next={path}")
        pg.screenshot(path=str(ARTIFACTS / "work-login-phone.png"))
    finally:
        ctx.close()
