"""The principals policy (deploy/kafka/principals.yaml) and the ACLs it becomes (pure)."""

from __future__ import annotations

import json
import stat

import pytest

from streams import kafka_acl
from streams.broker import BrokerError


def test_shipped_policy_gives_each_intake_topic_one_writer_besides_the_workers():
    policy = kafka_acl.load_policy()
    assert kafka_acl.super_users(policy) == ["admin"]
    entries = kafka_acl.acls(policy)
    writes = {(a.principal, a.resource_pattern.resource_name,
               a.resource_pattern.pattern_type.name)
              for a in entries if a.operation.name in ("WRITE", "ALL")
              and a.resource_pattern.resource_type.name == "TOPIC"}
    assert writes == {("User:worker", "grid", "PREFIXED"),
                      ("User:gateway", "grid.reports.gateway.v1", "LITERAL"),
                      ("User:hotline", "grid.reports.hotline.v1", "LITERAL")}
    reader = {a.operation.name for a in entries if a.principal == "User:reader"}
    assert reader == {"READ", "DESCRIBE"}


def test_unknown_operations_or_resources_are_refused(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("x:\n  topic: {grid.reports.v1: [SCRIBBLE]}\n")
    with pytest.raises(BrokerError, match="unknown operation"):
        kafka_acl.load_policy(bad)
    bad.write_text("x:\n  tables: {t: [READ]}\n")
    with pytest.raises(BrokerError, match="unknown resource type 'tables'"):
        kafka_acl.load_policy(bad)


def test_passwords_are_made_once_and_kept_private(tmp_path):
    policy = kafka_acl.load_policy()
    first = kafka_acl.credentials(tmp_path, policy)
    assert set(first) == set(policy) and len(set(first.values())) == len(first)
    assert kafka_acl.credentials(tmp_path, policy) == first
    path = tmp_path / "principals.json"
    assert json.loads(path.read_text()) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_every_intake_channel_is_written_by_its_principal_alone():
    from streams.topics import INTAKE_CHANNELS

    policy = kafka_acl.load_policy()
    for topic, channel in INTAKE_CHANNELS.items():
        writers = {p for p, g in policy.items()
                   if any(op in ("WRITE", "ALL") for name, ops in g.get("topic", {}).items()
                          if name == topic or (name.endswith("*") and topic.startswith(
                              name[:-1])) for op in ops)}
        assert writers == {channel.principal} | {"worker"}, topic
