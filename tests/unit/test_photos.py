"""Photos as evidence (grid.photos): decoded, re-encoded without metadata, evidence kept."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image, PngImagePlugin

from grid.photos import MAX_BYTES, PhotoRejected, accept


def jpeg(exif: Image.Exif | None = None, size=(64, 48), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", exif=exif or Image.Exif())
    return buf.getvalue()


def camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Huawei"  # Make
    exif[0x0110] = "P60 supervisor phone"  # Model: not kept
    exif.get_ifd(0x8769)[0x9003] = "2026:11:23 10:15:00"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (31.0, 16.0, 12.0)  # 31°16'12" N
    gps[3], gps[4] = "E", (121.0, 30.0, 36.0)  # 121°30'36" E
    return exif


def test_a_camera_jpeg_is_kept_as_pixels_with_its_time_and_place():
    p = accept(jpeg(camera_exif()))
    assert (p.media_type, p.extension, p.width, p.height) == ("image/jpeg", "jpg", 64, 48)
    assert p.taken_at == "2026-11-23T10:15:00"
    assert p.location == (121.51, 31.27)
    again = Image.open(io.BytesIO(p.data))
    assert dict(again.getexif()) == {}  # nothing of the upload's metadata survives
    assert b"Huawei" not in p.data and b"P60" not in p.data
    assert p.name == f"{p.sha256}.jpg" and len(p.sha256) == 64
    assert accept(p.data).sha256 != "" and accept(jpeg(camera_exif())).sha256 == p.sha256


def test_orientation_is_applied_to_the_pixels():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° CW to display
    p = accept(jpeg(exif, size=(64, 48)))
    assert (p.width, p.height) == (48, 64)


def test_a_png_keeps_no_text_chunks():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "taken on patrol")
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "PNG", pnginfo=info)
    p = accept(buf.getvalue())
    assert p.media_type == "image/png" and b"taken on patrol" not in p.data
    assert (p.taken_at, p.location) == (None, None)


def test_not_an_image_is_refused_saying_what_to_send():
    with pytest.raises(PhotoRejected, match=r"not a readable image.*JPEG, PNG or WebP") as e:
        accept(b"%PDF-1.4 this is a document, not a photo")
    assert e.value.reason == "not_an_image"
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "GIF")
    with pytest.raises(PhotoRejected, match="a GIF image is not accepted"):
        accept(buf.getvalue())
    with pytest.raises(PhotoRejected, match="empty"):
        accept(b"")


def test_a_20_mb_image_is_refused_before_decoding():
    raw = Image.frombytes("RGB", (2650, 2650), os.urandom(2650 * 2650 * 3))
    buf = io.BytesIO()
    raw.save(buf, "PNG", compress_level=0)
    assert buf.tell() > 20 * 1024 * 1024 > MAX_BYTES
    with pytest.raises(PhotoRejected, match=r"has 20\.\d MB; at most 10 MB is accepted") as e:
        accept(buf.getvalue())
    assert e.value.reason == "too_large"


def test_a_decompression_bomb_is_refused():
    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, "PNG")  # tiny file, 100 megapixels
    assert buf.tell() < 100_000
    with pytest.raises(PhotoRejected, match="10000×10000 pixels; at most 40 megapixels") as e:
        accept(buf.getvalue())
    assert e.value.reason == "too_many_pixels"


@pytest.mark.parametrize("text", ["<script>alert(1)</script>", "x\" onerror=alert(1) y",
                                  "javascript:alert(1)", "<img src=x>"])
def test_markup_in_exif_is_refused_not_cleaned(text):
    exif = camera_exif()
    exif[0x010E] = text  # ImageDescription
    with pytest.raises(PhotoRejected, match="EXIF tag 0x010e holds markup") as e:
        accept(jpeg(exif))
    assert e.value.reason == "markup_in_metadata"
