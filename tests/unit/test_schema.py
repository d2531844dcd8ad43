"""Exported JSON Schemas match the models and the committed copies."""

import json
from pathlib import Path

from click.testing import CliRunner

from grid.cli import main
from grid.cli_schema import schemas

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_every_wire_model_has_a_schema_and_committed_copy_is_current():
    all_ = schemas()
    assert {"grid.report/1", "grid.command/1", "grid.case-event/1", "grid.work-order/1",
            "grid.alert/1", "grid.case/2"} <= set(all_)
    for sid, s in all_.items():
        committed = json.loads((DOCS / (sid.replace("/", "-v") + ".schema.json")).read_text())
        assert committed == s, f"stale docs/schemas for {sid}: run grid schema --out docs/schemas"


def test_report_schema_names_required_fields():
    s = schemas()["grid.report/1"]
    assert {"report_id", "source", "reporter_id", "reported_at", "location"} <= set(s["required"])


def test_cli_prints_one_schema_and_rejects_unknown():
    r = CliRunner().invoke(main, ["schema", "grid.report/1"])
    assert r.exit_code == 0 and json.loads(r.output)["title"] == "Report"
    r = CliRunner().invoke(main, ["schema", "nope/1"])
    assert r.exit_code != 0 and "unknown schema" in r.output
