"""The screenshots in docs/dashboard.md, taken from a running ``grid up --demo``.

    ./dev up                                   # or: .venv/bin/grid up --demo
    # after a few minutes of the demo feed (x60 clock: a few engine hours):
    .venv/bin/python scripts/dashboard_screenshots.py --port 6066

Headless Chromium (Debian's ``chromium``) through Playwright, signed in as Yangpu's command
center; CJK labels need a font (``apt-get install fonts-wqy-microhei``). Writes
docs/dashboard-1280.png (the page at 1280 × 800 with a case open from its ``#case=`` link),
docs/dashboard-1920-streets.png (a 1920 × 1080 wall screen, street map) and
docs/dashboard-drilldown.png (a street's open cases, opened from the map).

With ``--levels`` (issue 22; run on ``grid up --geodata <city> --demo``): signed in as the
city (``demo-city``), docs/dashboard-level-city.png (the districts), -district.png (the
district with most open cases: its streets) and -street.png (its street with most open
cases: communities and cells), at 1600 × 1000.
"""

from __future__ import annotations

import argparse
import json
import shutil
import urllib.request
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def busiest(base: str) -> tuple[str, str]:
    """An urgent open case and the street with the most open cases."""
    req = urllib.request.Request(f"{base}/dashboard/api/summary.json",
                                 headers={"Authorization": "Bearer demo-command-center"})
    with urllib.request.urlopen(req, timeout=10) as r:
        s = json.load(r)
    case = next((m["case_id"] for m in s["markers"] if m["priority"] == "urgent"),
                s["markers"][0]["case_id"] if s["markers"] else "")
    street = max(s["street_open"], key=lambda k: s["street_open"][k]["open"])
    return case, street


def _summary(base: str, query: str = "") -> dict:
    req = urllib.request.Request(f"{base}/dashboard/api/summary.json{query}",
                                 headers={"Authorization": "Bearer demo-city"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def levels(base: str, out: Path) -> None:
    """The city, its busiest district, that district's busiest street."""
    from playwright.sync_api import sync_playwright

    city = _summary(base)
    district = max(city["district_open"], key=lambda k: city["district_open"][k]["open"])
    d = _summary(base, f"?district={district}")
    street = max(d["street_open"], key=lambda k: d["street_open"][k]["open"])
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                              args=ARGS, headless=True)
        ctx = b.new_context(viewport={"width": 1600, "height": 1000})
        pg = ctx.new_page()
        pg.goto(f"{base}/login")
        pg.fill("#token", "demo-city")
        pg.click("button[type=submit]")
        pg.wait_for_url(f"{base}/")
        for name, path in (("city", "/"), ("district", f"/?district={district}"),
                           ("street", f"/?district={district}&street={street}")):
            pg.goto(base + path)
            pg.wait_for_selector("#map-msg", state="hidden", timeout=60_000)
            pg.wait_for_timeout(2500)
            pg.screenshot(path=str(out / f"dashboard-level-{name}.png"))
            print(out / f"dashboard-level-{name}.png")
        b.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=6066)
    ap.add_argument("--out", type=Path, default=DOCS)
    ap.add_argument("--levels", action="store_true",
                    help="the city, district and street levels (signed in as demo-city)")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{a.port}"
    if a.levels:
        levels(base, a.out)
        return
    case, street = busiest(base)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                              args=ARGS, headless=True)
        for name, (w, h), hash_, view in (
                ("dashboard-1280.png", (1280, 800), f"case={case}", None),
                ("dashboard-1920-streets.png", (1920, 1080), "", "#view-streets"),
                ("dashboard-drilldown.png", (1280, 800), f"street={street}", "#view-overdue")):
            ctx = b.new_context(viewport={"width": w, "height": h})
            pg = ctx.new_page()
            pg.goto(f"{base}/login")
            pg.fill("#token", "demo-command-center")
            pg.click("button[type=submit]")
            pg.wait_for_url(f"{base}/")
            pg.wait_for_selector("#map-msg", state="hidden", timeout=20_000)
            if view:
                pg.click(view)
            if hash_:
                pg.evaluate(f"location.hash = {json.dumps(hash_)}")
                pg.wait_for_selector("#d-body .kv, #case-list", timeout=10_000)
            pg.wait_for_timeout(1500)
            pg.screenshot(path=str(a.out / name))
            print(a.out / name)
            ctx.close()
        b.close()


if __name__ == "__main__":
    main()
