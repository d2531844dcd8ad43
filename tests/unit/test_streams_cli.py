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
