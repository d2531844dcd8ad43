"""The OpenAPI 3.1 document of the HTTP API, built from the route declarations
(:data:`streams.web.ROUTES`: method, path, handler docstring, parameters with their ranges,
body model, declared statuses) and the pydantic models' JSON Schemas. Served at
``/api/v1/openapi.json``; ``grid openapi --out docs/api/openapi.json`` writes the committed
copy (a unit test keeps it in step)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from grid.models import Case, CaseEvent, Report, WorkOrder
from grid.service import DeadLetter
from streams.web.bodies import Error, Open311Errors

REF = "#/components/schemas/{model}"
DOC_FILE = Path(__file__).resolve().parents[1] / "docs" / "api" / "openapi.json"
# Wire models a client meets beside the API's own bodies (the Kafka topics' records).
EXTRA_MODELS: tuple[type[BaseModel], ...] = (Case, CaseEvent, WorkOrder, DeadLetter, Report)
_PLACEHOLDER = re.compile(r"\{(\w+)(?::([^}]*))?\}")


def openapi_path(path: str) -> tuple[str, dict[str, str]]:
    """An aiohttp path as an OpenAPI path, and the regex of each ``{name:regex}``."""
    regexes = {m.group(1): m.group(2) for m in _PLACEHOLDER.finditer(path) if m.group(2)}
    return _PLACEHOLDER.sub(lambda m: "{" + m.group(1) + "}", path), regexes


def path_names(path: str) -> list[str]:
    """The placeholders of an aiohttp path, in order."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(path)]


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


def _schemas(routes: list[Any]) -> dict[str, Any]:
    """Component schemas of every model the routes name (bodies in validation mode, answers
    in serialisation mode) and of :data:`EXTRA_MODELS`."""
    wanted: dict[tuple[type[BaseModel], str], None] = {}
    for r in routes:
        if r.body is not None:
            wanted[(r.body, "validation")] = None
        for answer in r.responses.values():
            if isinstance(answer, tuple) and answer[1] is not None:
                wanted[(answer[1], "serialization")] = None
    for m in (*EXTRA_MODELS, Error, Open311Errors):
        wanted.setdefault((m, "serialization"), None)
    # one mode per model: the document names each model once
    seen: dict[type[BaseModel], str] = {}
    for m, mode in wanted:
        seen.setdefault(m, mode)
    _, top = models_json_schema(list(seen.items()), by_alias=True, ref_template=REF)
    return dict(sorted(top.get("$defs", {}).items()))


def _param(p: Any) -> dict[str, Any]:
    return {"name": p.name, "in": p.where, "required": p.required or p.where == "path",
            "description": p.description, "schema": p.schema}


def _operation(r: Any) -> dict[str, Any]:
    path, regexes = openapi_path(r.path)
    declared = {p.name for p in r.params}
    params = [_param(p) for p in r.params]
    for name in path_names(r.path):
        if name not in declared:  # {fmt:json|xml}: the answer's format
            params.append({"name": name, "in": "path", "required": True,
                           "description": "the answer's format",
                           "schema": {"type": "string", "enum": regexes[name].split("|")}})
    error_model = Open311Errors if r.open311 else Error
    responses: dict[str, Any] = {}
    for status, answer in sorted(r.responses.items()):
        desc, model = answer if isinstance(answer, tuple) else (answer, None)
        if model is None and status >= 400:
            model = error_model
        out: dict[str, Any] = {"description": desc}
        if model is not None:
            out["content"] = {"application/json": {"schema": _ref(model)}}
        responses[str(status)] = out
    op: dict[str, Any] = {"operationId": r.handler.__name__, "summary": r.summary,
                          "responses": responses}
    if r.description:
        op["description"] = r.description
    if r.tag:
        op["tags"] = [r.tag]
    if params:
        op["parameters"] = params
    if r.body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _ref(r.body)}}}
    elif r.body_content is not None:
        op["requestBody"] = {"required": True, "content": r.body_content}
    elif r.body_description:
        op["requestBody"] = {"required": True, "description": r.body_description, "content": {
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            "application/json": {"schema": {"type": "object"}}}}
    if r.public:
        op["security"] = []
    return path, op


@cache
def spec() -> dict[str, Any]:
    """The OpenAPI document (``servers``: the default local worker)."""
    from streams.web import ROUTES

    routes = [r for r in ROUTES if r.in_document]
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        path, op = _operation(r)
        paths.setdefault(path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "grid case-routing engine API", "version": "1",
                 "description": "Reports, cases, actions and work orders (城市网格化管理), plus "
                                "Open311 GeoReport v2 under /open311/v2. Bearer tokens carry "
                                "a role and a scope; see docs/api.md."},
        "servers": [{"url": "http://127.0.0.1:6066"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": _schemas(routes)},
        "paths": paths,
    }


def render() -> str:
    """The document as the committed file holds it."""
    return json.dumps(spec(), ensure_ascii=False, indent=1, sort_keys=True) + "\n"


@click.command("openapi")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write it to this file (the committed copy: docs/api/openapi.json).")
@click.option("--check", is_flag=True,
              help="Exit 1 when the committed copy differs from the generated document.")
def openapi(out: Path | None, check: bool) -> None:
    """Print (or write) the OpenAPI document of the HTTP API, generated from its routes."""
    text = render()
    if check:
        if not DOC_FILE.exists() or DOC_FILE.read_text() != text:
            raise click.ClickException(f"{DOC_FILE} is stale: grid openapi --out {DOC_FILE}")
        click.echo(f"{DOC_FILE}: current")
    elif out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        click.echo(out)
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":
    openapi()
