"""One home per concept (docs/architecture.md): the tables the lifecycle dispatches on are
complete, the tables derived from them say what they said before, and a concept defined in
the core is not defined again elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

from grid import auth, lifecycle, projection
from grid.models import CURRENT_STAGE, TERMINAL_STATES, Action, CaseState, Source
from rules import escalation

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("grid", "rules", "geodata", "store", "streams", "bench")


def test_every_action_has_a_rule_and_a_handler() -> None:
    assert set(lifecycle.RULES) == set(Action)
    assert set(lifecycle.HANDLERS) == set(Action)


def test_actions_by_role_is_derived_from_the_lifecycle_rules() -> None:
    got = {role: sorted(a.value for a in actions)
           for role, actions in auth.ACTIONS_BY_ROLE.items()}
    assert got == {
        "supervisor": ["self_dispose", "verify"],
        "department": ["accept", "advance_stage", "close_out_part", "dispose", "report_part",
                       "request_extension", "return"],
        "command_center": ["callback", "classify", "close", "close_out_part",
                           "deny_extension", "dispatch", "file", "follow_up",
                           "grant_extension", "reject", "supervise"],
        "viewer": [],
        "integration": ["callback"],
    }


def test_states_stages_and_sources_have_one_definition() -> None:
    assert {"closed", "rejected", "merged", "transferred"} == projection.TERMINAL
    assert {s.value for s in TERMINAL_STATES} == projection.TERMINAL
    assert projection.CURRENT_STAGE is CURRENT_STAGE is escalation.CURRENT_STAGE
    assert CURRENT_STAGE[CaseState.DISPOSED] == "verify"
    assert set(auth.SOURCES) == set(Source.__args__)  # type: ignore[attr-defined]


def test_the_shanghai_time_zone_is_defined_once() -> None:
    pattern = re.compile(r'ZoneInfo\(\s*"Asia/Shanghai"\s*\)|timedelta\(\s*hours\s*=\s*8\s*\)')
    defined = sorted(str(p.relative_to(ROOT)) for pkg in PACKAGES
                     for p in (ROOT / pkg).rglob("*.py") if pattern.search(p.read_text("utf-8")))
    assert defined == ["grid/deadlines.py"]
