"""Open311 GeoReport v2 mapping (pure): taxonomy → services, Open311 request → report,
case → request status, and the specification's XML rendering.

Field names and formats follow GeoReport v2 (http://wiki.open311.org/GeoReport_v2): times
are ISO 8601 with a UTC offset (here Asia/Shanghai, +08:00), ``status`` is ``open`` or
``closed``, errors are ``[{"code": 400, "description": "..."}]``.
The ``service_request_id`` is the report id: it exists as soon as the request is
accepted, before the engine has opened (or merged it into) a case.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from grid.deadlines import SHANGHAI
from grid.models import TERMINAL_STATES, Case, CaseState

# Open311 parameter → report field (for error messages that name what the client sent)
PARAM_OF_FIELD = {"location.lat": "lat", "location.lon": "long", "type_code": "service_code",
                  "photos[0]": "media_url", "address": "address_string",
                  "description": "description", "reporter_id": "account_id",
                  "location.crs": "crs", "location": "lat"}

STATUS_NOTES = {
    CaseState.REPORTED: "received; being filed",
    CaseState.TRIAGE: "received; the command center is classifying it",
    CaseState.FILED: "filed as a case",
    CaseState.DISPATCHED: "dispatched to {agency}",
    CaseState.ACCEPTED: "accepted by {agency}; work in progress",
    CaseState.DISPOSED: "{agency} reports it fixed; awaiting verification on site",
    CaseState.RETURNED: "being re-assigned by the command center",
    CaseState.REWORK: "verification failed; {agency} is reworking it",
    CaseState.VERIFIED: "fix verified on site; closing",
    CaseState.CLOSED: "closed: fixed and verified",
    CaseState.REJECTED: "closed without action: not filed",
    CaseState.MERGED: "closed: merged into an earlier report of the same problem",
    CaseState.TRANSFERRED: "an emergency: handed to the emergency services (110/119/120); the "
                           "grid follows up the aftermath if any",
}


def iso(dt: datetime | None) -> str | None:
    """ISO 8601 with offset, seconds precision, in Shanghai time (``2026-05-01T09:30:00+08:00``)."""
    return dt.astimezone(SHANGHAI).isoformat(timespec="seconds") if dt else None


def services(taxonomy: Any, lang: str = "zh") -> list[dict[str, Any]]:
    """One GeoReport service per component/event type (service_code = type code); ``group``
    is the type's national class (GB/T 30428.2), e.g. ``部件·公用设施``."""
    out = []
    for code in sorted(taxonomy.types):
        t = taxonomy.types[code]
        ncls = taxonomy.national_class(code)
        dept = taxonomy.departments.get(t.department)
        en = lang.startswith("en")
        dept_name = (dept.name_en if en else dept.name_zh) if dept else t.department
        kind = {"component": ("部件", "component"), "event": ("事件", "event")}[t.kind]
        out.append({
            "service_code": code,
            "service_name": t.name_en if en else t.name_zh,
            "description": (f"{t.name_en} ({kind[1]}; handled by {dept_name})" if en
                            else f"{t.name_zh}（{kind[0]}，责任部门：{dept_name}）"),
            "metadata": False,
            "type": "realtime",
            "keywords": ",".join([*t.keywords_zh, *t.keywords_en]),
            "group": ncls.label_en if en else ncls.label_zh,
        })
    return out


class RequestError(ValueError):
    """A bad Open311 request; ``errors`` are (code, description) pairs in the spec's format."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(d for _, d in errors))



def _param(params: Mapping[str, Any], name: str) -> str | None:
    """A form or query parameter's (first) value, stripped; ``None`` when absent or blank."""
    v = params.get(name)
    if isinstance(v, list):
        v = v[0] if v else None
    return None if v is None or str(v).strip() == "" else str(v).strip()


def _coords(one: Callable[[str], str | None]) -> dict[str, float]:
    """``lat`` and ``long`` as numbers; :class:`RequestError` (400) naming each bad one."""
    errors: list[tuple[int, str]] = []
    if one("lat") is None or one("long") is None:
        errors.append((400, "lat and long are required (this jurisdiction does not geocode "
                            "address_string or address_id)"))
    coords: dict[str, float] = {}
    for name, key in (("lat", "lat"), ("long", "lon")):
        v = one(name)
        if v is None:
            continue
        try:
            coords[key] = float(v)
        except ValueError:
            errors.append((400, f"{name}: {v[:40]!r} is not a number"))
    if errors:
        raise RequestError(errors)
    return coords

def report_from_request(params: Mapping[str, Any], *, source: str, reporter: str,
                        now: datetime, report_id: str | None = None) -> dict[str, Any]:
    """The wire report (``grid.report/1`` dict) for an Open311 POST; validate it with
    :func:`grid.intake.parse_report`. A hotline sends its ticket number as
    ``attribute[ticket_no]`` (only a hotline source may: the report's schema checks it).
    Personal data (email, phone, names) is not kept: the reporter is the account/device id,
    or a hash of the email, or the integration's name."""
    def one(name: str) -> str | None:
        return _param(params, name)

    coords = _coords(one)
    who = one("account_id") or one("device_id")
    email = one("email")
    if who is None and email:
        who = "email-" + hashlib.sha256(email.lower().encode()).hexdigest()[:16]
    report: dict[str, Any] = {
        "schema": "grid.report/1",
        "report_id": report_id or str(uuid.uuid4()),
        "source": source,
        "reporter_id": (who or reporter)[:64],
        "reported_at": now.isoformat(),
        "location": {**coords, "crs": one("crs") or "wgs84"},
        "description": one("description") or "",
    }
    if one("service_code"):
        report["type_code"] = one("service_code")
    if one("media_url"):
        report["photos"] = [one("media_url")]
    address = one("address_string")
    if address:
        report["address"] = address[:200]
    ticket = one("attribute[ticket_no]")
    if ticket is not None:  # a hotline's own ticket: the case is answered back under it
        report["ticket"] = {"hotline": source.removeprefix("hotline_"), "ticket_no": ticket}
    return report


