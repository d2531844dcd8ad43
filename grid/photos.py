"""Accepting a photo as evidence (pure: bytes in, a clean image and its evidence out).

A photo is accepted only when it decodes as a JPEG, PNG or WebP image within the size and
pixel limits. It is re-encoded from its pixels (orientation applied), so nothing of the
upload's metadata survives but what is kept on purpose: the EXIF time it was taken and its
GPS location, as evidence fields. An upload whose EXIF text holds markup (a script) is
refused rather than cleaned: it was made to attack, not to document.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"),
           "WEBP": ("image/webp", "webp")}
MARKUP = re.compile(r"<\s*/?\s*[a-zA-Z!]|javascript\s*:|on[a-z]+\s*=", re.IGNORECASE)
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATETIME_ORIGINAL, DATETIME = 0x9003, 0x0132


class PhotoRejected(ValueError):
    """Why an upload is not accepted: ``reason`` (a code) and a message that says what to send."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Photo:
    """An accepted photo: the re-encoded bytes and the evidence kept from the upload."""

    data: bytes
    sha256: str
    media_type: str
    extension: str
    width: int
    height: int
    taken_at: str | None  # EXIF DateTimeOriginal as written by the camera (local time)
    location: tuple[float, float] | None  # EXIF GPS (lon, lat), WGS-84

    @property
    def name(self) -> str:
        return f"{self.sha256}.{self.extension}"

    def evidence(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "media_type": self.media_type, "width": self.width,
                "height": self.height, "taken_at": self.taken_at,
                "location": list(self.location) if self.location else None}


def accept(raw: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> Photo:
    """The photo in ``raw``, or :class:`PhotoRejected` saying why not."""
    if not raw:
        raise PhotoRejected("empty", "the upload is empty: send the image's bytes")
    if len(raw) > max_bytes:
        raise PhotoRejected("too_large", f"the photo has {len(raw) / 1048576:.1f} MB; at most "
                            f"{max_bytes / 1048576:.0f} MB is accepted (resize it, or lower "
                            f"its quality)")
    try:
        with warnings.catch_warnings():  # the pixel limit below says it in words
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(raw))
        with probe:
            fmt = probe.format
            w, h = probe.size
            if fmt not in FORMATS:
                raise PhotoRejected("not_an_image", f"a {fmt} image is not accepted: send a "
                                    f"JPEG, PNG or WebP photo")
            if w * h > max_pixels:
                raise PhotoRejected("too_many_pixels", f"the photo has {w}×{h} pixels; at most "
                                    f"{max_pixels // 1_000_000} megapixels are accepted")
            probe.verify()
        with Image.open(io.BytesIO(raw)) as img:
            exif = img.getexif()
            _refuse_markup(exif, img.info)
            taken_at, location = _evidence(exif)
            upright: Image.Image = ImageOps.exif_transpose(img)  # as the camera was held
            out = _encode(upright, fmt)
    except PhotoRejected:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as err:
        raise PhotoRejected("not_an_image", f"the upload is not a readable image ({err}): "
                            f"send a JPEG, PNG or WebP photo") from None
    media_type, ext = FORMATS[fmt]
    return Photo(out, hashlib.sha256(out).hexdigest(), media_type, ext, upright.width,
                 upright.height, taken_at, location)


def _encode(img: Image.Image, fmt: str) -> bytes:
    """The pixels only, in the upload's format (no EXIF, XMP, ICC text or PNG text)."""
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(buf, "JPEG", quality=90, optimize=True)
    elif fmt == "PNG":
        img.save(buf, "PNG", optimize=True)
    else:
        img.save(buf, "WEBP", quality=90)
    return buf.getvalue()


def _texts(exif: Image.Exif, info: Mapping[Any, Any]) -> list[tuple[str, str]]:
    out = [(f"EXIF tag {tag:#06x}", v) for tag, v in exif.items() if isinstance(v, str | bytes)]
    for ifd in (EXIF_IFD, GPS_IFD):
        with_ifd = exif.get_ifd(ifd)
        out += [(f"EXIF tag {tag:#06x}", v) for tag, v in with_ifd.items()
                if isinstance(v, str | bytes)]
    out += [(f"metadata {k!r}", v) for k, v in info.items() if isinstance(v, str | bytes)
            and k not in ("exif", "icc_profile")]
    return [(where, v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
            for where, v in out]


def _refuse_markup(exif: Image.Exif, info: Mapping[Any, Any]) -> None:
    for where, text in _texts(exif, info):
        if MARKUP.search(text):
            raise PhotoRejected("markup_in_metadata", f"the photo's {where} holds markup "
                                f"({text[:40]!r}): it is refused; send the camera's original")


def _evidence(exif: Image.Exif) -> tuple[str | None, tuple[float, float] | None]:
    sub = exif.get_ifd(EXIF_IFD)
    taken = sub.get(DATETIME_ORIGINAL) or exif.get(DATETIME)
    taken_at = None
    if isinstance(taken, str):
        try:
            taken_at = datetime.strptime(taken.strip(), "%Y:%m:%d %H:%M:%S").isoformat()
        except ValueError:
            taken_at = None
    gps = exif.get_ifd(GPS_IFD)
    location = None
    try:
        lat = _degrees(gps[2], gps.get(1, "N"), "S")
        lon = _degrees(gps[4], gps.get(3, "E"), "W")
        if -90 <= lat <= 90 and -180 <= lon <= 180:
            location = (round(lon, 7), round(lat, 7))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        location = None
    return taken_at, location


def _degrees(dms: Any, ref: Any, negative: str) -> float:
    d, m, s = (float(x) for x in dms)
    value = d + m / 60 + s / 3600
    return -value if str(ref).upper().startswith(negative) else value
