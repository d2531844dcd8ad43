"""``grid route`` and ``grid rules check`` through click's CliRunner."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from grid.cli import main
from tests.unit.test_rules import REPORTS, place

BROKEN = Path(__file__).parents[1] / "fixtures" / "rules" / "broken"
NOW = "2025-03-03T10:00:00+08:00"
T0 = datetime.fromisoformat(NOW)


def route(name: str, *zones: str, tmp_path: Path | None = None, extra=()) -> dict:
    args = ["route", "--report", str(REPORTS / name), "--now", NOW, "--format", "json", *extra]
    if tmp_path is not None:
        f = tmp_path / "placement.json"
        f.write_text(place(*zones).model_dump_json(), encoding="utf-8")
        args += ["--placement", str(f)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for key in ("department", "tier", "priority", "handling", "self_closed", "alert",
                "deadlines", "rules", "ruleset_version"):
        assert key in out
    out["due"] = {k: datetime.fromisoformat(v) - T0 for k, v in out["deadlines"].items()}
    return out


def test_manhole_cover_located_by_the_real_locator():
    out = route("manhole_cover.json")
    assert out["placement"]["district"] == "310110" and out["placement"]["street"]
    assert (out["priority"], out["alert"], out["handling"]) == ("urgent", True, "key_supervision")
    assert out["due"]["dispose"] == timedelta(hours=2)
    assert out["ruleset_version"].startswith("sha256:")


def test_poster_with_evidence_self_closed(tmp_path):
    out = route("poster_with_evidence.json", tmp_path=tmp_path)
    assert out["self_closed"] is True and out["department"] is None and out["tier"] == "self"


def test_poster_without_evidence_dispatched(tmp_path):
    out = route("poster_without_evidence.json", tmp_path=tmp_path)
    assert out["self_closed"] is False and out["department"] == "sanitation"


def test_illegal_construction_enforcement(tmp_path):
    out = route("illegal_construction.json", tmp_path=tmp_path)
    assert out["department"] == "urban_enforcement" and "deadline.legal-process" in out["rules"]
    assert out["due"]["dispose"] > timedelta(days=40)


def test_rural_zone(tmp_path):  # the shipped Yangpu demo has no rural zone: given placement
    urban = route("rural_garbage.json", tmp_path=tmp_path)
    rural = route("rural_garbage.json", "rural", tmp_path=tmp_path)
    assert rural["due"]["dispose"] == 2 * urban["due"]["dispose"]


def test_near_hospital(tmp_path):
    assert route("road_near_hospital.json", "hospital", tmp_path=tmp_path)["priority"] == "high"


def test_compound_corridor_clutter(tmp_path):
    out = route("corridor_clutter.json", "residential_compound", tmp_path=tmp_path)
    assert (out["department"], out["tier"]) == ("property_management", "community")


def report_in_zone(zone_type: str, name: str, tmp_path: Path) -> str:
    """The fixture report moved to a point inside a zone of the shipped geodata."""
    from geodata.locator import Locator

    zones = Locator.load(None).layers["zones"]
    point = zones[zones.zone_type == zone_type].iloc[0].geometry.representative_point()
    data = json.loads((REPORTS / name).read_text(encoding="utf-8"))
    data["location"] = {"lon": point.x, "lat": point.y, "crs": "wgs84"}
    f = tmp_path / name
    f.write_text(json.dumps(data), encoding="utf-8")
    return str(f)


def test_near_hospital_located_by_the_real_locator(tmp_path):
    f = report_in_zone("hospital", "road_near_hospital.json", tmp_path)
    res = CliRunner().invoke(main, ["route", "--report", f, "--now", NOW])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert "hospital" in out["placement"]["zones"]
    assert out["priority"] == "high" and "area.hospital" in out["rules"]


def test_compound_located_by_the_real_locator(tmp_path):
    f = report_in_zone("residential_compound", "corridor_clutter.json", tmp_path)
    res = CliRunner().invoke(main, ["route", "--report", f, "--now", NOW])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert "residential_compound" in out["placement"]["zones"]
    assert (out["department"], out["tier"]) == ("property_management", "community")


def test_text_format_shows_the_winner():
    res = CliRunner().invoke(main, ["route", "--report", str(REPORTS / "water_manhole.json"),
                                    "--now", NOW, "--format", "text"])
    assert res.exit_code == 0, res.output
    assert "department  water" in res.output and "winner      route.owner.water" in res.output
    assert "unit        杨浦区供水管理所 (310110.water)" in res.output


def test_text_format_shows_the_assisting_departments_and_their_units(tmp_path):
    report = json.loads((REPORTS / "corridor_clutter.json").read_text(encoding="utf-8"))
    report.update(type_code="0914", description="群租")
    path = tmp_path / "qunzu.json"
    path.write_text(json.dumps(report), encoding="utf-8")
    res = CliRunner().invoke(main, ["route", "--report", str(path), "--now", NOW,
                                    "--format", "text"])
    assert res.exit_code == 0, res.output
    street = json.loads(CliRunner().invoke(main, ["route", "--report", str(path), "--now",
                                                  NOW]).output)["placement"]["street"]
    name = f"杨浦区街镇{street[-2:]}"  # the generated street's name
    assert (f"assisting   public_security: {name}派出所 ({street}.public_security)"
            in res.output)
    assert (f"assisting   urban_enforcement: {name}城管执法中队 ({street}.urban_enforcement)"
            in res.output)


def test_route_rejects_a_bad_report(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"source": "supervisor"}), encoding="utf-8")
    res = CliRunner().invoke(main, ["route", "--report", str(bad), "--now", NOW])
    assert res.exit_code != 0 and "report_id" in res.output


def test_rules_check_passes_on_the_shipped_set():
    res = CliRunner().invoke(main, ["rules", "check"])
    assert res.exit_code == 0, res.output
    assert "132/132 types routable in" in res.output
    n = res.output.split("routable in ")[1].split()[0]
    done, total = n.split("/")
    assert done == total and int(total) > 0


@pytest.mark.parametrize(("fixture", "message"), [
    ("conflict", "have equal precedence"),
    ("unreachable", "unreachable"),
    ("unknown_refs", "unknown type code '0197'"),
    ("no_coverage", "17/132 types routable"),
    ("bad_schema", "route.typo"),
])
def test_rules_check_fails_usefully(fixture, message):
    res = CliRunner().invoke(main, ["rules", "check", "--rules", str(BROKEN / fixture)])
    assert res.exit_code != 0
    assert message in res.output