def param_of(field: str) -> str:
    """The Open311 parameter a report field came from (for error messages)."""
    return PARAM_OF_FIELD.get(field, field)


def request_status(report_id: str, case: Case | None, taxonomy: Any,
                   pending: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A GeoReport v2 service request for ``report_id``: from its case, or — before the engine
    has opened a case — from the ``pending`` report dict the API accepted."""
    if case is None:
        r = pending or {}
        loc = r.get("location") or {}
        code = r.get("type_code")
        t = taxonomy.types.get(code) if code else None
        return {
            "service_request_id": report_id, "status": "open",
            "status_notes": "received; waiting for the engine to file it",
            "service_name": t.name_zh if t else None, "service_code": code,
            "description": r.get("description"), "agency_responsible": None,
            "service_notice": None, "requested_datetime": _iso_text(r.get("reported_at")),
            "updated_datetime": _iso_text(r.get("reported_at")), "expected_datetime": None,
            "address": r.get("address"), "address_id": None, "zipcode": None,
            "lat": loc.get("lat"), "long": loc.get("lon"),
            "media_url": (r.get("photos") or [None])[0],
        }
    t = taxonomy.types.get(case.type_code) if case.type_code else None
    dept = taxonomy.departments.get(case.department) if case.department else None
    agency = case.unit_name or (dept.name_zh if dept else (case.department or None))
    own = case.report if case.report.rid == report_id else None
    requested = own.reported_at if own else case.created_at
    notes = STATUS_NOTES.get(case.state, case.state.value).format(agency=agency or "—")
    if own is None:
        notes = f"merged into case {case.case_id}; " + notes
    if case.state is CaseState.REJECTED and case.reason:
        notes += f" ({case.reason})"
    if case.reopens and case.is_open:
        notes = "reopened after the citizen's callback (not satisfied); " + notes
    if case.callbacks and not case.is_open:
        cb = case.callbacks[-1]
        notes += f"; callback: {cb.satisfaction.replace('_', ' ')}"
    if case.report.ticket is not None:
        notes = f"{case.report.ticket.hotline} ticket {case.report.ticket.ticket_no}: " + notes
    due = case.deadlines.get("dispose") or case.deadlines.get("verify")
    dec = case.decision
    notice = None
    if dec is not None and due is not None and case.is_open:
        notice = f"{'紧急' if case.priority == 'urgent' else '处置'}时限 {iso(due)}"
        if dec.closing_standard:
            notice += f"；结案标准：{dec.closing_standard}"
    return {
        "service_request_id": report_id,
        "status": "closed" if case.state in TERMINAL_STATES else "open",
        "status_notes": notes,
        "service_name": t.name_zh if t else None,
        "service_code": case.type_code,
        "description": (own or case.report).description,
        "agency_responsible": agency,
        "service_notice": notice,
        "requested_datetime": iso(requested),
        "updated_datetime": iso(case.updated_at),
        "expected_datetime": iso(due) if case.is_open else None,
        "address": (own or case.report).address,
        "address_id": None,
        "zipcode": None,
        "lat": case.placement.lat,
        "long": case.placement.lon,
        "media_url": next(iter((own or case.report).photos or ()), None),
    }


def _iso_text(v: Any) -> str | None:
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, str):
        try:
            return iso(datetime.fromisoformat(v))
        except ValueError:
            return v
    return None


def errors_json(errors: Iterable[tuple[int, str]]) -> list[dict[str, Any]]:
    return [{"code": code, "description": d} for code, d in errors]


# --- XML --------------------------------------------------------------------------------------

def to_xml(root: str, item: str, rows: Iterable[Mapping[str, Any]]) -> str:
    """``<root><item><k>v</k>…</item>…</root>`` as GeoReport's XML responses look."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>', f"<{root}>"]
    for row in rows:
        parts.append(f"<{item}>")
        for k, v in row.items():
            if v is None:
                parts.append(f"<{k}/>")
            else:
                text = str(v).lower() if isinstance(v, bool) else str(v)
                parts.append(f"<{k}>{escape(text)}</{k}>")
        parts.append(f"</{item}>")
    parts.append(f"</{root}>")
    return "".join(parts)


def definition_xml(code: str) -> str:
    """A GeoReport service definition without attributes (``metadata`` is false)."""
    return ('<?xml version="1.0" encoding="utf-8"?><service_definition>'
            f"<service_code>{escape(code)}</service_code><attributes/></service_definition>")


def errors_xml(errors: Iterable[tuple[int, str]]) -> str:
    return to_xml("errors", "error", errors_json(errors))
