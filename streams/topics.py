"""Kafka topic names (versioned), default partition counts and what each carries.

Every message is a UTF-8 JSON object with a ``schema`` field (see grid.models);
the key is a UTF-8 string. Bumping a message schema incompatibly means a new topic
version (``.v2``), never an in-place change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from grid.service import Channel
from grid.topics import (  # the names live in the core: the store reads them too
    ALERTS,
    CASE_EVENTS,
    COMMANDS,
    DISPATCH,
    DLQ,
    HOTLINE_REPLIES,
    LOCATED,
    REPORTS,
    REPORTS_GATEWAY,
    REPORTS_HOTLINE,
)

DEFAULT_PARTITIONS = 8


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, default partition count, message schema and key."""

    name: str
    partitions: int
    schema: str  # the ``schema`` field of its messages
    key: str  # what the message key is
    doc: str


SPECS: dict[str, TopicSpec] = {
    s.name: s
    for s in (
        TopicSpec(
            REPORTS,
            DEFAULT_PARTITIONS,
            "grid.report/1",
            "report_id (may be absent: raw input is accepted as-is)",
            "intake: reports from supervisors, hotlines, cameras, sensors, citizens",
        ),
        TopicSpec(
            REPORTS_GATEWAY,
            DEFAULT_PARTITIONS,
            "grid.report/1",
            "report_id",
            "intake from the supervisors' mobile gateway (principal gateway: source supervisor)",
        ),
        TopicSpec(
            REPORTS_HOTLINE,
            DEFAULT_PARTITIONS,
            "grid.report/1",
            "report_id",
            "intake from the 12345 / 962121 / 12319 hotlines (principal hotline: hotline "
            "sources)",
        ),
        TopicSpec(
            COMMANDS,
            DEFAULT_PARTITIONS,
            "grid.command/1",
            "street code (co-partitioned with case state); case_id when unknown",
            "actions by departments, supervisors, the command center and the system",
        ),
        TopicSpec(
            CASE_EVENTS,
            DEFAULT_PARTITIONS,
            "grid.case-event/1",
            "case_id",
            "every state change of every case: the event log",
        ),
        TopicSpec(
            DISPATCH,
            DEFAULT_PARTITIONS,
            "grid.work-order/1",
            "unit (registry unit id), else department",
            "work orders to departments' units: lead (主办) and assisting (协办)",
        ),
        TopicSpec(
            HOTLINE_REPLIES,
            DEFAULT_PARTITIONS,
            "grid.hotline-reply/1",
            "hotline ticket number",
            "answers to the 12345 / 962121 / 12319 hotlines: every state change of a case "
            "they reported, and the callback (回访)",
        ),
        TopicSpec(
            ALERTS,
            DEFAULT_PARTITIONS,
            "grid.alert/1",
            "district code",
            "key-supervision alerts, deadline warnings and supervision orders",
        ),
        TopicSpec(
            DLQ,
            DEFAULT_PARTITIONS,
            "grid.dlq/1",
            "report_id when it could be read, else none",
            "rejected input: machine-readable reason plus the original bytes",
        ),
        TopicSpec(
            LOCATED,
            DEFAULT_PARTITIONS,
            "grid.located/1; grid.dlq/1 with a dead-letter header",
            "street code (co-partitioned with commands and case state); a dead letter's "
            "report_id",
            "internal: validated, located, classified and decided reports, and the rejected "
            "ones on their way to the DLQ; header origin = the report's topic:partition:offset",
        ),
    )
}

# Headers of grid.located.v1 records (written by streams.intake, read by streams.caseloop)
ORIGIN = "origin"  # b"topic:partition:offset" of the report record the record came from
DEAD_LETTER = ("dead-letter", b"1")  # a rejected report: the case loop sends it to the DLQ


def origin_header(topic: str, partition: int, offset: int) -> tuple[str, bytes]:
    """The ``origin`` header of a located record read from ``topic[partition]@offset``."""
    return ORIGIN, f"{topic}:{partition}:{offset}".encode()


def origin_of(headers: Iterable[tuple[str, bytes]]) -> tuple[str, int] | None:
    """(``topic:partition``, offset) of a located record's ``origin`` header; None without
    one (or an unreadable one)."""
    for k, v in headers:
        if k == ORIGIN:
            src, _, off = v.decode("ascii", "replace").rpartition(":")
            return (src, int(off)) if src and off.isdigit() else None
    return None


ALL_TOPICS: dict[str, int] = {name: spec.partitions for name, spec in SPECS.items()}

# Where reports come in. On a secured cluster each topic's ACL lets only its principal
# write (deploy/kafka/principals.yaml), so the topic proves who wrote a report; the engine
# refuses a source that principal may not send (DLQ source_not_allowed) and records it.
INTAKE_CHANNELS: dict[str, Channel] = {
    REPORTS: Channel(REPORTS, "worker"),  # the HTTP API: it checks each token's source
    REPORTS_GATEWAY: Channel(REPORTS_GATEWAY, "gateway", frozenset({"supervisor"})),
    REPORTS_HOTLINE: Channel(REPORTS_HOTLINE, "hotline",
                             frozenset({"hotline_12345", "hotline_12319", "hotline_962121"})),
}


def all_topics(partitions: int | None = None) -> dict[str, int]:
    """ALL_TOPICS, optionally with one partition count for every topic (GRID_PARTITIONS)."""
    if partitions is None:
        return dict(ALL_TOPICS)
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    return dict.fromkeys(ALL_TOPICS, partitions)
