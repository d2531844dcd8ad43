"""The worker's settings model (streams/settings.py): GRID_* parsing, overrides, the one-line
error for a bad value, and the README's configuration table kept in step with the model."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.settings import Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")

# Variables in the README's table that are not fields of the model, and the module that
# reads them (every command that talks to the broker, not only the worker).
READ_ELSEWHERE = {
    "GRID_BROKER_KIND": "streams/broker.py",
    "GRID_KAFKA_USER": "streams/broker.py",
    "GRID_KAFKA_PASSWORD": "streams/broker.py",
    "GRID_HOME": "streams/broker.py",
    "GRID_KAFKA_CACHE": "streams/kafka_server.py",
}
# Defaults the table says in words: field -> (its words, the value they stand for).
IN_WORDS = {
    "photo_max_bytes": ("10 MB", 10 * 1024 * 1024),
    "fetch_wait_ms": ("500 on Kafka, 25 on Tansu", 0),  # 0 = by broker
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GRID_* variable of the calling shell leaks into these tests (GRID_BROKER_KIND is
    the session's broker kind: kept)."""
    for name in list(os.environ):
        if name.startswith("GRID_") and name != "GRID_BROKER_KIND":
            monkeypatch.delenv(name)


def config_table() -> dict[str, str]:
    """The README's configuration table: each variable -> its default cell (a row naming
    several variables, ``A / B``, splits its default the same way)."""
    section = README.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    out: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| `GRID_"):
            continue
        names_cell, default_cell = (c.strip() for c in line.strip("|").split(" | ")[:2])
        names = re.findall(r"`(GRID_\w+)`", names_cell)
        defaults = default_cell.split(" / ")
        if len(defaults) != len(names):
            defaults = [default_cell] * len(names)
        for name, default in zip(names, defaults, strict=True):
            assert name not in out, f"{name} has two rows"
            out[name] = default.strip()
    return out


def test_every_field_is_in_the_readme_table_and_every_row_is_a_field():
    table = config_table()
    fields = set(Settings.env_names().values())
    assert sorted(fields - set(table)) == []  # a field the README does not document
    assert sorted(set(table) - fields - set(READ_ELSEWHERE)) == []  # a row no code reads
    for name, module in READ_ELSEWHERE.items():
        assert name in table, f"{name} is read by {module} but not documented"
        assert name in (REPO / module).read_text(), f"{module} no longer reads {name}"
        assert name not in fields


def _documented(cell: str, default: object) -> bool:
    """Whether the table's first backticked value in ``cell`` is ``default``."""
    m = re.match(r"`([^`]*)`", cell)
    if m is None:
        return False
    text = m.group(1)
    if isinstance(default, bool):
        return text == str(default).lower()
    if isinstance(default, int | float):
        return float(text) == default
    return text == default


def test_the_readme_defaults_are_the_models():
    table = config_table()
    checked = 0
    for field, name in Settings.env_names().items():
        default = Settings.model_fields[field].default
        cell = table[name]
        if field in IN_WORDS:
            words, value = IN_WORDS[field]
            assert (cell, default) == (words, value), name
        elif default in (None, "") or Settings.model_fields[field].default_factory:
            assert cell.startswith(("–", "shipped", "`<data dir>")), (name, cell)
        else:
            assert _documented(cell, default), (name, cell, default)
            checked += 1
    assert checked >= 15  # the scalar defaults are compared, not skipped


def test_defaults_without_environment(tmp_path):
    s = Settings.from_env(data_dir=str(tmp_path / "d"))
    assert (s.broker, s.app_id, s.web_port, s.web_host) == (
        "kafka://127.0.0.1:9092", "grid", 6066, "127.0.0.1")
    assert (s.partitions, s.replication, s.batch_size) == (8, 1, 500)
    assert (s.tick_seconds, s.stuck_seconds, s.api_action_wait) == (1.0, 30.0, 5.0)
    assert (s.fast_group, s.projector, s.dashboard_public) == (True, True, False)
    assert (s.geodata, s.rules, s.store_url, s.clock) == (None, None, "", "system")
    assert (s.taxonomy_extra, s.allowed_origins) == ([], [])
    assert (s.api_max_bytes, s.photo_max_bytes) == (64 * 1024, 10 * 1024 * 1024)
    assert s.photo_root == tmp_path / "d" / "photos"
    assert (tmp_path / "d").is_dir()  # from_env creates the data directory
    assert s.token_config() == {"GRID_MODE": "embedded"}


def test_each_type_is_parsed_from_the_environment(monkeypatch, tmp_path):
    env = {"GRID_WEB_PORT": "7001", "GRID_PARTITIONS": "12", "GRID_TICK_SECONDS": "0.25",
           "GRID_STUCK_SECONDS": "45", "GRID_API_ACTION_WAIT": "0",
           "GRID_PROJECTOR": "false", "GRID_FAST_GROUP": "0", "GRID_DASHBOARD_PUBLIC": "yes",
           "GRID_TAXONOMY_EXTRA": os.pathsep.join(["a.yaml", "", "b.yaml"]),
           "GRID_ALLOWED_ORIGINS": "https://grid.example.org/, https://b.example ,",
           "GRID_DASHBOARD_DISTRICT": "310110", "GRID_DATA_DIR": str(tmp_path),
           "GRID_PHOTO_DIR": str(tmp_path / "p"), "GRID_TOKENS": "[]", "GRID_MODE": "production"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings.from_env()
    assert (s.web_port, s.partitions) == (7001, 12)
    assert (s.tick_seconds, s.stuck_seconds, s.api_action_wait) == (0.25, 45.0, 0.0)
    assert (s.projector, s.fast_group, s.dashboard_public) == (False, False, True)
    assert s.taxonomy_extra == ["a.yaml", "b.yaml"]  # split on os.pathsep, empties dropped
    assert s.allowed_origins == ["https://grid.example.org", "https://b.example"]
    assert (s.dashboard_district, s.data_dir) == ("310110", str(tmp_path))
    assert s.photo_root == tmp_path / "p"
    assert s.token_config() == {"GRID_MODE": "production", "GRID_TOKENS": "[]"}
    assert "[]" not in repr(s)  # the tokens are not printed with the settings


@pytest.mark.parametrize("raw,want", [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), ("on", True),
    ("0", False), ("false", False), ("No", False), ("off", False),
])
def test_boolean_spellings(monkeypatch, tmp_path, raw, want):
    monkeypatch.setenv("GRID_PROJECTOR", raw)
    assert Settings.read(data_dir=str(tmp_path)).projector is want


def test_an_empty_variable_counts_as_unset(monkeypatch, tmp_path):
    for name in ("GRID_WEB_PORT", "GRID_PROJECTOR", "GRID_GEODATA", "GRID_DASHBOARD_DISTRICT"):
        monkeypatch.setenv(name, "")
    s = Settings.read(data_dir=str(tmp_path))
    assert (s.web_port, s.projector, s.geodata, s.dashboard_district) == (6066, True, None, None)


def test_overrides_win_and_none_is_ignored(monkeypatch, tmp_path):
    monkeypatch.setenv("GRID_WEB_PORT", "7001")
    monkeypatch.setenv("GRID_PARTITIONS", "12")
    s = Settings.from_env(web_port=7100, partitions=None, data_dir=str(tmp_path))
    assert (s.web_port, s.partitions) == (7100, 12)
    with pytest.raises(SettingsError, match=r"GRID_WEB_PROT='x': extra inputs are not"):
        Settings.read(web_prot="x")  # a misspelt override is an error, not ignored


def test_the_broker_gets_its_scheme(monkeypatch, tmp_path):
    monkeypatch.setenv("GRID_BROKER", "k1:9092,k2:9092")
    assert Settings.read(data_dir=str(tmp_path)).broker == "kafka://k1:9092,k2:9092"
    assert Settings.read(broker="kafka://h:1").broker == "kafka://h:1"


def test_fetch_wait_by_broker_kind(monkeypatch, tmp_path):
    monkeypatch.setenv("GRID_BROKER_KIND", "tansu")
    assert Settings.read(data_dir=str(tmp_path)).fetch_wait_ms == 25
    monkeypatch.setenv("GRID_BROKER_KIND", "kafka")
    assert Settings.read(data_dir=str(tmp_path)).fetch_wait_ms == 500
    monkeypatch.setenv("GRID_FETCH_WAIT_MS", "80")
    assert Settings.read(data_dir=str(tmp_path)).fetch_wait_ms == 80


def test_lowercase_variables_are_read_too(monkeypatch, tmp_path):
    monkeypatch.setenv("grid_web_port", "7002")  # the prefix and names are case-insensitive
    assert Settings.read(data_dir=str(tmp_path)).web_port == 7002


def test_a_bad_value_names_the_variable_and_what_is_expected(monkeypatch, tmp_path):
    monkeypatch.setenv("GRID_WEB_PORT", "abc")
    monkeypatch.setenv("GRID_PROJECTOR", "maybe")
    with pytest.raises(SettingsError) as err:
        Settings.from_env(data_dir=str(tmp_path / "never"))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == ("bad configuration: GRID_WEB_PORT='abc': input should be a valid integer, "
                   "unable to parse string as an integer; GRID_PROJECTOR='maybe': input "
                   "should be a valid boolean, unable to interpret input")
    assert not (tmp_path / "never").exists()  # nothing created for a refused configuration


def test_the_worker_stops_with_one_line_for_a_bad_value(monkeypatch, tmp_path):
    from grid.cli import main

    monkeypatch.setenv("GRID_WEB_PORT", "abc")
    out = CliRunner().invoke(main, ["worker", "--data-dir", str(tmp_path)])
    assert out.exit_code == 1
    assert out.output.strip().splitlines() == [
        "Error: bad configuration: GRID_WEB_PORT='abc': input should be a valid integer, "
        "unable to parse string as an integer"]
    assert out.exception is not None and isinstance(out.exception, SystemExit)


def test_grid_tokens_reads_the_tokens_through_the_model(monkeypatch):
    from grid.cli import main

    monkeypatch.setenv("GRID_MODE", "production")
    out = CliRunner().invoke(main, ["tokens"])
    assert out.exit_code == 0 and "demo-command-center" not in out.output
    monkeypatch.setenv("GRID_TAXONOMY_EXTRA", "x")
    monkeypatch.setenv("GRID_BATCH_SIZE", "many")
    out = CliRunner().invoke(main, ["tokens"])
    assert (out.exit_code, out.output.strip()) == (1, (
        "Error: bad configuration: GRID_BATCH_SIZE='many': input should be a valid "
        "integer, unable to parse string as an integer"))
