"""Intake: raw bytes from Kafka/HTTP -> :class:`~grid.models.Report` or :class:`Rejection`;
a rejection goes to the DLQ as a :class:`DeadLetter` (:func:`dead_letter`).

:func:`parse_report` never raises on bad input. Every rejection carries a machine-readable
``reason``, a message saying what to fix, one error per bad field (``location.lat``,
``photos[3]``) and, when it could be read, the ``report_id`` — ready for the DLQ.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grid.models import REPORT_SCHEMA, Report

REJECTION_SCHEMA: Final = "grid.rejection/1"
DLQ_SCHEMA = "grid.dlq/1"
MAX_BYTES = 64 * 1024
EXCERPT_CHARS = 200
OLDEST = datetime(2000, 1, 1, tzinfo=UTC)  # earlier reported_at values are typos or epochs
_MAX_MESSAGE_ERRORS = 5

Reason = Literal["too_large", "invalid_utf8", "invalid_json", "not_an_object",
                 "schema_version", "validation"]


class FieldError(BaseModel):
    """One bad field: its path in the report and what is wrong with it."""

    model_config = ConfigDict(frozen=True)

    field: str
    message: str


class Rejection(BaseModel):
    """Why a raw report was not accepted (the body of a DLQ message)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: Literal["grid.rejection/1"] = Field(REJECTION_SCHEMA, alias="schema")
    reason: Reason
    message: str
    errors: list[FieldError] = Field(default_factory=list)
    report_id: str | None = None
    raw_excerpt: str = ""


def parse_report(
    raw: bytes | bytearray | memoryview | str | dict[str, Any],
    *,
    taxonomy: Any = None,
    now: datetime | None = None,
    max_bytes: int = MAX_BYTES,
) -> Report | Rejection:
    """Parse and validate one report. ``taxonomy`` (anything with a ``.types`` mapping)
    enables the unknown-type check, ``now`` (aware) the too-far-in-the-future check."""
    if now is not None and (now.tzinfo is None or now.utcoffset() is None):
        raise ValueError("parse_report: `now` must be timezone-aware")  # caller bug, not input
    try:
        data = _load(raw, max_bytes)
        if isinstance(data, Rejection):
            return data
        return _validate(data, _excerpt(raw), taxonomy, now)
    except Exception as err:  # the contract: never raise on input
        return Rejection(reason="validation", message=f"could not validate the report "
                         f"({type(err).__name__}: {err})"[:500], raw_excerpt=_excerpt(raw))


def report_id_of(raw: bytes | None) -> str | None:
    """The report id of raw input when it is a JSON object with one (else None, also for a
    record without a value): what a DLQ entry carries when the engine fails on input it
    could not even parse."""
    try:
        v = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None
    rid = v.get("report_id") if isinstance(v, dict) else None
    return rid if isinstance(rid, str) else None


# --- stage 1: bytes -> JSON object ---------------------------------------------------------

def _load(raw: Any, max_bytes: int) -> dict[str, Any] | Rejection:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        if len(raw) > max_bytes:  # a character is at least one byte: too large already
            return _too_large(raw, len(raw), max_bytes, "characters")
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError as err:
            return _reject("invalid_utf8", raw, f"the text is not valid UTF-8 "
                           f"(character {err.start}: lone surrogate); send UTF-8 JSON")
    if isinstance(raw, bytearray | memoryview):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        return _reject("not_an_object", raw, f"expected JSON bytes, text or a dict, got "
                       f"{type(raw).__name__}")
    if len(raw) > max_bytes:
        return _too_large(raw, len(raw), max_bytes, "bytes")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # tolerate a UTF-8 byte order mark
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        return _json_error(raw, err)
    if not isinstance(data, dict):
        return _reject("not_an_object", raw, f"expected a JSON object {{...}} with the report "
                       f"fields, got {_json_type(data)}")
    return data


def _json_error(raw: bytes, err: orjson.JSONDecodeError) -> Rejection:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return _reject("invalid_utf8", raw, f"the message is not valid UTF-8 (byte "
                       f"{bad.start}: {raw[bad.start:bad.start + 1]!r}); send UTF-8 JSON")
    pos = err.pos
    at = f"line {err.lineno} column {err.colno}"
    ahead = text[pos:pos + 12].lstrip("-+")
    if re.match(r"(NaN|Infinity|inf)\b", ahead, re.IGNORECASE):
        msg = (f"{at}: NaN and Infinity are not JSON numbers and never valid coordinates; "
               "send finite numbers")
    elif "infinity when parsed" in err.msg or "out of range" in err.msg:
        msg = (f"{at}: the number {_number_at(text, pos)} is too large (it would be infinite); "
               "send finite numbers")
    elif pos >= len(text.rstrip()) or "end of data" in err.msg:
        msg = f"{at}: the JSON ends too early (truncated message?)"
    else:
        msg = f"{at}: {err.msg}"
    return _reject("invalid_json", text, f"invalid JSON at {msg}")


def _number_at(text: str, pos: int) -> str:
    m = re.match(r"-?[0-9.eE+-]{1,40}", text[pos:])
    return m.group(0) if m else "here"


# --- stage 2: JSON object -> Report ----------------------------------------------------------

