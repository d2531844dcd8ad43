"""The taxonomy data files, the loader's validation of extensions, and `grid taxonomy`."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from grid.cli import main
from grid.taxonomy import (
    DATA_DIR,
    TaxonomyError,
    default_taxonomy,
    extension_files,
    load_taxonomy,
)

TYPE_FIELDS = {
    "code", "name_zh", "name_en", "kind", "category", "department", "handling",
    "deadlines", "calendar", "closing_standard", "keywords_zh", "keywords_en",
    "national_class", "national_subclasses",
}  # fmt: skip

SEED_TYPES = {
    "0101": ("井盖", "key_supervision"),
    "0102": ("架空线坠落", "key_supervision"),
    "0601": ("零星暴露垃圾", "self_disposable"),
    "0602": ("楼道乱堆物", "ordinary"),
    "0603": ("毁绿占绿", "ordinary"),
    "0604": ("占用公共部位", "ordinary"),
    "0701": ("乱张贴", "self_disposable"),
    "0702": ("违规户外广告", "legal_process"),
    "0801": ("违法建筑", "legal_process"),
    "0901": ("集聚无序设摊", "key_supervision"),
}

FIXED_DEPARTMENTS = [
    "water",
    "drainage",
    "power",
    "gas",
    "telecom",
    "roads",
    "traffic_police",
    "transport",
    "sanitation",
    "landscaping",
    "urban_enforcement",
    "housing",
    "property_management",
    "street_office",
    "public_security",
    "fire",
    "emergency",
    "market_regulation",
    "ecology",
    "water_affairs",
    "planning",
    "health",
    "education",
    "command_center",
]


@pytest.fixture(scope="module")
def tax():
    return default_taxonomy()


def test_ten_categories_five_of_each_kind(tax):
    assert list(tax.categories) == [f"{i:02d}" for i in range(1, 11)]
    kinds = Counter(c.kind for c in tax.categories.values())
    assert kinds == {"component": 5, "event": 5}
    assert tax.categories["01"].name_zh == "公用设施"
    assert tax.categories["10"].name_zh == "突发事件"


def test_120_unique_types_plus_12_catch_alls_in_the_data_file():
    raw = yaml.safe_load((DATA_DIR / "taxonomy.yaml").read_text(encoding="utf-8"))
    codes = [t["code"] for t in raw["types"]]
    assert len(codes) == 132
    assert len(set(codes)) == 132
    assert len(default_taxonomy().types) == 132
    catch_alls = [c for c in codes if c.endswith(("98", "99"))]
    assert len(catch_alls) == 12


def test_types_are_consistent_with_their_category(tax):
    for t in tax.types.values():
        assert re.fullmatch(r"\d{4}", t.code)
        assert t.code[:2] == t.category
        assert t.kind == tax.categories[t.category].kind
        assert t.department in tax.departments
        assert t.keywords_zh and t.keywords_en, t.code
        assert {"dispatch", "dispose"} <= set(t.deadlines)
        assert all(re.fullmatch(r"\d+(m|h|d)", v) for v in t.deadlines.values())
    # every category is populated
    assert all(tax.types_in(c) for c in tax.categories)


@pytest.mark.parametrize(("code", "expected"), SEED_TYPES.items())
def test_seed_named_types_have_their_handling_class(tax, code, expected):
    name_part, handling = expected
    t = tax.type(code)
    assert name_part in t.name_zh
    assert t.handling == handling


def test_handling_classes_carry_their_limits(tax):
    by_handling: dict[str, list] = {}
    for t in tax.types.values():
        by_handling.setdefault(t.handling, []).append(t)
    assert set(by_handling) == {"ordinary", "key_supervision", "legal_process", "self_disposable"}
    for t in by_handling["key_supervision"]:
        assert t.deadlines["dispose"] == "2h" and t.calendar == "24h", t.code
    for t in by_handling["legal_process"]:
        assert t.calendar == "working", t.code
        assert t.deadlines["dispose"].endswith("d") and int(t.deadlines["dispose"][:-1]) >= 15
    assert tax.type("0201").deadlines["dispose"] == "3d"  # seed 004: ordinary repairs, 3 days


def test_fixed_department_ids_exist(tax):
    missing = [d for d in FIXED_DEPARTMENTS if d not in tax.departments]
    assert missing == []
    assert all(d.name_zh and d.name_en for d in tax.departments.values())


def test_unknown_type_code_raises_keyerror_naming_it(tax):
    with pytest.raises(KeyError, match="9999"):
        tax.type("9999")


def test_default_taxonomy_is_cached():
    assert default_taxonomy() is default_taxonomy()


def test_report_validation_uses_the_taxonomy(tax):
    from pydantic import ValidationError

    from grid.models import Report

    base = {
        "report_id": "8d7e3f7e-1111-4c55-9a55-2b1f0d9e7a10",
        "source": "supervisor",
        "reporter_id": "S001",
        "reported_at": "2024-05-01T10:00:00+08:00",
        "location": {"lon": 121.47, "lat": 31.23},
    }
    ok = Report.model_validate({**base, "type_code": "0101"}, context={"taxonomy": tax})
    assert ok.type_code == "0101"
    with pytest.raises(ValidationError, match="unknown type code '9999'"):
        Report.model_validate({**base, "type_code": "9999"}, context={"taxonomy": tax})


# --- extensions -------------------------------------------------------------------------

GOOD_EXTENSION = """
departments:
  - {id: river_chief, name_zh: 河长办, name_en: River chief office}
