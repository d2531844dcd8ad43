"""Principals and ACLs of a secured Apache Kafka cluster (``grid kafka start --secure``).

The policy is data (``deploy/kafka/principals.yaml``): each principal authenticates with
SASL SCRAM-SHA-512 and may do only what it is granted. Passwords are generated once per data
directory and kept in ``<data>/principals.json`` (mode 600).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import yaml

from streams.broker import BrokerError, client_security

POLICY = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "principals.yaml"
RESOURCES = ("topic", "group", "transactional_id", "cluster")


def load_policy(path: Path = POLICY) -> dict[str, dict[str, Any]]:
    """principal -> grants, checked: known resource types and operations."""
    from kafka.admin import ACLOperation

    policy = yaml.safe_load(path.read_text())
    ops = {o.name for o in ACLOperation}
    for name, grants in policy.items():
        for kind, items in grants.items():
            if kind == "super":
                continue
            if kind not in RESOURCES:
                raise BrokerError(f"{path}: {name}: unknown resource type {kind!r}")
            for resource, wanted in items.items():
                bad = set(wanted) - ops
                if bad:
                    raise BrokerError(f"{path}: {name}: {kind} {resource}: unknown "
                                      f"operation(s) {sorted(bad)}")
    return policy


def credentials(data_dir: Path, policy: dict[str, dict[str, Any]]) -> dict[str, str]:
    """principal -> password, generated on first use and kept in ``principals.json``."""
    path = data_dir / "principals.json"
    known: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    missing = [p for p in policy if p not in known]
    if missing:
        known.update({p: secrets.token_urlsafe(18) for p in missing})
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=1) + "\n")
        os.chmod(path, 0o600)
    return known


def super_users(policy: dict[str, dict[str, Any]]) -> list[str]:
    return [p for p, grants in policy.items() if grants.get("super")]


def acls(policy: dict[str, dict[str, Any]]) -> list[Any]:
    """The kafka-python ACL entries that grant ``policy`` (super users need none)."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    out = []
    for principal, grants in policy.items():
        for kind, items in grants.items():
            if kind == "super":
                continue
            for resource, operations in items.items():
                prefixed = resource.endswith("*")
                pattern = ResourcePattern(
                    ResourceType[kind.upper()], resource.rstrip("*"),
                    ACLResourcePatternType.PREFIXED if prefixed else
                    ACLResourcePatternType.LITERAL)
                out += [ACL(f"User:{principal}", "*", ACLOperation[op],
                            ACLPermissionType.ALLOW, pattern) for op in operations]
    return out


def apply_acls(bootstrap: list[str], admin_password: str,
               policy: dict[str, dict[str, Any]]) -> int:
    """Create the policy's ACLs on the cluster (idempotent); returns how many."""
    from kafka.admin import KafkaAdminClient

    entries = acls(policy)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20_000,
                             **client_security("admin", admin_password))
    try:
        result = admin.create_acls(entries)
    finally:
        admin.close()
    if result.get("failed"):
        raise BrokerError(f"creating ACLs failed: {result['failed'][:3]}")
    return len(entries)
