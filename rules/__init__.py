"""Rule tables and the decision engine (pure, no Kafka/HTTP).

* :func:`load_ruleset` — a directory of YAML rule files, versioned by content hash.
* :func:`decide` — route one located report: department, tier, priority, deadlines, alert.
* :func:`find_duplicate` — the open case a report duplicates, if any.
* :func:`rules.escalation.check_deadlines` — warnings, supervision orders, arbitration due now.
"""

from geodata.coords import haversine_m
from rules.duplicates import find_duplicate
from rules.engine import decide
from rules.escalation import EscalationStep, check_deadlines
from rules.ruleset import RuleSet, RuleSetError, current_version, load_ruleset, reload_if_changed

__all__ = [
    "EscalationStep",
    "RuleSet",
    "RuleSetError",
    "check_deadlines",
    "current_version",
    "decide",
    "find_duplicate",
    "haversine_m",
    "load_ruleset",
    "reload_if_changed",
]