categories:
  - {code: '11', name_zh: 河湖管理, name_en: Rivers and lakes, kind: event}
types:
  - code: '1101'
    name_zh: 河道排污
    name_en: Sewage discharged into a river
    kind: event
    category: '11'
    national_class: '01'
    national_subclasses: ['0116']
    department: river_chief
    handling: ordinary
    deadlines: {dispatch: 30m, dispose: 1d, verify: 4h}
    calendar: 24h
    closing_standard: 排污口封堵
    keywords_zh: [排污口, 河道排污]
    keywords_en: [sewage outfall]
  - code: '0698'
    name_zh: 宠物粪便
    name_en: Dog fouling
    kind: event
    category: '06'
    national_class: '01'
    national_subclasses: ['0116']
    department: sanitation
    handling: self_disposable
    deadlines: {dispatch: 30m, dispose: 2h}
    calendar: 24h
    closing_standard: 清除干净
    keywords_zh: [狗粪便]
    keywords_en: [dog fouling]
"""

_TYPE = """
types:
  - code: '{code}'
    name_zh: 测试类型
    name_en: Test type
    kind: {kind}
    category: '{category}'
    national_class: '01'
    national_subclasses: ['0197']
    department: {department}
    handling: {handling}
    deadlines: {deadlines}
    calendar: {calendar}
    closing_standard: 完成
    keywords_zh: [测试]
    keywords_en: [test]
