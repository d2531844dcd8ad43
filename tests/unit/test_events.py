"""Typed case events (grid.events): every stored event parses into the class its type names
and dumps back to the same JSON; unknown types are read, not refused; writers and folds
agree with the models."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from grid import lifecycle
from grid.events import (
    EVENT_TYPES,
    CaseEvent,
    DispatchedData,
    DispatchedEvent,
    EventData,
    MergedEvent,
    UnknownEvent,
    dump_event,
    event_json_schema,
    event_types_markdown,
    parse_event,
    parse_event_json,
    payload_model,
)
from grid.models import Case, CaseState
from grid.projection import Projection

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STORED = sorted((FIXTURES / "events").glob("*.jsonl"))
T0 = "2026-02-27T09:00:00+08:00"
CID = "310110001-aaaaaaaaaaaa"
STAGE = {"stage": "investigation", "name_zh": "立案调查", "name_en": "Investigation",
         "limit": "15d", "closes_when": "立案", "opened_at": T0,
         "due": "2026-03-20T09:00:00+08:00"}

# One data object per event type, as the writers produce it (grid/lifecycle.py,
# grid/service.py); a test checks that every type of EVENT_TYPES has one.
EXAMPLES: dict[str, dict[str, typing.Any]] = {
    "reported": {"report": {"report_id": "r1", "reporter_id": "sup-1"},
                 "placement": {"lon": 121.5, "lat": 31.2}, "type_code": None,
                 "category": None, "kind": None, "via": "hotline"},
    "transferred": {"decision": {"type_code": "9901"}, "services": ["119"]},
    "triaged": {"decision": {"type_code": None}},
    "filed": {"decision": {"type_code": "0601"}, "command_id": "c1"},
    "classified": {"command_id": "c1", "decision": {"type_code": "0601"}, "type_code": "0601"},
    "follow_up_opened": {"command_id": "c1", "decision": {}, "type_code": "0203",
                         "transferred_to": ["119"]},
    "self_closed": {"decision": {"type_code": "0601"}, "evidence_photos": ["a.jpg"]},
    "dispatched": {"department": "housing", "unit": "u1", "unit_name": "房管办",
                   "work_order_id": f"{CID}:1", "priority": "normal", "tier": "street",
                   "assisting": [{"department": "police", "unit": None, "unit_name": None,
                                  "work_order_id": f"{CID}:1:police"}],
                   "legal_stage": STAGE},
    "redispatched": {"command_id": "c2", "department": "roads", "work_order_id": f"{CID}:2",
                     "priority": "high", "tier": "district"},
    "legal_stage_closed": {"command_id": "c3", "stage": "investigation",
                           "due": "2026-03-20T09:00:00+08:00", "on_time": True, "note": "done",
                           "next": {**STAGE, "stage": "notice"}, "evidence_photos": []},
    "lead_disposed": {"command_id": "c4", "evidence_photos": ["b.jpg"],
                      "waiting_for": ["police"]},
    "disposed": {"command_id": "c4", "evidence_photos": ["b.jpg"]},
    "verified": {"command_id": "c5"},
    "part_reported": {"command_id": "c6", "department": "police", "work_order_id": "w:police",
                      "evidence_photos": []},
    "part_closed_out": {"command_id": "c6", "department": "police", "unit": "p1",
                        "work_order_id": "w:police", "evidence_photos": []},
    "callback": {"command_id": "c7", "satisfaction": "not_satisfied", "comment": "still dirty",
                 "reopened": True},
    "reopened": {"command_id": "c7", "department": "roads",
                 "deadlines": {"dispose": "2026-03-02T09:00:00+08:00"}},
    "returned": {"command_id": "c8", "department": "roads"},
    "rework": {"command_id": "c9", "department": "roads", "evidence_photos": ["v.jpg"]},
    "extension_requested": {"command_id": "c10", "minutes": 1440},
    "extension_granted": {"command_id": "c11", "minutes": 1440,
                          "deadlines": {"dispose": "2026-03-01T09:00:00.123456+08:00"}},
    "extension_denied": {"command_id": "c12"},
    "supervised": {"command_id": "c13", "level": "district", "key": "dispose@district",
                   "stage": "dispose"},
    "warned": {"command_id": "c14", "stage": "dispose"},
    "merged": {"command_id": "merge:r2", "report_id": "r2", "reporter_id": "sup-2",
               "fingerprint": "abc"},
    "accepted": {"command_id": "c15"},
    "rejected": {"command_id": "c16"},
    "closed": {"command_id": "c17"},
    "arbitration": {"command_id": "c18"},
    "command_rejected": {"command_id": "c19", "action": "close", "refused": "conflict"},
}


def _event(kind: str, data: dict[str, typing.Any], seq: int = 2,
           to: str = "dispatched") -> dict[str, typing.Any]:
    return {"schema": "grid.case-event/1", "event_id": f"{CID}:{seq}", "case_id": CID,
            "seq": seq, "type": kind, "state_from": "filed", "state_to": to,
            "actor": "engine", "role": "system", "at": T0, "reason": "", "data": data,
            "district": "310110", "street": "310110001"}


def _stored() -> list[dict[str, typing.Any]]:
    return [json.loads(line) for f in STORED for line in f.read_text().splitlines() if line]


def test_every_stored_event_parses_into_its_type_and_dumps_back_to_the_same_json():
    events = _stored()
    assert STORED and len(events) > 50
    for d in events:
        e = parse_event(d)
        assert type(e) is EVENT_TYPES[d["type"]], d["type"]
        assert dump_event(e) == d
        assert json.loads(e.model_dump_json(by_alias=True)) == d
        assert parse_event_json(json.dumps(d)) == e


def test_the_fixture_log_replays_into_the_same_cases():
    by_case: dict[str, list[CaseEvent]] = {}
    for d in _stored():
        if d["seq"]:
            by_case.setdefault(d["case_id"], []).append(parse_event(d))
    for cid, evs in by_case.items():
        case = lifecycle.replay(evs)
        assert case.case_id == cid and case.seq == len(evs)
        last = [e for e in evs if e.data.command_id == evs[-1].data.command_id]
        assert [e.event_id for e in case.recent] == [e.event_id for e in evs][-len(last):]
        again = Case.model_validate_json(case.model_dump_json(by_alias=True))  # changelog
        assert [type(e) for e in again.recent] == [type(e) for e in case.recent]
        assert again == case


def test_every_event_type_has_an_example_and_each_round_trips():
    assert set(EXAMPLES) == set(EVENT_TYPES)
    for kind, data in EXAMPLES.items():
        d = _event(kind, data)
        e = parse_event(d)
        assert type(e) is EVENT_TYPES[kind] and isinstance(e.data, payload_model(kind))
        assert dump_event(e) == d, kind


def test_payload_fields_are_typed():
    e = parse_event(_event("dispatched", EXAMPLES["dispatched"]))
    assert isinstance(e, DispatchedEvent) and isinstance(e.data, DispatchedData)
    assert e.data.assisting and e.data.assisting[0].work_order_id == f"{CID}:1:police"
    assert e.data.legal_stage and e.data.legal_stage.due.isoformat() == STAGE["due"]
    granted = parse_event(_event("extension_granted", EXAMPLES["extension_granted"]))
    assert granted.data.deadlines["dispose"].microsecond == 123456  # type: ignore[attr-defined]


def test_old_events_with_extra_or_missing_optional_keys_parse_and_keep_what_they_had():
    # a merge recorded before fingerprints, with a key no model knows
    old = _event("merged", {"report_id": "r2", "legacy_flag": 1})
    e = parse_event(old)
    assert isinstance(e, MergedEvent) and e.data.fingerprint is None
    assert dump_event(e) == old  # the unknown key round-trips, no key is added
    # null written where a writer kept it (legal_stage_closed of an old writer)
    closed = _event("legal_stage_closed", {"stage": "notice", "by_disposal": None,
                                           "next": None})
    assert dump_event(parse_event(closed)) == closed
    # a dispatch without unit / assisting / legal stage (the fixture log's writer)
    bare = _event("dispatched", {"department": "roads", "work_order_id": "w"})
    assert dump_event(parse_event(bare)) == bare


def test_a_required_payload_field_missing_is_refused():
    with pytest.raises(ValueError, match="work_order_id"):
        parse_event(_event("dispatched", {"department": "roads"}))


def test_an_unknown_type_is_read_as_unknown_event_with_its_data_kept():
    d = _event("inspected_by_drone", {"drone": "D-7", "photos": ["x.jpg"], "command_id": "c"},
               to="dispatched")
    e = parse_event(d)
    assert type(e) is UnknownEvent and e.type == "inspected_by_drone"
    assert e.data.command_id == "c" and dump_event(e) == d
    assert type(CaseEvent.model_validate(d)) is UnknownEvent


def test_an_unknown_event_in_a_history_is_a_plain_state_change_for_evolve_and_projection():
    evs = [d for d in _stored() if d["case_id"] == _stored()[0]["case_id"] and d["seq"]]
    assert len(evs) >= 3
    newer = _event("inspected_by_drone", {"drone": "D-7"}, seq=evs[1]["seq"] + 1,
                   to=evs[1]["state_to"])
    newer["case_id"] = evs[0]["case_id"]
    newer["event_id"] = f"{newer['case_id']}:{newer['seq']}"
    later = [{**x, "seq": x["seq"] + 1, "event_id": f"{x['case_id']}:{x['seq'] + 1}"}
             for x in evs[2:]]
    log = [*evs[:2], newer, *later]
    case = lifecycle.replay(parse_event(x) for x in log)
    plain = lifecycle.replay(parse_event(x) for x in evs)
    assert case.state == plain.state and case.seq == plain.seq + 1
    assert case.dispatches == plain.dispatches
    p = Projection()
    assert p.apply_all(log) == len(log)  # nothing waits behind the unknown event
    c = p.cases[newer["case_id"]]
    assert c.seq == log[-1]["seq"] and c.state == plain.state.value
    p2 = Projection()
    p2.apply_all(parse_event(x) for x in log)
    assert p2.cases[newer["case_id"]] == c


def test_writers_build_only_fields_the_payload_defines_and_leave_none_out():
    assert DispatchedData.of(department="d", work_order_id="w", unit=None).model_dump(
        mode="json") == {"department": "d", "work_order_id": "w"}
    with pytest.raises(TypeError, match="no field"):
        DispatchedData.of(department="d", work_order_id="w", departmnet="typo")


def test_model_validate_on_the_envelope_gives_the_class_of_the_type():
    d = _event("merged", EXAMPLES["merged"])
    assert type(CaseEvent.model_validate(d)) is MergedEvent
    assert type(CaseEvent.model_validate_json(json.dumps(d))) is MergedEvent
    assert type(MergedEvent.model_validate(d)) is MergedEvent


def test_each_fold_takes_the_event_class_of_its_type():
    from grid import evaluation, projection

    tables = {"lifecycle._FOLDS": lifecycle._FOLDS,
              "projection._SUMMARY_FOLDS": projection._SUMMARY_FOLDS,
              "evaluation._ROLE_STEPS": evaluation._ROLE_STEPS}
    for name, table in tables.items():
        for kind, fn in table.items():
            assert kind in EVENT_TYPES, f"{name}: {kind} is not an event type"
            if getattr(fn, "__name__", "") == "<lambda>":
                continue
            hints = typing.get_type_hints(fn)
            ann = hints.get("e")
            assert ann is not None, f"{name}[{kind}]: {fn.__name__} has no typed e"
            assert issubclass(EVENT_TYPES[kind], ann), (name, kind, ann)


def test_the_json_schema_has_one_member_per_class_and_unknown_excludes_known_types():
    s = event_json_schema()
    assert len(s["oneOf"]) == len(set(EVENT_TYPES.values())) + 1
    unknown = s["$defs"]["UnknownEvent"]["properties"]["type"]
    assert set(unknown["not"]["enum"]) == set(EVENT_TYPES)


def test_the_json_schema_accepts_every_stored_and_example_event():
    jsonschema = pytest.importorskip("jsonschema")
    v = jsonschema.Draft202012Validator(event_json_schema())
    for d in [*_stored(), *(_event(k, x) for k, x in EXAMPLES.items()),
              _event("inspected_by_drone", {})]:
        errors = list(v.iter_errors(d))
        assert not errors, (d["type"], errors[0].message)


def test_event_data_base_keeps_every_key_of_an_unknown_payload():
    e = EventData.model_validate({"a": 1, "b": [1, 2]})
    assert e.model_dump() == {"a": 1, "b": [1, 2]}
    assert CaseState.DISPATCHED.value == "dispatched"


@pytest.mark.parametrize("doc", ["README.md", "docs/architecture.md"])
def test_the_docs_list_every_event_type_with_its_payload_fields(doc):
    text = (Path(__file__).resolve().parents[2] / doc).read_text()
    start = text.index("<!-- event types: generated from grid/events.py")
    start = text.index("\n", start) + 1
    end = text.index("<!-- end of event types -->", start)
    assert text[start:end] == event_types_markdown(), (
        f"{doc}: the event table is stale; put in the output of "
        "`python -c 'from grid.events import event_types_markdown as m; print(m(), end=\"\")'`")
