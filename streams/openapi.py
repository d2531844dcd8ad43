"""The OpenAPI 3.1 document of the HTTP API, built from the routes' contract and the pydantic
wire models. Served at ``/api/v1/openapi.json``; ``python -m streams.openapi`` writes
docs/api/openapi.json (a unit test keeps the file in step)."""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import Any

from grid.models import Action, Case, CaseEvent, CaseState, Report

REF = "#/components/schemas/{model}"


def _schemas() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in (Report, Case, CaseEvent):
        s = model.model_json_schema(by_alias=True, ref_template=REF)
        out.update(s.pop("$defs", {}))
        out[model.__name__] = s
    out["Error"] = {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "message": {"type": "string"}}}},
        "state": {"type": "string", "description": "409: the case's state"},
        "action": {"type": "string", "description": "409: the refused action"}}}
    out["ActionRequest"] = {"type": "object", "required": ["action"],
                            "additionalProperties": False, "properties": {
        "action": {"enum": [a.value for a in Action if a not in (Action.MERGE, Action.WARN)]},
        "reason": {"type": "string", "maxLength": 2000},
        "evidence_photos": {"type": "array", "items": {"type": "string"}, "maxItems": 9},
        "passed": {"type": "boolean", "description": "verify: pass or fail"},
        "extension_minutes": {"type": "integer", "minimum": 1},
        "department": {"type": "string", "description": "dispatch target; close_out_part: "
                       "the assisting department whose part is closed out"},
        "unit": {"type": "string", "description": "dispatch: the target's registry unit"},
        "satisfaction": {"enum": ["satisfied", "basically_satisfied", "not_satisfied"],
                         "description": "callback (回访); reason is the citizen's comment"},
        "type_code": {"type": "string", "pattern": "^\\d{4}$", "description": "classify"},
        "stage": {"enum": ["file", "dispatch", "dispose", "verify"]},
        "command_id": {"type": "string", "description": "idempotency key (default: new)"}}}
    out["ActionResult"] = {"type": "object", "properties": {
        "command_id": {"type": "string"}, "case_id": {"type": "string"},
        "action": {"type": "string"}, "status": {"enum": ["applied", "accepted"]},
        "state": {"type": "string"},
        "events": {"type": "array", "items": {"$ref": REF.format(model="CaseEvent")}},
        "predicted_events": {"type": "array",
                             "items": {"$ref": REF.format(model="CaseEvent")}}}}
    out["Page"] = {"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "object"}}, "count": {"type": "integer"},
        "total": {"type": ["integer", "null"]}, "next_cursor": {"type": ["string", "null"]}}}
    out["Open311Error"] = {"type": "array", "items": {"type": "object", "properties": {
        "code": {"type": "integer"}, "description": {"type": "string"}}}}
    return out