def _validate(data: dict[str, Any], excerpt: str, taxonomy: Any,
              now: datetime | None) -> Report | Rejection:
    rid = data.get("report_id")
    report_id = rid[:64] if isinstance(rid, str) and rid else None
    schema = data.get("schema", REPORT_SCHEMA)
    if schema != REPORT_SCHEMA:
        return Rejection(
            reason="schema_version", report_id=report_id, raw_excerpt=excerpt,
            message=f"unsupported schema {_short(schema)}; this engine reads {REPORT_SCHEMA!r}",
            errors=[FieldError(field="schema", message=f"must be {REPORT_SCHEMA!r}")])
    try:
        report = Report.model_validate(data, context={"taxonomy": taxonomy, "now": now})
    except ValidationError as err:
        errors = [_field_error(e) for e in err.errors(include_url=False)]
        shown = "; ".join(f"{e.field}: {e.message}" for e in errors[:_MAX_MESSAGE_ERRORS])
        more = len(errors) - _MAX_MESSAGE_ERRORS
        n = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        return Rejection(reason="validation", report_id=report_id, raw_excerpt=excerpt,
                         errors=errors,
                         message=f"invalid report ({n}): {shown}"
                                 + (f"; and {more} more" if more > 0 else ""))
    if report.reported_at < OLDEST:
        problem = FieldError(field="reported_at", message=f"is before {OLDEST:%Y-%m-%d}; send "
                             "the time the problem was observed, with its UTC offset")
        return Rejection(reason="validation", report_id=report_id, raw_excerpt=excerpt,
                         errors=[problem], message=f"invalid report (1 problem): "
                         f"{problem.field}: {problem.message}")
    return report


_FRIENDLY = {
    "missing": "is required",
    "extra_forbidden": f"is not a field of {REPORT_SCHEMA}; remove it (check the spelling)",
    "timezone_aware": "needs a UTC offset, e.g. 2026-05-01T09:30:00+08:00",
    "datetime_from_date_parsing": "is not an RFC 3339 time, e.g. 2026-05-01T09:30:00+08:00",
    "datetime_parsing": "is not an RFC 3339 time, e.g. 2026-05-01T09:30:00+08:00",
    "datetime_type": "must be an RFC 3339 time string, e.g. 2026-05-01T09:30:00+08:00",
    "uuid_parsing": "is not a UUID, e.g. 3f2b6c1e-8a4d-4e2b-9c1a-5d6e7f8a9b0c",
    "uuid_type": "must be a UUID string",
    "finite_number": "must be a finite number (NaN and infinity are not coordinates)",
}
_FIELDS = ("type_code", "description", "source", "reported_at", "location")


def _field_error(e: Any) -> FieldError:
    loc = e.get("loc", ())
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    kind, ctx = e.get("type", ""), e.get("ctx") or {}
    msg = _FRIENDLY.get(kind, e.get("msg", "is invalid"))
    if kind == "too_long" and "max_length" in ctx:
        msg = f"at most {ctx['max_length']} items allowed, got {ctx.get('actual_length', 'more')}"
    elif kind == "string_too_long" and isinstance(e.get("input"), str):
        msg = f"at most {ctx.get('max_length')} characters allowed, got {len(e['input'])}"
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if not path:  # a whole-report rule: name the field it is about
        path = next((f for f in _FIELDS if msg.startswith(("give a " + f, f))), "report")
    return FieldError(field=path, message=msg)


# --- helpers -----------------------------------------------------------------------------

def _too_large(raw: Any, size: int, limit: int, unit: str) -> Rejection:
    return _reject("too_large", raw, f"the message has {size} {unit}, more than the "
                   f"{limit} bytes a report may have; send photos as URLs, not inline")


def _reject(reason: Reason, raw: Any, message: str) -> Rejection:
    return Rejection(reason=reason, message=message, raw_excerpt=_excerpt(raw))


def _excerpt(raw: Any) -> str:
    try:
        if isinstance(raw, bytes | bytearray | memoryview):
            return bytes(raw[:EXCERPT_CHARS * 4]).decode("utf-8", "replace")[:EXCERPT_CHARS]
        if isinstance(raw, str):
            return raw[:EXCERPT_CHARS].encode("utf-8", "replace").decode("utf-8")
        if isinstance(raw, dict):
            return orjson.dumps(raw, default=repr, option=orjson.OPT_NON_STR_KEYS)[
                :EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]
        return repr(raw)[:EXCERPT_CHARS]
    except Exception:  # an excerpt is best effort
        return ""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


class DeadLetter(BaseModel):
    """A rejected input on grid.reports.dlq.v1: reason, message, errors and the original bytes."""

    model_config = ConfigDict(populate_by_name=True)

    schema_: str = Field(DLQ_SCHEMA, alias="schema")
    reason: str
    message: str
    errors: list[dict[str, Any]] = Field(default_factory=list)
    report_id: str | None = None
    received_at: datetime
    original_b64: str  # the original bytes (the first ORIGINAL_KEPT of them), base64
    original_excerpt: str = ""
    original_size: int = 0  # bytes in the original record's value
    original_sha256: str = ""  # of the whole original value
    original_truncated: bool = False  # original_b64 holds only its first ORIGINAL_KEPT bytes


# A DLQ entry must fit the broker's record limit (Apache Kafka: 1 MiB by default), whatever
# the input's size: base64 of 256 KiB is ~342 KiB.
ORIGINAL_KEPT = 256 * 1024


def dead_letter(raw: bytes | None, reason: str, message: str, now: datetime,
                errors: Sequence[dict[str, Any]] = (), report_id: str | None = None) -> DeadLetter:
    """A DLQ entry for ``raw`` (``None``: a record without a value), small enough for any
    broker: the original is kept whole up to ``ORIGINAL_KEPT`` bytes, with its size and hash."""
    raw = raw or b""
    return DeadLetter(
        reason=reason, message=message, errors=list(errors), report_id=report_id,
        received_at=now, original_b64=base64.b64encode(raw[:ORIGINAL_KEPT]).decode(),
        original_excerpt=raw[:200].decode("utf-8", "replace"),
        original_size=len(raw), original_sha256=hashlib.sha256(raw).hexdigest(),
        original_truncated=len(raw) > ORIGINAL_KEPT,
    )
