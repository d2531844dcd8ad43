"""What the work pages (console, inbox, supervisor page) and the photo route read from the
read store beyond :class:`store.reader.ReadStore`: a case's photos, the work orders on it,
pending extension requests, the cases that refer to a photo. Blocking SQL: call from a
thread on an event loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Text, cast, select

from store import schema as S

PHOTO_EVENTS = ("reported", "disposed", "lead_disposed", "self_closed", "part_reported",
                "verified", "rework")
EXTENSION_EVENTS = ("extension_requested", "extension_granted", "extension_denied")


def _rows(rs: Any, stmt: Any) -> list[Any]:
    with rs.engine.connect() as conn:
        return conn.execute(stmt).all()


def holders(rs: Any, case_ids: Iterable[str]) -> dict[str, frozenset[str]]:
    """case id -> the departments and units holding a work order on it (lead and
    assisting), as :func:`grid.auth.holders_of` gives for a case."""
    ids = sorted(set(case_ids))
    out: dict[str, set[str]] = {cid: set() for cid in ids}
    if not ids:
        return {}
    wo, c = S.work_orders.c, S.cases.c
    for cid, dept, unit in _rows(rs, select(wo.case_id, wo.department, wo.unit)
                                 .where(wo.case_id.in_(ids))):
        out[cid] |= {x for x in (dept, unit) if x}
    for cid, dept, unit in _rows(rs, select(c.case_id, c.department, c.unit)
                                 .where(c.case_id.in_(ids))):
        out[cid] |= {x for x in (dept, unit) if x}
    return {k: frozenset(v) for k, v in out.items()}


def photos(rs: Any, case_id: str) -> list[dict[str, Any]]:
    """The photos of a case, in event order, each once: ``{url, what, type, at, actor}`` —
    ``what`` is ``report`` (the reporter's), ``evidence`` (after disposal or verification;
    a self-closed report's after-photos are in its report and its closing event)."""
    e = S.case_events.c
    bodies = [b for (b,) in _rows(rs, select(e.body).where(
        e.case_id == case_id, e.type.in_(PHOTO_EVENTS)).order_by(e.at, e.seq))]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for b in bodies:
        d = b.get("data") or {}
        base = {"type": b.get("type"), "at": b.get("at"), "actor": b.get("actor"),
                "role": b.get("role")}
        report = d.get("report") or {}
        for what, urls in (("report", report.get("photos") or ()),
                           ("evidence", [*(report.get("evidence_photos") or ()),
                                         *(d.get("evidence_photos") or ())])):
            for url in urls:
                if url not in seen:
                    seen.add(url)
                    out.append({"url": url, "what": what, **base})
    return out


def pending_extensions(rs: Any, case_ids: Iterable[str] | None = None) -> dict[str, int]:
    """Open cases (of ``case_ids``, or all) with an extension request not yet granted or
    denied: case id -> minutes asked."""
    e, c = S.case_events.c, S.cases.c
    stmt = (select(e.case_id, e.type, e.body).join(S.cases, c.case_id == e.case_id)
            .where(e.type.in_(EXTENSION_EVENTS), c.is_open.is_(True), e.seq > 0)
            .order_by(e.case_id, e.seq))
    if case_ids is not None:
        ids = sorted(set(case_ids))
        if not ids:
            return {}
        stmt = stmt.where(e.case_id.in_(ids))
    last: dict[str, int | None] = {}
    for cid, kind, body in _rows(rs, stmt):
        minutes = (body.get("data") or {}).get("minutes")
        last[cid] = int(minutes) if kind == "extension_requested" and minutes else None
    return {cid: m for cid, m in last.items() if m}


def cases_with_photo(rs: Any, url: str) -> list[tuple[dict[str, Any], str | None,
                                                      tuple[str, ...], frozenset[str]]]:
    """The cases whose reports or events name photo ``url``: (place, department, reporters,
    holders) of each, for :func:`grid.auth.check_read`. (A text match over the events that
    carry photos: fine at the demo's size; a photo -> case table would be the index.)"""
    e, c = S.case_events.c, S.cases.c
    ids = {cid for (cid,) in _rows(rs, select(e.case_id).where(
        e.type.in_(PHOTO_EVENTS), cast(e.body, Text).contains(url, autoescape=True)))}
    if not ids:
        return []
    held = holders(rs, ids)
    rows = _rows(rs, select(c.case_id, c.district, c.street, c.patrol_area, c.department,
                            c.reporters).where(c.case_id.in_(sorted(ids))))
    return [({"district": r.district, "street": r.street, "patrol_area": r.patrol_area},
             r.department, tuple(r.reporters or ()), held.get(r.case_id, frozenset()))
            for r in rows]
