"""Pure parts of grid submit/tail and broker address resolution."""

from __future__ import annotations

import orjson
import pytest

from streams import topics
from streams.broker import DEFAULT_BROKER, bootstrap_of, resolve_broker, write_broker_state
from streams.cli import message_key, read_messages, summarize, topic_name


def test_read_messages_lines_keep_bad_input_as_is():
    text = '{"report_id": "a"}\n\n  {broken  \n[1,\n'
    assert read_messages(text) == [b'{"report_id": "a"}', b"{broken", b"[1,"]


def test_read_messages_json_array_is_split():
    assert read_messages('[{"report_id": "a"}, {"x": 1}]') == [
        orjson.dumps({"report_id": "a"}),
        orjson.dumps({"x": 1}),
    ]


def test_message_key_by_topic():
    assert message_key(b'{"report_id": "r1", "street": "s"}', topics.REPORTS) == "r1"
    assert message_key(b'{"case_id": "C1", "street": "310110001"}', topics.COMMANDS) == "310110001"
    assert message_key(b'{"case_id": "C1"}', topics.COMMANDS) == "C1"
    assert message_key(b"{broken", topics.REPORTS) is None
    assert message_key(b'{"report_id": 5}', topics.REPORTS) is None


def test_topic_aliases():
    assert topic_name("dispatch") == topics.DISPATCH
    assert topic_name("grid.custom.v1") == "grid.custom.v1"


def test_summarize_work_order_and_unknown():
    line = summarize({"schema": "grid.work-order/1", "priority": "urgent", "department": "water",
                      "case_id": "C1", "type_code": "0101"})  # fmt: skip
    assert "URGENT" in line and "water" in line and "C1" in line
    assert summarize("not json") == "not json"
    assert summarize({"reason": "invalid_json", "detail": "x"}).startswith("REJECTED")


def test_summarize_names_the_unit_the_assisting_role_and_hotline_replies():
    line = summarize({"schema": "grid.work-order/1", "priority": "normal",
                      "department": "public_security", "unit_name": "杨浦区街镇05派出所",
                      "role": "assisting", "case_id": "C2", "type_code": "0914"})
    assert line.startswith("WORK ORDER NORMAL → public_security · 杨浦区街镇05派出所 "
                           "(协办 assisting) · type 0914")
    reply = summarize({"schema": "grid.hotline-reply/1", "hotline": "12345",
                       "ticket_no": "SH-1", "status_zh": "已派遣", "event": "dispatched",
                       "status": "open", "message": "工单SH-1：已派遣", "case_id": "C3"})
    assert reply == ("HOTLINE 12345 ticket SH-1 · 已派遣 (dispatched, open) · 工单SH-1：已派遣 · "
                     "case C3")


def test_bootstrap_of_forms():
    assert bootstrap_of("kafka://a:1") == "a:1"
    assert bootstrap_of("kafka://a:1;kafka://b:2") == "a:1,b:2"
    assert bootstrap_of("kafka://a:1,b:2") == "a:1,b:2"
    with pytest.raises(ValueError):
        bootstrap_of(" , ")


def test_resolve_broker_order(tmp_path, monkeypatch):
    monkeypatch.setenv("GRID_HOME", str(tmp_path))
    monkeypatch.delenv("GRID_BROKER", raising=False)
    assert resolve_broker() == DEFAULT_BROKER
    write_broker_state("kafka://127.0.0.1:5555")
    assert resolve_broker() == "kafka://127.0.0.1:5555"
    monkeypatch.setenv("GRID_BROKER", "kafka://env:1")
    assert resolve_broker() == "kafka://env:1"
    assert resolve_broker("kafka://flag:2") == "kafka://flag:2"


def test_all_topics_partitions():
    assert set(topics.all_topics(3).values()) == {3}
    assert topics.all_topics() == topics.ALL_TOPICS
    with pytest.raises(ValueError):
        topics.all_topics(0)


def test_tail_shows_report_text_without_terminal_control():
    """A description with escape sequences cannot recolour, move or retitle the terminal."""
    from streams.cli import format_record
    from streams.kafka_io import Record

    value = {"schema": "grid.report/1", "type_code": "0601", "source": "citizen",
             "location": {"lon": 121.5, "lat": 31.3, "crs": "wgs84"},
             "description": "垃圾\x1b[2J\x1b[31mred\x1b]0;pwned\x07 \x08bell\x07"}
    rec = Record("grid.reports.v1", 0, 7, 1_764_300_000_000, "k\x1b[1m", value, b"")
    line = format_record(rec, as_json=False)
    assert "\x1b" not in line and "\x07" not in line and "\x08" not in line
    assert "垃圾red" in line and "\\x08bell" in line and "k" in line
    assert line.startswith("11:20:00.000 ")  # 2025-11-28 03:20 UTC is 11:20 in Shanghai


def test_broker_kind_is_recorded_beside_the_address(tmp_path, monkeypatch):
    from streams.broker import broker_kind, clear_broker_state, on_tansu, recorded_kind

    monkeypatch.setenv("GRID_HOME", str(tmp_path))
    monkeypatch.delenv("GRID_BROKER", raising=False)
    monkeypatch.delenv("GRID_BROKER_KIND", raising=False)
    assert broker_kind() == "kafka" and recorded_kind() is None
    write_broker_state("kafka://127.0.0.1:7777", kind="tansu")
    assert resolve_broker() == "kafka://127.0.0.1:7777" and on_tansu()
    monkeypatch.setenv("GRID_BROKER_KIND", "kafka")  # the environment wins
    assert not on_tansu()
    clear_broker_state("kafka://127.0.0.1:7777")
    assert recorded_kind() is None and resolve_broker() == DEFAULT_BROKER


def test_a_second_instance_on_one_home_is_refused_with_a_way_out(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    from streams.broker import claim_home

    monkeypatch.setenv("GRID_HOME", str(tmp_path))
    first = claim_home("up")
    try:
        out = subprocess.run([sys.executable, "-c", "from streams.broker import claim_home;"
                              "claim_home('up')"], capture_output=True, text=True,
                             env={**os.environ, "GRID_HOME": str(tmp_path)})
        assert out.returncode != 0 and "HomeInUse" in out.stderr
        assert f"grid up (pid {os.getpid()}) is already running" in out.stderr
        assert "GRID_HOME=/some/other/dir grid up" in out.stderr
    finally:
        first.close()
    claim_home("up").close()  # free again once the first one let go
