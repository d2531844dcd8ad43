"""Service layer with the real taxonomy, locator and rules (pure: no broker)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from geodata.coords import CoordinateError
from grid.models import Action, CaseState, Command
from grid.service import Engine

NOW = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def raw(type_code="0101", lon=121.5262, lat=31.2708, **kw) -> bytes:
    r = {"schema": "grid.report/1", "report_id": str(uuid.uuid4()), "source": "supervisor",
         "reporter_id": "s-1", "reported_at": NOW.isoformat(),
         "location": {"lon": lon, "lat": lat, "crs": "wgs84"}, "type_code": type_code,
         "description": "test"}
    r.update(kw)
    return orjson.dumps({k: v for k, v in r.items() if v is not None})


def test_intake_batch_splits_good_bad_and_outside(engine):
    located, dead = engine.intake(
        [raw(component_id="SS-1"), b"{oops", raw(lon=116.4, lat=39.9),
         raw(None, source="hotline_12345", description="小区楼道里堆满杂物")], NOW)
    assert [d.reason for d in dead] == ["invalid_json", "outside_coverage"]
    assert "outside every district" in dead[1].message
    manhole, hotline = located
    assert manhole.decision.department == "water" and manhole.decision.priority == "urgent"
    assert manhole.placement.cell and len(manhole.placement.cell) == 15
    assert hotline.classification["type_code"] == "0602"
    assert hotline.decision.type_code == "0602"


def test_unclassifiable_hotline_text_goes_to_triage_not_dlq(engine):
    located, dead = engine.intake([raw(None, source="hotline_12345", description="qwzx")], NOW)
    assert not dead
    fx = engine.on_located(located[0], None, [], NOW)
    assert fx.case.state is CaseState.TRIAGE and not fx.work_orders


def test_refused_coordinate_is_isolated_to_its_report(engine, monkeypatch):
    real = engine.locator.locate_many

    def picky(lons, lats, crs):
        if any(lon == 121.5 for lon in lons):
            raise CoordinateError("refused for the test")
        return real(lons, lats, crs)

    monkeypatch.setattr(engine.locator, "locate_many", picky)
    located, dead = engine.intake([raw(lon=121.5), raw()], NOW)
    assert len(located) == 1
    assert dead[0].reason == "invalid_coordinates" and "refused" in dead[0].message


def test_redelivery_duplicate_and_illegal_command(engine):
    (msg,), _ = engine.intake([raw("0603")], NOW)
    fx = engine.on_located(msg, None, [], NOW)
    case = fx.case
    assert [e.type for e in fx.events] == ["reported", "filed", "dispatched"]
    assert len(fx.work_orders) == 1
    assert engine.on_located(msg, case, [], NOW).duplicate_delivery
    (dup,), _ = engine.intake([raw("0603", lon=121.52622, lat=31.27082,
                                   reporter_id="hotline-12345")], NOW)
    fx2 = engine.on_located(dup, None, [case], NOW)
    assert fx2.merged_into == case.case_id and fx2.case.report_ids[-1] == dup.report.rid
    assert fx2.case.reporters == ["s-1", "hotline-12345"]  # who may read it (integrations)
    assert fx2.events[0].data.reporter_id == "hotline-12345"
    bad = Command(command_id="c1", case_id=case.case_id, action=Action.CLOSE, actor="cc",
                  role="command_center")
    fx3 = engine.on_command(bad, case, NOW)
    assert fx3.events[0].type == "command_rejected" and fx3.case == case
    missing = engine.on_command(bad.model_copy(update={"case_id": "310110001-x"}), None, NOW)
    assert "unknown case" in missing.events[0].reason


def test_record_without_value_is_dead_lettered_and_the_batch_goes_on(engine):
    """A tombstone (key, no value) on the reports topic is one DLQ entry, not a stopped batch."""
    good = raw()
    located, dead = engine.intake([None, good, None], NOW)
    assert [d.reason for d in dead] == ["null_value", "null_value"]
    assert "tombstone" in dead[0].message and dead[0].original_size == 0
    assert dead[0].original_b64 == "" and not dead[0].original_truncated
    assert [str(loc.report.report_id) for loc in located] == [orjson.loads(good)["report_id"]]


def test_dead_letter_of_a_huge_input_fits_a_kafka_record():
    """Apache Kafka refuses records over 1 MiB: the entry keeps 256 KiB, the size and hash."""
    import base64
    import hashlib

    from grid.service import ORIGINAL_KEPT, dead_letter

    big = b"x" * 1_000_000
    d = dead_letter(big, "too_large", "too big", NOW)
    assert d.original_size == 1_000_000 and d.original_truncated
    assert d.original_sha256 == hashlib.sha256(big).hexdigest()
    assert base64.b64decode(d.original_b64) == big[:ORIGINAL_KEPT]
    assert len(d.model_dump_json(by_alias=True)) < 1_000_000


def test_a_reused_report_id_with_other_content_is_a_conflict_not_a_redelivery(engine):
    first = raw("0603")
    (msg,), _ = engine.intake([first], NOW)
    case = engine.on_located(msg, None, [], NOW).case
    again = engine.on_located(msg, case, [], NOW)
    assert again.duplicate_delivery and again.conflict is None  # the same bytes: redelivery
    changed = orjson.loads(first) | {"description": "something else entirely"}
    (other,), _ = engine.intake([orjson.dumps(changed)], NOW)
    fx = engine.on_located(other, case, [], NOW)
    assert fx.duplicate_delivery and "used before for a report with other content" in fx.conflict
    assert fx.report.description == "something else entirely"
    assert [e.type for e in fx.events] == ["reported", "filed", "dispatched"]  # the original's
    # a merged duplicate's content is remembered too
    (dup,), _ = engine.intake([raw("0603", lon=121.52622, lat=31.27082)], NOW)
    merged = engine.on_located(dup, None, [case], NOW).case
    assert engine.on_located(dup, merged, [], NOW).conflict is None
    (dup2,), _ = engine.intake([orjson.dumps(orjson.loads(
        orjson.dumps(dup.report.model_dump(mode="json", by_alias=True))) | {"photos": [
            "https://img.example/other.jpg"]})], NOW)
    assert engine.on_located(dup2, merged, [], NOW).conflict


def test_a_channel_refuses_sources_its_principal_may_not_send_and_records_it(engine):
    from grid.service import Channel

    hotline = Channel("grid.reports.hotline.v1", "hotline",
                      frozenset({"hotline_12345", "hotline_12319"}))
    ok = raw(None, source="hotline_12345", description="小区楼道里堆满杂物")
    forged = raw("0101", source="supervisor")
    located, dead = engine.intake([ok, forged], NOW, [hotline, hotline])
    assert [d.reason for d in dead] == ["source_not_allowed"]
    assert dead[0].message == ("'hotline' writes grid.reports.hotline.v1 and may send reports "
                               "with source hotline_12319, hotline_12345, not 'supervisor'")
    assert dead[0].report_id == orjson.loads(forged)["report_id"]
    (msg,) = located
    assert msg.via == "hotline"
    fx = engine.on_located(msg, None, [], NOW)
    assert fx.events[0].type == "reported" and fx.events[0].data.via == "hotline"
    (plain,), _ = engine.intake([raw()], NOW)  # no channel given: nothing recorded
    assert plain.via is None and "via" not in engine.on_located(plain, None, [], NOW
                                                                ).events[0].data.model_fields_set
