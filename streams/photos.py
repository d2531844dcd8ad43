"""Photo uploads on the worker's web server: content-addressed files, served to signed-in users.

* ``POST /api/v1/photos`` — the image's bytes as the body (``Content-Type: image/…``) or a
  multipart form field ``photo``; any signed-in role that reports or acts. The photo is checked
  by decoding it (:func:`grid.photos.accept`) and stored re-encoded as
  ``<GRID_PHOTO_DIR>/<sha[:2]>/<sha256>.<ext>`` with its evidence (EXIF time and place) beside
  it. ``201 {url, sha256, media_type, width, height, taken_at, location}``; the same photo
  again is the same URL. ``413`` over ``GRID_PHOTO_MAX_BYTES`` (10 MB), ``422`` for anything
  that is not a JPEG, PNG or WebP photo, or whose metadata holds markup. Nothing is stored for
  a refused upload.
* ``GET /api/v1/photos/{sha256}.{ext}`` — the photo, to a signed-in user (bearer token or the
  sign-in cookie) who may see a case that refers to it (:func:`grid.auth.check_read`: the
  read store's reports and events that name the photo), or who uploaded it; 403 otherwise.
  ``Cache-Control: private``.

Reports and commands refer to photos by these URLs, as they refer to any photo URL.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from grid import auth
from grid.photos import FORMATS, MAX_BYTES, Photo, PhotoRejected, accept
from streams.signin import CrossSite, principal_of

API = "/api/v1"
NAME = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp)$")
MEDIA = {ext: media for media, ext in FORMATS.values()}


class PhotoStore:
    """Content-addressed photo files under ``root``; writes are atomic (rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name[:2] / name

    def put(self, photo: Photo, uploaded_by: str) -> Path:
        target = self.path(photo.name)
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        for path, data in ((target.with_suffix(".json"), orjson.dumps(
                {**photo.evidence(), "uploaded_by": uploaded_by})), (target, photo.data)):
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return target


class PhotoRoutes:
    """The two handlers; ``registry`` is the API's tokens."""

    def __init__(self, store: PhotoStore, registry: auth.TokenRegistry,
                 max_bytes: int = MAX_BYTES, may_see: Any = None) -> None:
        """``may_see(principal, name) -> str | None``: why the principal may not see photo
        ``name`` (None: it may); without it, any signed-in user may."""
        self.store = store
        self.registry = registry
        self.max_bytes = max_bytes
        self.may_see = may_see

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("POST", f"{API}/photos", self.upload),
                ("GET", f"{API}/photos/{{name}}", self.get)]

    def _who(self, request: web.Request) -> auth.Principal:
        try:
            p = principal_of(request, self.registry)
        except CrossSite as err:
            raise _error(403, str(err), "cross_site") from None
        if p is None:
            raise _error(401, "sign in first: Authorization: Bearer <token> or POST /login")
        return p

    async def _read(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self.max_bytes + 4096:
            raise _error(413, f"the upload has {request.content_length / 1048576:.1f} MB; at "
                         f"most {self.max_bytes / 1048576:.0f} MB is accepted", "too_large")
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if getattr(part, "name", None) == "photo":
                    return await self._limited(part.read_chunk)
            raise _error(422, "the form has no file field 'photo'", "no_photo")
        return await self._limited(lambda: request.content.read(65536))

    async def _limited(self, read: Any) -> bytes:
        """Read chunks until the end, refusing (413) past ``max_bytes``."""
        chunks, size = [], 0
        while chunk := await read():
            size += len(chunk)
            if size > self.max_bytes:
                raise _error(413, f"the upload is larger than "
                             f"{self.max_bytes / 1048576:.0f} MB: at most "
                             f"{self.max_bytes / 1048576:.0f} MB is accepted", "too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    def uploader(self, name: str) -> str | None:
        """Who uploaded photo ``name`` (its evidence file), None when unknown."""
        try:
            return orjson.loads(self.store.path(name).with_suffix(".json").read_bytes()).get(
                "uploaded_by")
        except (OSError, orjson.JSONDecodeError, AttributeError):
            return None

    async def upload(self, request: web.Request) -> web.Response:
        try:
            return await self._upload(request)
        except _Refused as r:
            return r.response

    async def get(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._get(request)
        except _Refused as r:
            return r.response

    async def _upload(self, request: web.Request) -> web.Response:
        p = self._who(request)
        if p.role == "viewer":
            raise _error(403, "viewers do not upload photos")
        raw = await self._read(request)
        try:
            photo = accept(raw, self.max_bytes)
        except PhotoRejected as err:
            raise _error(413 if err.reason == "too_large" else 422, str(err),
                         err.reason) from None
        self.store.put(photo, p.name)
        url = f"{API}/photos/{photo.name}"
        return web.Response(body=orjson.dumps({"url": url, **photo.evidence()}) + b"\n",
                            status=201, content_type="application/json",
                            headers={"Location": url})

    async def _get(self, request: web.Request) -> web.StreamResponse:
        p = self._who(request)
        name = request.match_info["name"]
        path = self.store.path(name) if NAME.match(name) else None
        if path is None or not path.exists():
            raise _error(404, f"no photo {name!r}")
        if self.may_see is not None and self.uploader(name) != p.name:
            why = await asyncio.to_thread(self.may_see, p, name)
            if why is not None:
                raise _error(403, why, "not_your_case")
        return web.FileResponse(path, headers={
            "Content-Type": MEDIA[name.rsplit(".", 1)[1]],
            "Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"})


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _error(status: int, message: str, reason: str | None = None) -> _Refused:
    """A refusal with a JSON body that says what to fix (``{error, reason}``)."""
    body = {"error": message} | ({"reason": reason} if reason else {})
    return _Refused(web.Response(body=orjson.dumps(body) + b"\n", status=status,
                                 content_type="application/json"))


def photo_routes(grid_app: Any, registry: auth.TokenRegistry) -> PhotoRoutes:
    """The photo handlers of ``grid_app`` (its settings' ``photo_root``: where the files go,
    default ``<data dir>/photos``; ``photo_max_bytes``); :mod:`streams.web` registers them."""
    s = grid_app.settings
    rs = getattr(grid_app, "read_store", None)
    return PhotoRoutes(PhotoStore(s.photo_root), registry, s.photo_max_bytes,
                       may_see=(lambda p, name: photo_refused(rs, p, name)) if rs else None)


def install_photos(grid_app: Any, registry: auth.TokenRegistry) -> PhotoRoutes:
    """Register the photo routes alone on ``grid_app``'s web server (the API's
    :func:`streams.web.install` registers them with the others)."""
    routes = photo_routes(grid_app, registry)
    web_app = grid_app.app.web.web_app
    for method, path, handler in routes.routes():
        web_app.router.add_route(method, path, handler)
    return routes


def photo_refused(read_store: Any, p: auth.Principal, name: str) -> str | None:
    """Why ``p`` may not see photo ``name``: no case in the read store refers to it, or none
    of those it may read (:func:`grid.auth.check_read`); None when it may."""
    from store.work import cases_with_photo

    found = cases_with_photo(read_store, f"{API}/photos/{name}")
    if not found:
        return f"photo {name} belongs to no case you may see"
    why = ""
    for place, department, reporters, holders in found:
        try:
            auth.check_read(p, place, department, reporters, holders)
            return None
        except auth.Forbidden as err:
            why = str(err)
    return f"photo {name} belongs to a case you may not see: {why}"
