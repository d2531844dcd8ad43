"""Open311 GeoReport v2 mapping: services, request → report, case → request status, XML;
and the OpenAPI document in docs/api/ is the one the code serves."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from grid.intake import parse_report
from grid.lifecycle import apply, open_case
from grid.models import Action, Command, Decision, Placement, Report
from grid.open311 import (
    RequestError,
    errors_xml,
    iso,
    param_of,
    report_from_request,
    request_status,
    services,
    to_xml,
)
from grid.taxonomy import load_taxonomy

NOW = datetime(2026, 5, 1, 1, 30, tzinfo=UTC)
PLACE = Placement(lon=121.526, lat=31.259, crs="wgs84", district="310110", street="310110012",
                  cell="310110012006016", patrol_area="310110012-P14")


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


def test_services_one_per_type(taxonomy):
    rows = services(taxonomy)
    assert len(rows) == 132 == len({r["service_code"] for r in rows})
    assert len({r["group"] for r in rows}) == 12  # the GB/T 30428.2 classes
    by_code = {r["service_code"]: r["group"] for r in rows}
    assert by_code["0101"] == "部件·公用设施" and by_code["0602"] == "事件·市容环境"
    assert by_code["0914"] == "事件·街面秩序" and by_code["0599"] == "部件·其他设施"
    m = next(r for r in rows if r["service_code"] == "0101")
    assert m == {**m, "metadata": False, "type": "realtime", "service_name": "井盖缺失/损坏"}
    assert "manhole" in m["keywords"].split(",") and "井盖" in m["keywords"].split(",")
    en = next(r for r in services(taxonomy, "en") if r["service_code"] == "0101")
    assert en["service_name"] == "Manhole cover missing or damaged"
    assert en["group"] == "Components · Public facilities"


def test_request_to_report_validates_with_intake(taxonomy):
    params = {"service_code": "0601", "lat": "31.259", "long": "121.526",
              "description": "路边垃圾", "media_url": "https://img.example/1.jpg",
              "address_string": "政通路 1 号", "email": "Someone@Example.com",
              "first_name": "Li", "phone": "123"}
    raw = report_from_request(params, source="citizen", reporter="app", now=NOW)
    r = parse_report(raw, taxonomy=taxonomy, now=NOW)
    assert isinstance(r, Report), r
    assert r.source == "citizen" and r.type_code == "0601" and r.location.crs == "wgs84"
    assert r.photos == ["https://img.example/1.jpg"] and r.address == "政通路 1 号"
    assert r.reporter_id.startswith("email-") and "example" not in r.reporter_id.lower()
    assert "Li" not in json.dumps(raw) and "123" not in json.dumps(raw)
    same = report_from_request({**params, "email": "someone@example.com"}, source="citizen",
                               reporter="app", now=NOW)
    assert same["reporter_id"] == raw["reporter_id"]  # stable per person, not reversible
    device = report_from_request({"lat": 31.2, "long": 121.5, "device_id": "dev-9",
                                  "description": "x"}, source="hotline_12345", reporter="h",
                                 now=NOW)
    assert device["reporter_id"] == "dev-9" and "type_code" not in device
    hotline = report_from_request({"lat": 31.2, "long": 121.5, "description": "群租",
                                   "attribute[ticket_no]": "F-962121-0042"},
                                  source="hotline_962121", reporter="h", now=NOW)
    r = parse_report(hotline, taxonomy=taxonomy, now=NOW)
    assert (r.ticket.hotline, r.ticket.ticket_no) == ("962121", "F-962121-0042")
    citizen = report_from_request({"lat": 31.2, "long": 121.5, "description": "x",
                                   "attribute[ticket_no]": "F-1234"}, source="citizen",
                                  reporter="app", now=NOW)
    rejected = parse_report(citizen, taxonomy=taxonomy, now=NOW)
    assert not isinstance(rejected, Report) and "ticket" in rejected.message


def test_request_without_coordinates_is_an_error():
    with pytest.raises(RequestError) as err:
        report_from_request({"address_string": "somewhere"}, source="citizen", reporter="a",
                            now=NOW)
    assert err.value.errors[0][0] == 400 and "lat and long" in err.value.errors[0][1]
    with pytest.raises(RequestError, match="long: 'east' is not a number"):
        report_from_request({"lat": "31", "long": "east"}, source="citizen", reporter="a",
                            now=NOW)
    assert param_of("location.lat") == "lat" and param_of("type_code") == "service_code"


def _case(taxonomy, **kw):
    report = Report.model_validate(dict(
        report_id=str(uuid.uuid4()), source="citizen", reporter_id="dev-1", reported_at=NOW,
        location={"lon": 121.526, "lat": 31.259}, type_code="0601", description="垃圾",
        photos=["https://img.example/p.jpg"], address="政通路 1 号"))
    dec = Decision(type_code="0601", department="sanitation", tier="street", priority="normal",
                   handling="ordinary", winner="r1", closing_standard="垃圾清除",
                   deadlines={"dispose": NOW + timedelta(hours=2)})
    case, _ = open_case(report, PLACE, dec, NOW)
    return report, case


def test_open_case_status(taxonomy):
    report, case = _case(taxonomy)
    s = request_status(report.rid, case, taxonomy)
    assert s["service_request_id"] == report.rid and s["status"] == "open"
    assert s["service_code"] == "0601" and s["service_name"] == taxonomy.types["0601"].name_zh
    assert s["agency_responsible"] == taxonomy.departments["sanitation"].name_zh
    assert s["requested_datetime"] == "2026-05-01T09:30:00+08:00"
    assert s["expected_datetime"] == "2026-05-01T11:30:00+08:00"
    assert "垃圾清除" in s["service_notice"]
    assert s["status_notes"].startswith("dispatched to")
    assert (s["lat"], s["long"], s["media_url"]) == (31.259, 121.526, "https://img.example/p.jpg")


def test_closed_and_merged_status(taxonomy):
    report, case = _case(taxonomy)
    for action, role, actor, extra in (
            (Action.ACCEPT, "department", "sanitation", {}),
            (Action.DISPOSE, "department", "sanitation", {"reason": "cleaned"}),
            (Action.VERIFY, "supervisor", "sup", {"passed": True}),
            (Action.CLOSE, "command_center", "cc", {})):
        case, _ = apply(case, Command(command_id=str(uuid.uuid4()), case_id=case.case_id,
                                      action=action, role=role, actor=actor, **extra),
                        NOW + timedelta(minutes=30))
    s = request_status(report.rid, case, taxonomy)
    assert s["status"] == "closed" and s["expected_datetime"] is None
    assert s["updated_datetime"] == "2026-05-01T10:00:00+08:00"
    other = str(uuid.uuid4())
    merged = request_status(other, case, taxonomy)
    assert merged["service_request_id"] == other
    assert merged["status_notes"].startswith(f"merged into case {case.case_id}")


def test_pending_status_before_the_case_exists(taxonomy):
    raw = report_from_request({"lat": "31.2", "long": "121.5", "service_code": "0101"},
                              source="citizen", reporter="a", now=NOW)
    s = request_status(raw["report_id"], None, taxonomy, raw)
    assert s["status"] == "open" and s["service_code"] == "0101"
    assert s["requested_datetime"] == "2026-05-01T09:30:00+08:00"


def test_xml_rendering_escapes_and_parses():
    text = to_xml("service_requests", "request",
                  [{"service_request_id": "a<b", "status": "open", "zipcode": None,
                    "metadata": False}])
    root = ET.fromstring(text)
    req = root.find("request")
    assert req.findtext("service_request_id") == "a<b"
    assert req.findtext("metadata") == "false" and req.find("zipcode").text is None
    err = ET.fromstring(errors_xml([(400, "lat: bad")]))
    assert err.find("error").findtext("code") == "400"


def test_iso_uses_shanghai_offset():
    assert iso(datetime(2026, 1, 1, 16, 0, tzinfo=UTC)) == "2026-01-02T00:00:00+08:00"
    assert iso(None) is None

