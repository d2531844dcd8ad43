"""Photos (``/api/v1/photos``): the routes of :class:`streams.photos.PhotoRoutes` (decoding,
re-encoding, content-addressed files, who may see one), declared here with the others."""

from __future__ import annotations

from aiohttp import web

from streams.photos import NAME
from streams.web.common import API, Api, Param, Route


async def upload_photo(api: Api, request: web.Request) -> web.StreamResponse:
    """Upload a photo; 201 with its URL for reports and actions.

    The image as the body (Content-Type: image/…) or a multipart field ``photo``; any
    signed-in role but viewers. Decoded (JPEG, PNG, WebP; at most GRID_PHOTO_MAX_BYTES, 10 MB,
    and 40 megapixels) and stored re-encoded without metadata under its content address; the
    same photo again is the same URL. Nothing is stored for a refused upload."""
    return await api.photos.upload(request)


async def get_photo(api: Api, request: web.Request) -> web.StreamResponse:
    """A photo, to its uploader or a user who may read a case that names it."""
    return await api.photos.get(request)


_IMAGE = {"schema": {"type": "string", "format": "binary"}}
ROUTES = [
    Route("POST", f"{API}/photos", upload_photo, {
        201: "stored: {url, sha256, media_type, width, height, taken_at, location} (+ Location)",
        401: "not signed in", 403: "a viewer, or a cross-site post signed in by the cookie",
        413: "larger than the limit", 422: "not a JPEG, PNG or WebP photo, too many pixels, "
        "markup in its metadata, or a form without a field 'photo' (reason says which)"},
          body_content={"image/jpeg": _IMAGE, "image/png": _IMAGE, "image/webp": _IMAGE,
                        "multipart/form-data": {"schema": {
                            "type": "object", "required": ["photo"],
                            "properties": {"photo": {"type": "string", "format": "binary"}}}}},
          tag="photos"),
    Route("GET", f"{API}/photos/{{name}}", get_photo, {
        200: "the photo (image/jpeg, image/png or image/webp; Cache-Control: private)",
        401: "not signed in", 403: "no case you may read names it",
        404: "no such photo"},
          params=(Param("name", "the photo's file name: <sha256>.<jpg|png|webp>",
                        {"type": "string", "pattern": NAME.pattern}, where="path",
                        required=True),),
          tag="photos"),
]
