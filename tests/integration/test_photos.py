"""Photo uploads through a real worker: stored content-addressed without metadata, served
only to signed-in users; a non-image, a 20 MB image and markup in EXIF are refused with a
message and leave nothing behind."""

from __future__ import annotations

import io
import os
import uuid

import httpx
import pytest
from PIL import Image

from tests.integration.conftest import WorkerProc, wait_http
from tests.unit.test_photos import camera_exif, jpeg

pytestmark = pytest.mark.integration
SUP = {"Authorization": "Bearer demo-supervisor"}


@pytest.fixture(scope="module")
def worker(broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("photos")
    w = WorkerProc(broker.url, tmp, f"grid-photo-{uuid.uuid4().hex[:6]}",
                   GRID_PHOTO_DIR=str(tmp / "photos")).start()
    try:
        wait_http(f"http://127.0.0.1:{w.web_port}/api/v1/health", timeout=120, proc=w.proc,
                  log=w.log_tail)
        yield w, tmp / "photos"
    finally:
        w.stop()


def stored(root) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_photo_is_stored_clean_and_served_to_signed_in_users(worker):
    w, root = worker
    base = f"http://127.0.0.1:{w.web_port}"
    raw = jpeg(camera_exif())
    r = httpx.post(f"{base}/api/v1/photos", content=raw, timeout=10,
                   headers={**SUP, "Content-Type": "image/jpeg"})
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["url"] == f"/api/v1/photos/{got['sha256']}.jpg" == r.headers["Location"]
    assert (got["taken_at"], got["location"]) == ("2026-11-23T10:15:00", [121.51, 31.27])
    assert f"{got['sha256']}.jpg" in stored(root) and f"{got['sha256']}.json" in stored(root)
    served = httpx.get(base + got["url"], headers=SUP, timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/jpeg"
    assert dict(Image.open(io.BytesIO(served.content)).getexif()) == {}
    assert b"Huawei" not in served.content
    anonymous = httpx.get(base + got["url"], timeout=10)
    assert anonymous.status_code == 401 and "sign in" in anonymous.json()["error"]
    # the same photo as a form upload: the same content address
    form = httpx.post(f"{base}/api/v1/photos", headers=SUP, timeout=10,
                      files={"photo": ("p.jpg", raw, "image/jpeg")})
    assert form.status_code == 201 and form.json()["url"] == got["url"]
    missing = httpx.get(f"{base}/api/v1/photos/{'0' * 64}.jpg", headers=SUP, timeout=10)
    assert missing.status_code == 404 and "no photo" in missing.json()["error"]


@pytest.mark.parametrize("name,body,status,reason,says", [
    ("not an image", b"%PDF-1.4 a document", 422, "not_an_image", "JPEG, PNG or WebP"),
    ("20 MB", None, 413, "too_large", "at most 10 MB"),
    ("script in EXIF", "markup", 422, "markup_in_metadata", "holds markup"),
])
def test_refused_uploads_say_why_and_store_nothing(worker, name, body, status, reason, says):
    w, root = worker
    before = stored(root)
    if body is None:
        img = Image.frombytes("RGB", (2650, 2650), os.urandom(2650 * 2650 * 3))
        buf = io.BytesIO()
        img.save(buf, "PNG", compress_level=0)
        body = buf.getvalue()
    elif body == "markup":
        exif = camera_exif()
        exif[0x010E] = "<script>alert(document.cookie)</script>"
        body = jpeg(exif)
    r = httpx.post(f"http://127.0.0.1:{w.web_port}/api/v1/photos", content=body, timeout=30,
                   headers={**SUP, "Content-Type": "application/octet-stream"})
    assert r.status_code == status, (name, r.text)
    assert r.json()["reason"] == reason and says in r.json()["error"], name
    assert stored(root) == before, name
