"""The names of the engine's message streams (Kafka topics), versioned: the published
language between the engine (streams/), the read store's projector (store/) and outside
producers and consumers. Names only (no Kafka here); partitions, schemas and keys are in
streams/topics.py. An incompatible message change is a new name (``.v2``), never an
in-place change."""

from __future__ import annotations

REPORTS = "grid.reports.v1"
COMMANDS = "grid.commands.v1"
CASE_EVENTS = "grid.case-events.v1"
DISPATCH = "grid.dispatch.v1"
ALERTS = "grid.alerts.v1"
DLQ = "grid.reports.dlq.v1"
LOCATED = "grid.located.v1"  # internal: validated, located, decided reports keyed by street
REPORTS_GATEWAY = "grid.reports.gateway.v1"  # written only by the supervisors' gateway
REPORTS_HOTLINE = "grid.reports.hotline.v1"  # written only by the hotline integration
HOTLINE_REPLIES = "grid.hotline-replies.v1"  # answers to the hotlines, read by the hotline
