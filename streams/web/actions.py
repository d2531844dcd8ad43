"""Actions on a case (``POST /api/v1/cases/{case_id}/actions``): the body is a
:class:`grid.models.ActionRequest`; the command goes to grid.commands.v1 and the answer is
the engine's (:mod:`streams.results`)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from grid import auth
from grid.models import HTTP_ACTIONS, Action, ActionRequest, Command
from streams import topics as T
from streams.web.bodies import ActionResult
from streams.web.common import (
    API,
    AUTH,
    Api,
    HttpError,
    Param,
    Route,
    guard,
    json_response,
    loads,
)


def field_errors(err: ValidationError) -> list[dict[str, str]]:
    """Pydantic's errors as ``[{field, message}]`` (the field's dotted path)."""
    return [{"field": ".".join(str(x) for x in e["loc"]), "message": e["msg"]}
            for e in err.errors(include_url=False)]


def parse_action(data: Any) -> tuple[ActionRequest | None, HttpError | None]:
    """Validate an action body with :class:`ActionRequest`.

    Raises the 422 that comes before any other check (not an object, unknown fields, unknown
    action); returns ``(request, None)``, or ``(None, error)``: the 422 for a bad value of a
    known field, which the caller raises once the caller's role and the case are checked."""
    if not isinstance(data, dict):
        raise HttpError(422, "expected a JSON object with at least `action`",
                        errors=[{"field": "body", "message": "not a JSON object"}])
    if data.get("command_id") == "":  # empty: a new id, as for none
        data = {k: v for k, v in data.items() if k != "command_id"}
    try:
        return ActionRequest.model_validate(data), None
    except ValidationError as err:
        errors = err.errors(include_url=False)
    extra = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if extra:
        raise HttpError(422, f"unknown field(s) {', '.join(extra)}",
                        errors=[{"field": k, "message": "is not an action field"}
                                for k in extra])
    if any(e["loc"] == ("action",) for e in errors):
        names = ", ".join(a.value for a in HTTP_ACTIONS)
        raise HttpError(422, f"unknown action {data.get('action')!r}", errors=[
            {"field": "action", "message": f"one of {names}"}])
    return None, HttpError(422, "invalid action", errors=[
        {"field": ".".join(str(x) for x in e["loc"]), "message": e["msg"]} for e in errors])


async def post_action(api: Api, request: web.Request) -> web.Response:
    """An action of a department, supervisor, hotline or the command center on a case.

    Checked against the caller's role and scope, then produced to grid.commands.v1; the
    engine alone decides. Waits up to GRID_API_ACTION_WAIT (5 s; ?wait=0: not at all) for its
    answer: 200 with the applied events, its refusal (409 when the case's state refuses it,
    403 when the actor may not), else 202. command_id is the idempotency key: a command_id
    the case's history already holds (a client's retry) is not sent again; the answer is
    200 with the events it caused then (``note`` says so)."""
    p = api.principal(request)
    case_id = request.match_info["case_id"]
    data = loads(await api.body(request))
    req, invalid = parse_action(data)
    action = req.action if req is not None else Action(data["action"])  # checked by now
    if action not in auth.ACTIONS_BY_ROLE[p.role]:  # before loading the case
        guard(auth.check_action, p, action, None, None)
    case, history = await api.load_case_and_history(case_id)
    guard(auth.check_action, p, action, case.placement, case.department,
          auth.holders_of(case), case.reporters)
    if invalid is not None:
        raise invalid
    try:
        cmd = Command.model_validate({
            **data, "command_id": data.get("command_id") or str(uuid.uuid4()),
            "case_id": case_id, "actor": p.actor, "role": p.command_role or p.role,
            "street": case.placement.street})
    except ValidationError as err:
        raise HttpError(422, "invalid action", errors=field_errors(err)) from None
    if action in (Action.CLASSIFY, Action.FOLLOW_UP) and cmd.type_code not in api.taxonomy.types:
        raise HttpError(422, f"unknown type code {cmd.type_code!r}", errors=[
            {"field": "type_code", "message": "not one of the types (grid taxonomy)"}])
    done = [e for e in history if e.data.command_id == cmd.command_id]
    if done and data.get("command_id"):  # applied before: the same answer, not sent again
        return json_response({
            "command_id": cmd.command_id, "case_id": case_id, "action": action.value,
            "case_url": f"{API}/cases/{case_id}", "status": "applied",
            "state": done[-1].state_to.value,
            "events": [e.model_dump(mode="json", by_alias=True) for e in done],
            "note": "this command_id was applied before: its events then; not applied again"})
    wait = api.action_wait if request.query.get("wait", "1") not in ("0", "false") else 0
    api.results.expect(cmd.command_id)
    key, value = api.g.command_bytes(cmd)
    try:
        await api.g.send(T.COMMANDS, key, value)
    except BaseException:
        await api.results.wait(cmd.command_id, 0)  # forget the waiter
        raise
    body: dict[str, Any] = {
        "command_id": cmd.command_id, "case_id": case_id, "action": action.value,
        "case_url": f"{API}/cases/{case_id}"}
    events = await api.results.wait(cmd.command_id, wait)
    if events is None:
        return json_response({**body, "status": "accepted", "state_before": case.state.value,
                              "note": "the engine has not answered yet: see case_url"},
                             status=202)
    applied = [e for e in events if e.get("type") != "command_rejected"]
    if not applied:
        refusal = events[-1]
        status = 403 if (refusal.get("data") or {}).get("refused") == "forbidden" else 409
        raise HttpError(status, refusal.get("reason") or "refused", action=action.value,
                        state=refusal.get("state_from") or case.state.value)
    return json_response({**body, "status": "applied", "state": applied[-1]["state_to"],
                          "events": applied})


ROUTES = [
    Route("POST", f"{API}/cases/{{case_id}}/actions", post_action, {
        200: ("applied: the state after it and its events", ActionResult),
        202: ("sent; the engine has not answered within the wait", ActionResult), **AUTH,
        404: "no such case",
        409: "the case's state does not allow the action (error, state, action)",
        413: "body over the size limit",
        422: "bad action body: not JSON, unknown field or action, a bad value, an unknown "
             "type code"},
          params=(Param("case_id", "case id (street code first)", where="path", required=True),
                  Param("wait", "0 or false: answer 202 at once, without waiting for the "
                        "engine", {"type": "string", "enum": ["0", "1", "false", "true"]})),
          body=ActionRequest, tag="cases"),
]