def _json(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": REF.format(model=ref)}}}}


def _err(desc: str, ref: str = "Error") -> dict[str, Any]:
    return {"description": desc, **_json(ref)}


def _q(name: str, desc: str, typ: str = "string", where: str = "query",
       required: bool = False, fmt: str | None = None) -> dict[str, Any]:
    schema = {"type": typ} | ({"format": fmt} if fmt else {})
    return {"name": name, "in": where, "required": required or where == "path",
            "description": desc, "schema": schema}


COMMON = {"401": _err("missing or unknown bearer token (WWW-Authenticate: Bearer)"),
          "403": _err("outside the token's role or scope")}


@cache
def spec() -> dict[str, Any]:
    states = ", ".join(s.value for s in CaseState)
    list_params = [
        _q("district", "6-digit district code"), _q("street", "9-digit street code"),
        _q("state", f"comma-separated: {states}, or 'open'"),
        _q("overdue", "true: only cases past a deadline", "boolean"),
        _q("department", "department id (the lead's)"),
        _q("unit", "registry unit id of the lead (e.g. 310110012.housing)"),
        _q("type", "type code, e.g. 0101"),
        _q("since", "created at or after (ISO 8601 with offset)", fmt="date-time"),
        _q("until", "created before (ISO 8601 with offset)", fmt="date-time"),
        _q("limit", "1..500 (default 50)", "integer"),
        _q("cursor", "next_cursor of the previous page")]
    o311_fmt = _q("format", "json or xml (the path's extension)", where="path")
    return {
        "openapi": "3.1.0",
        "info": {"title": "grid case-routing engine API", "version": "1",
                 "description": "Reports, cases, actions and work orders (城市网格化管理), plus "
                                "Open311 GeoReport v2 under /open311/v2. Bearer tokens carry "
                                "a role and a scope; see docs/api.md."},
        "servers": [{"url": "http://127.0.0.1:6066"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": _schemas()},
        "paths": {
            "/api/v1/health": {"get": {
                "summary": "this worker, its partitions and each consumer's state, lag and "
                           "oldest waiting input", "security": [],
                "responses": {"200": {"description": "every consumer makes progress"},
                              "503": {"description": "a consumer is stuck: status failing, "
                                                     "reasons in words"}}}},
            "/api/v1/ready": {"get": {
                "summary": "whether this worker can serve yet", "security": [],
                "responses": {"200": {"description": "ready"},
                              "503": {"description": "not ready: reasons in words"}}}},
            "/api/v1/me": {"get": {"summary": "the caller's role and scope",
                                   "responses": {"200": {"description": "principal"},
                                                 **COMMON}}},
            "/api/v1/reports": {"post": {
                "summary": "submit a report (grid.report/1); supervisors and integrations",
                "requestBody": {"required": True, **_json("Report")},
                "responses": {
                    "202": {"description": "accepted: report_id, report_url (Location)"},
                    **COMMON, "409": _err("report_id used before for other content "
                                          "(reason duplicate_conflict)"),
                    "413": _err("body over the size limit (64 KiB default)"),
                    "422": _err("validation errors, one per bad field; a report needs a "
                                "type_code or a non-empty description; JSON types are "
                                "strict (a number as a string is an error)")}}},
            "/api/v1/reports/{report_id}": {"get": {
                "summary": "the case a report became (404 until processed)",
                "parameters": [_q("report_id", "report UUID", where="path")],
                "responses": {"200": {"description": "case_id, case_url, state, merged"},
                              **COMMON, "404": _err("not yet processed (or rejected)")}}},
            "/api/v1/cases": {"get": {
                "summary": "cases, filtered and paginated (newest first)",
                "parameters": list_params,
                "responses": {"200": {"description": "a page", **_json("Page")}, **COMMON,
                              "422": _err("bad filter")}}},
            "/api/v1/cases/{case_id}": {"get": {
                "summary": "one case: state, placement, decision and explanation, deadlines, "
                           "history (answered by the worker owning its street)",
                "parameters": [_q("case_id", "case id (street code first)", where="path")],
                "responses": {"200": {"description": "the case", **_json("Case")}, **COMMON,
                              "404": _err("no such case")}}},
            "/api/v1/cases/{case_id}/actions": {"post": {
                "summary": "an action of a department, supervisor or the command center",
                "description": "Checked against role, scope and the case lifecycle, then sent "
                               "to grid.commands.v1. Waits up to 5 s (?wait=0: no wait) for "
                               "the engine: 200 with the applied events, else 202 with the "
                               "predicted events.",
                "parameters": [_q("case_id", "case id", where="path"),
                               _q("wait", "0: answer 202 at once", "boolean")],
                "requestBody": {"required": True, **_json("ActionRequest")},
                "responses": {"200": {"description": "applied", **_json("ActionResult")},
                              "202": {"description": "sent; predicted events",
                                      **_json("ActionResult")}, **COMMON,
                              "404": _err("no such case"),
                              "409": _err("the case's state does not allow the action"),
                              "422": _err("bad action body")}}},
            "/api/v1/work-orders": {"get": {
                "summary": "a department's open work orders",
                "parameters": [_q("department", "department id (default: the token's)"),
                               *list_params[-2:]],
                "responses": {"200": {"description": "a page", **_json("Page")}, **COMMON,
                              "422": _err("missing or unknown department, bad limit")}}},
            "/open311/v2/services.{format}": {"get": {
                "summary": "GeoReport v2 service list (the 120 types)", "security": [],
                "parameters": [o311_fmt, _q("lang", "zh (default) or en")],
                "responses": {"200": {"description": "services"}}}},
            "/open311/v2/services/{service_code}.{format}": {"get": {
                "summary": "GeoReport v2 service definition (no extra attributes)",
                "security": [],
                "parameters": [_q("service_code", "a type code", where="path"), o311_fmt],
                "responses": {"200": {"description": "{service_code, attributes: []}"},
                              "404": _err("unknown service_code", "Open311Error")}}},
            "/open311/v2/requests.{format}": {
                "post": {"summary": "create a service request (form or JSON; api_key)",
                         "security": [{"bearer": []}, {}],
                         "parameters": [o311_fmt],
                         "responses": {"201": {"description": "[{service_request_id, "
                                                              "service_notice}]"},
                                       "400": _err("bad request", "Open311Error"),
                                       "401": _err("no api_key", "Open311Error")}},
                "get": {"summary": "service requests by id list or by code/date/status",
                        "security": [],
                        "parameters": [o311_fmt, _q("service_request_id", "comma list"),
                                       _q("service_code", "comma list"),
                                       _q("start_date", "ISO 8601"), _q("end_date", "ISO 8601"),
                                       _q("status", "open, closed")],
                        "responses": {"200": {"description": "requests"}}}},
            "/open311/v2/requests/{id}.{format}": {"get": {
                "summary": "one service request", "security": [],
                "parameters": [_q("id", "service_request_id", where="path"), o311_fmt],
                "responses": {"200": {"description": "[request]"},
                              "404": _err("unknown", "Open311Error")}}},
        },
    }


def main() -> None:
    json.dump(spec(), sys.stdout, ensure_ascii=False, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