"""
_OK = {
    "code": "0697", "kind": "event", "category": "06", "department": "sanitation",
    "handling": "ordinary", "deadlines": "{dispatch: 30m, dispose: 1d}", "calendar": "24h",
}  # fmt: skip


def _type(**changes: str) -> str:
    return _TYPE.format(**{**_OK, **changes})


def _write(tmp_path: Path, text: str, name: str = "ext.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_extension_adds_category_types_and_department(tmp_path):
    tax = load_taxonomy([_write(tmp_path, GOOD_EXTENSION)])
    assert len(tax.categories) == 11 and tax.categories["11"].kind == "event"
    assert len(tax.types) == 134
    assert tax.type("1101").department == "river_chief"
    assert tax.type("1101").deadlines["verify"] == "4h"
    assert tax.type("0698").category == "06"
    assert tax.national_class("1101").name_zh == "市容环境"
    assert list(tax.types)[-1] == "1101"  # kept in code order
    assert len(default_taxonomy().types) == 132  # the base is untouched


def test_shipped_extensions_load_on_top():
    files = extension_files()
    assert files, "grid/data/extensions/ should ship at least one example"
    tax = load_taxonomy(files)
    assert len(tax.types) > 132
    new = [t for t in tax.types.values() if int(t.category) > 10]
    assert {t.category for t in new} >= {"11", "12", "13", "14"}
    assert tax.type("1403").department == "health"  # unlicensed clinics (seed 003 §4)


BROKEN = {
    "duplicate_base_code": (_type(code="0101", category="01", kind="component"),
                            "type '0101'", "already defined"),
    "unknown_category": (_type(code="1201", category="12"), "type '1201'", "unknown category"),
    "prefix_mismatch": (_type(code="0797"), "type '0797'", "must start with its category"),
    "kind_mismatch": (_type(kind="component"), "type '0697'", "kind 'component'"),
    "unknown_department": (_type(department="wizards"), "type '0697'", "unknown department"),
    "bad_handling": (_type(handling="urgent"), "types[0] ('0697')", "handling"),
    "bad_duration": (_type(deadlines="{dispatch: 30m, dispose: 3 days}"), "types[0] ('0697')",
                     "'3 days' is not a duration"),
    "missing_stage": (_type(deadlines="{dispatch: 30m}"), "('0697')", "missing stage(s) dispose"),
    "unknown_stage": (_type(deadlines="{dispatch: 30m, dispose: 1d, lunch: 1h}"), "('0697')",
                      "unknown stage 'lunch'"),
    "bad_calendar": (_type(calendar="weekly"), "('0697')", "calendar"),
    "unquoted_code": (_type(code="0644").replace("'0644'", "0644"), "types[0]",
                      "quote codes"),  # YAML reads 0644 as the octal integer 420
    "missing_field": (_type().replace("    closing_standard: 完成\n", ""), "('0697')",
                      "closing_standard: required field is missing"),
    "unknown_field": (_type().replace("calendar: 24h", "calendar: 24h\n    colour: red"),
                      "('0697')", "colour"),
    "duplicate_category": ("categories:\n  - {code: '06', name_zh: 重复, name_en: Dup, "
                           "kind: event}\n", "category '06'", "already defined"),
    "duplicate_department": ("departments:\n  - {id: water, name_zh: 水, name_en: Water}\n",
                             "department 'water'", "already defined"),
    "unknown_top_key": ("typez: []\n", "ext.yaml", "unknown top-level key(s) typez"),
    "not_a_mapping": ("- just\n- a list\n", "ext.yaml", "expected a mapping"),
    "invalid_yaml": ("types: [unclosed\n", "ext.yaml", "not valid YAML"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_extension_fails_naming_file_and_entry(tmp_path, case):
    text, entry, problem = BROKEN[case]
    path = _write(tmp_path, text)
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy([path])
    message = str(err.value)
    assert str(path) in message
    assert entry in message
    assert problem in message


def test_missing_extension_file_is_named(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(TaxonomyError, match=r"nope\.yaml: cannot read"):
        load_taxonomy([path])


def test_two_extensions_may_not_define_the_same_code(tmp_path):
    a = _write(tmp_path, _type(), "a.yaml")
    b = _write(tmp_path, _type(), "b.yaml")
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy([a, b])
    assert "b.yaml: type '0697'" in str(err.value)
    assert "already defined in" in str(err.value) and "a.yaml" in str(err.value)


# --- CLI --------------------------------------------------------------------------------


def test_cli_json_lists_categories_and_types_with_all_fields():
    result = CliRunner().invoke(main, ["taxonomy", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["categories"]) == 10
    assert {c["kind"] for c in data["categories"]} == {"component", "event"}
    assert len(data["types"]) == 132
    assert len({t["code"] for t in data["types"]}) == 132
    assert all(set(t) == TYPE_FIELDS for t in data["types"])
    assert len(data["national_classes"]) == 12
    handling = {t["code"]: t["handling"] for t in data["types"]}
    assert {c: handling[c] for c in SEED_TYPES} == {c: h for c, (_, h) in SEED_TYPES.items()}


def test_cli_table_is_readable():
    result = CliRunner().invoke(main, ["taxonomy"])
    assert result.exit_code == 0, result.output
    assert "0101" in result.output and "井盖缺失/损坏" in result.output
    assert "01 公用设施 Public facilities [component, 17 types]" in result.output
    row = next(x for x in result.output.splitlines() if x.startswith("0914 "))
    assert "事件·街面秩序 0514" in row  # its national class and subclass
    assert result.output.rstrip().endswith(
        "10 categories (component, event), 132 types, "
        f"{len(default_taxonomy().departments)} departments"
    )


def test_cli_extra_files(tmp_path):
    good = _write(tmp_path, GOOD_EXTENSION, "good.yaml")
    result = CliRunner().invoke(main, ["taxonomy", "--format", "json", "--extra", str(good)])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["types"]) == 134

    bad = _write(tmp_path, _type(code="0696", department="wizards"), "bad.yaml")
    result = CliRunner().invoke(main, ["taxonomy", "--extra", str(good), "--extra", str(bad)])
    assert result.exit_code == 1
    assert "bad.yaml: type '0696'" in result.output
    assert "unknown department 'wizards'" in result.output


# --- national classification (GB/T 30428.2) ----------------------------------------------


def test_every_type_maps_to_a_national_class_of_its_kind(tax):
    classes = {(c.kind, c.code) for c in tax.national.classes.values()}
    assert len(classes) == 12
    for t in tax.types.values():
        assert (t.kind, t.national_class) in classes, t.code
        assert t.national_subclasses, t.code
        assert all(s.startswith(t.national_class) for s in t.national_subclasses), t.code
    assert tax.national_class("0101").label_zh == "部件·公用设施"
    assert tax.national_class("0901").label_zh == "事件·街面秩序"
    assert tax.national_class("1001").label_zh == "事件·突发事件"
    assert tax.national_class("0998").label_zh == "事件·其他"


def test_each_national_class_has_one_catch_all_other_type(tax):
    others = {}
    for t in tax.types.values():
        if t.name_zh.startswith("其他"):
            others.setdefault((t.kind, t.national_class), []).append(t.code)
    assert len(others) == 12 and all(len(v) == 1 for v in others.values())
    assert others[("component", "06")] == ["0599"] and others[("event", "06")] == ["0998"]
    assert tax.type("0199").department == "street_office"


def test_crosswalk_file_covers_exactly_the_base_types(tax):
    import csv

    with (DATA_DIR / "national_crosswalk.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["type_code"] for r in rows] == list(tax.types)
    row = next(r for r in rows if r["type_code"] == "0914")
    assert (row["national_class"], row["national_subclasses"]) == ("05", "0514")


def test_object_code_names_the_owner_class(tax):
    from grid.national import parse_object_code

    oc = parse_object_code("3101100101000123")
    assert (oc.district, oc.subclass, oc.serial) == ("310110", "0101", "000123")
    assert tax.object_owner("3101100101000123") == "water"  # 上水井盖
    assert tax.object_owner("3101100102000001") == "drainage"  # 污水井盖
    assert tax.object_owner("3101100111000001") == "gas"  # 燃气井盖
    assert tax.object_owner("3101100201000001") is None  # not an owned subclass
    assert parse_object_code("SS-0001") is None and tax.object_owner(None) is None


def test_extension_type_without_national_class_is_refused(tmp_path):
    text = _type(code="0695").replace("    national_class: '01'\n", "").replace(
        "    national_subclasses: ['0197']\n", "")
    with pytest.raises(TaxonomyError, match=r"type '0695'.*no national class"):
        load_taxonomy([_write(tmp_path, text)])
    bad = _type(code="0694").replace("national_class: '01'", "national_class: '07'")
    with pytest.raises(TaxonomyError, match=r"unknown national event class '07'"):
        load_taxonomy([_write(tmp_path, bad, "bad.yaml")])
