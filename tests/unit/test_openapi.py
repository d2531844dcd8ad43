"""The OpenAPI document is generated from the route declarations: the committed file is the
generated one, it is a valid OpenAPI 3.1 document, and every route declares exactly the
statuses its handler's code answers (read with ast, following the helpers it uses)."""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
import typing
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from grid.models import HTTP_ACTIONS, ActionRequest
from streams.openapi import DOC_FILE, openapi, openapi_path, path_names, render, spec
from streams.web import ROUTES
from streams.web.actions import parse_action
from streams.web.common import LIMIT_DEFAULT, LIMIT_MAX, LIMIT_MIN, Api, HttpError, parse_limit

ANSWERS = {"json_response", "answer", "Response", "FileResponse"}  # 200 without a status=
ERRORS = {"HttpError", "_error"}  # an error answer, status first (streams.photos: _error)


def _ints(expr: ast.expr | None, fn_tree: ast.AST) -> set[int]:
    """The int constants ``expr`` may be: a literal, either arm of ``a if c else b``, or a
    local name's assigned values."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, int):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        return _ints(expr.body, fn_tree) | _ints(expr.orelse, fn_tree)
    if isinstance(expr, ast.Name):
        return {v for node in ast.walk(fn_tree) if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name) and t.id == expr.id
                for v in _ints(node.value, fn_tree)}
    return set()


def _callee(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _helper(node: ast.AST, fn: Callable[..., Any]) -> Callable[..., Any] | None:
    """The function of the HTTP code (streams.web, streams.photos) a name refers to: a global
    of ``fn``'s module, ``api.<method>`` (:class:`Api`), ``api.photos.<method>`` (the class of
    the attribute as :class:`Api` annotates it) or ``self.<method>`` (``fn``'s own class)."""
    target = None
    if isinstance(node, ast.Name):
        target = fn.__globals__.get(node.id)
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id == "api":
            target = getattr(Api, node.attr, None)
        elif node.value.id == "self" and "." in fn.__qualname__:
            owner = fn.__globals__.get(fn.__qualname__.split(".")[0])
            target = getattr(owner, node.attr, None)
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
            and isinstance(node.value.value, ast.Name) and node.value.value.id == "api":
        owner = typing.get_type_hints(Api).get(node.value.attr)  # e.g. photos: PhotoRoutes
        target = getattr(owner, node.attr, None)
    if inspect.isfunction(target) and target.__module__.startswith(
            ("streams.web", "streams.photos")):
        return target
    return None



def answered(fn: Callable[..., Any], seen: set[Any] | None = None) -> set[int]:
    """The statuses ``fn``'s code answers: ``HttpError(status, …)``, ``status=`` of an answer
    (200 without one), in ``fn`` and every helper of streams.web it names (called, or passed
    on as to ``asyncio.to_thread``)."""
    seen = set() if seen is None else seen
    if fn in seen:
        return set()
    seen.add(fn)
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _callee(node)
            status = next((k.value for k in node.keywords if k.arg == "status"), None)
            if name in ERRORS:
                out |= _ints(node.args[0], tree)
            elif name in ANSWERS:
                if status is None and name == "json_response" and len(node.args) > 1:
                    status = node.args[1]
                out |= _ints(status, tree) if status is not None else {200}
        if isinstance(node, ast.Name | ast.Attribute) and (h := _helper(node, fn)) is not None:
            out |= answered(h, seen)
    return out


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_each_route_declares_the_statuses_its_code_answers(route):
    found = answered(route.handler)
    declared = set(route.responses)
    assert found == declared, (
        f"{route.method} {route.path}: the code answers {sorted(found)}, the declaration "
        f"says {sorted(declared)}")


def test_the_status_reader_sees_raises_branches_and_helpers():
    from streams.web import actions, cases, meta

    assert answered(meta.health) == {200, 503}  # status=503 if failing else 200
    assert {403, 409} <= answered(actions.post_action)  # status = 403 if … else 409
    assert 422 in answered(cases.list_cases)  # parse_limit, passed to asyncio.to_thread
    assert {401, 403} <= answered(cases.get_case)  # api.principal, guard
    from streams.web import photos  # api.photos.upload -> self._upload -> _error(...)

    assert answered(photos.upload_photo) == {201, 401, 403, 413, 422}


def test_each_route_has_a_summary_and_declares_its_path_parameters():
    for r in ROUTES:
        assert r.summary and r.summary[0].isupper(), f"{r.path}: no docstring summary"
        in_path = {p.name for p in r.params if p.where == "path"}
        assert in_path <= set(path_names(r.path))
        assert set(path_names(r.path)) - in_path <= {"fmt"}, r.path


def test_committed_file_is_the_generated_document():
    assert DOC_FILE.read_text() == render(), \
        "docs/api/openapi.json is stale: grid openapi --out docs/api/openapi.json"
    result = CliRunner().invoke(openapi, ["--check"])
    assert result.exit_code == 0 and "current" in result.output


def test_document_is_valid_openapi_and_names_every_route():
    from openapi_spec_validator import validate

    doc = json.loads(render())
    validate(doc)
    for r in ROUTES:
        if r.in_document:
            op = doc["paths"][openapi_path(r.path)[0]][r.method.lower()]
            assert set(op["responses"]) == {str(s) for s in r.responses}
            assert op["summary"] == r.summary
    actions = doc["paths"]["/api/v1/cases/{case_id}/actions"]["post"]
    assert actions["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ActionRequest"}
    assert doc["paths"]["/api/v1/reports"]["post"]["requestBody"]["content"][
        "application/json"]["schema"] == {"$ref": "#/components/schemas/Report"}
    for name in ("Case", "CaseEvent", "WorkOrder", "DeadLetter", "Report", "ActionRequest",
                 "ActionResult", "Error", "Page"):
        assert name in doc["components"]["schemas"], name
    assert doc["paths"]["/api/v1/health"]["get"]["security"] == []


def test_limit_range_in_the_document_is_the_one_the_code_enforces():
    limit = next(p for p in spec()["paths"]["/api/v1/cases"]["get"]["parameters"]
                 if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (
        LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT)
    assert parse_limit({}) == LIMIT_DEFAULT
    assert parse_limit({"limit": str(LIMIT_MAX)}) == LIMIT_MAX
    for bad in (str(LIMIT_MIN - 1), str(LIMIT_MAX + 1), "ten"):
        with pytest.raises(HttpError) as err:
            parse_limit({"limit": bad})
        assert err.value.status == 422 and err.value.body["errors"][0]["field"] == "limit"


def test_action_schema_is_the_model_that_validates():
    schema = spec()["components"]["schemas"]["ActionRequest"]
    assert schema == ActionRequest.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}")
    assert schema["additionalProperties"] is False
    assert schema["properties"]["action"]["enum"] == [a.value for a in HTTP_ACTIONS]
    assert "merge" not in schema["properties"]["action"]["enum"]
    assert set(schema["properties"]) == set(ActionRequest.model_fields)


@pytest.mark.parametrize(("body", "message", "errors"), [
    ([1], "expected a JSON object with at least `action`",
     [{"field": "body", "message": "not a JSON object"}]),
    ({"action": "accept", "colour": 1, "b": 2}, "unknown field(s) b, colour",
     [{"field": "b", "message": "is not an action field"},
      {"field": "colour", "message": "is not an action field"}]),
    ({"action": "fly"}, "unknown action 'fly'", None),
    ({"action": "merge"}, "unknown action 'merge'", None),
    ({}, "unknown action None", None),
])
def test_action_body_refused_before_anything_else(body, message, errors):
    with pytest.raises(HttpError) as err:
        parse_action(body)
    assert err.value.status == 422 and err.value.body["error"] == message
    got = err.value.body["errors"]
    if errors is None:
        assert got[0]["field"] == "action" and "dispose" in got[0]["message"]
        assert "merge" not in got[0]["message"]
    else:
        assert got == errors


def test_action_bad_value_is_a_422_kept_for_after_the_checks():
    req, invalid = parse_action({"action": "grant_extension", "extension_minutes": -5})
    assert req is None and invalid.status == 422 and invalid.body["error"] == "invalid action"
    assert invalid.body["errors"] == [{"field": "extension_minutes",
                                       "message": "Input should be greater than 0"}]
    req, invalid = parse_action({"action": "verify", "passed": True, "reason": "ok"})
    assert invalid is None and req.action == "verify" and req.passed is True
    req, invalid = parse_action({"action": "accept", "command_id": ""})
    assert invalid is None and req.command_id is None  # empty: the API makes a new one


def test_install_registers_exactly_the_declared_routes(tmp_path, monkeypatch):
    """``install`` wires exactly the declarations, and the document lists every declared
    route but the trailing-slash alias of the index."""
    from types import SimpleNamespace

    from aiohttp import web

    from grid.taxonomy import load_taxonomy
    from streams.settings import Settings
    from streams.web import install

    monkeypatch.delenv("GRID_MODE", raising=False)
    web_app = web.Application()
    grid_app = SimpleNamespace(
        app=SimpleNamespace(web=SimpleNamespace(web_app=web_app)),
        engine=SimpleNamespace(taxonomy=load_taxonomy()),
        settings=Settings.from_env(data_dir=str(tmp_path)))
    api = install(grid_app)
    assert grid_app.api is api and len(api.registry) > 0  # the demo tokens
    registered = {(r.method, r.resource.canonical) for r in web_app.router.routes()}
    declared = {(r.method, openapi_path(r.path)[0]) for r in ROUTES}
    assert declared <= registered
    assert registered == declared
    assert {("POST", "/api/v1/photos"), ("GET", "/api/v1/photos/{name}")} <= declared
    doc = spec()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == declared - {("GET", "/api/v1/")}
