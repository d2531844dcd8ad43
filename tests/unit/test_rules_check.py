"""Loading and checking rule sets: the shipped set passes, broken fixtures fail precisely."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from geodata.schema import ZONE_TYPES
from grid.taxonomy import default_taxonomy
from rules import RuleSetError, load_ruleset
from rules.check import check_ruleset

BROKEN = Path(__file__).parents[1] / "fixtures" / "rules" / "broken"
STREETS = ["310110001", "310110002", "310118001"]


def check(path: Path | None = None):
    return check_ruleset(load_ruleset(path), default_taxonomy(), STREETS, ZONE_TYPES)


def test_shipped_rule_set_passes_with_full_coverage():
    res = check()
    assert res.errors == []
    assert res.summary == "132/132 types routable in 3/3 streets"


def test_version_is_a_content_hash(tmp_path):
    shutil.copytree(load_ruleset().path, tmp_path / "rs")
    a = load_ruleset(tmp_path / "rs")
    assert a.version == load_ruleset().version
    f = tmp_path / "rs" / "areas.yaml"
    f.write_text(f.read_text(encoding="utf-8").replace("priority: high", "priority: urgent", 1),
                 encoding="utf-8")
    assert load_ruleset(tmp_path / "rs").version != a.version


def test_schema_errors_name_file_rule_and_field():
    with pytest.raises(RuleSetError) as e:
        load_ruleset(BROKEN / "bad_schema")
    problems = e.value.problems
    assert any("routing[1] (id route.typo).match.zone" in p and "Extra inputs" in p
               for p in problems)
    assert any("route.octal" in p and "quoted string like '0101'" in p for p in problems)
    assert any("deadline.base" in p and "'2 hours' is not a duration" in p for p in problems)
    assert any("deadline.partial" in p and "missing ['dispatch', 'verify']" in p
               for p in problems)
    assert all(p.startswith("rules.yaml: ") for p in problems)


def test_duplicate_ids_and_sections_across_files():
    with pytest.raises(RuleSetError) as e:
        load_ruleset(BROKEN / "duplicate_ids")
    assert "b.yaml: rule id 'route.base' is already used in a.yaml; rule ids must be unique" \
        in e.value.problems
    assert any("section 'escalation' is already given in a.yaml" in p for p in e.value.problems)


def test_unknown_references():
    errors = check(BROKEN / "unknown_refs").errors
    assert "rules.yaml: route.ghost-type: match.type_code: unknown type code '0197'" in errors
    assert any(e.startswith("rules.yaml: route.ghost-category: match.category: unknown "
                            "category '11'") for e in errors)
    assert any("route.ghost-zone: match.zones: unknown zone type 'airport'" in e
               for e in errors)
    assert ("rules.yaml: route.ghost-department: set.department: unknown department "
            "'property_company'") in errors
    assert ("rules.yaml: route.ghost-assisting: set.assisting: unknown department "
            "'ghostbusters'") in errors
    assert "rules.yaml: route.ghost-owner: match.owner: unknown department 'heating'" in errors


def test_owner_department_needs_an_owner_condition():
    from pydantic import ValidationError

    from rules.schema import RoutingRule

    with pytest.raises(ValidationError, match=r"'@owner' needs a match\.owner condition"):
        RoutingRule.model_validate({"id": "r", "match": {"kind": "component"},
                                    "set": {"department": "@owner"}})
    rule = RoutingRule.model_validate({"id": "r", "match": {"owner": "water", "meter": "after"},
                                       "set": {"assisting": "housing"}})
    assert (rule.match.owner, rule.match.meter, rule.set.assisting) == (
        ["water"], ["after"], ["housing"])


def test_equal_precedence_conflict_is_flagged():
    errors = check(BROKEN / "conflict").errors
    assert len(errors) == 1
    assert "route.hospital-to-street-office and rules.yaml: route.manholes-to-water" in errors[0]
    assert "department 'street_office' vs 'water'" in errors[0]


def test_deadline_conflict_is_flagged():
    errors = check(BROKEN / "deadline_conflict").errors
    assert len(errors) == 1, errors
    assert "deadline.legal" in errors[0] and "deadline.construction" in errors[0]


def test_unreachable_rules_are_flagged():
    errors = check(BROKEN / "unreachable").errors
    assert "rules.yaml: route.event-components: matches no type (unreachable)" in errors
    assert any("route.manhole-priority: unreachable" in e and "route.public-facilities" in e
               for e in errors)
    assert any("deadline.hidden: unreachable: deadline.rural-ordinary" in e for e in errors)
    assert len(errors) == 3


def test_missing_coverage_is_counted_and_explained():
    res = check(BROKEN / "no_coverage")
    assert not res.ok
    assert res.summary == "17/132 types routable in 0/3 streets"
    assert ("coverage: type 0201 (Road surface damaged) in street 310110001: no department: "
            "no matching routing rule sets one") in res.errors


def test_no_streets_is_an_error():
    res = check_ruleset(load_ruleset(), default_taxonomy(), [], ZONE_TYPES)
    assert any("no streets" in e for e in res.errors)


def test_rules_are_sorted_strongest_first():
    rs = load_ruleset()
    keys = [r.sort_key for r in rs.routing]
    assert keys == sorted(keys) and rs.routing[-1].id == "route.base"


def test_reload_if_changed(tmp_path):
    from rules import reload_if_changed

    shutil.copytree(load_ruleset().path, tmp_path / "rs")
    rs = load_ruleset(tmp_path / "rs")
    assert reload_if_changed(rs) is None
    (tmp_path / "rs" / "zz-local.yaml").write_text(
        "raise:\n  - id: area.local-fair\n    match: {street: '310110001'}\n"
        "    priority: high\n", encoding="utf-8")
    new = reload_if_changed(rs)
    assert new is not None and new.version != rs.version
    assert "area.local-fair" in new.rule_ids()
