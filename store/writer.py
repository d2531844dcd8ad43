"""Folding consumed records into the store, with their offsets, in one transaction.

A batch of records from the case-event, work-order and alert topics is applied by
:meth:`StoreWriter.apply`: new events are stored (event id unique), each touched case is
folded with :func:`grid.projection.fold` (the same fold as the in-memory projection) and
written back, and ``consumed_offsets`` moves to the offset after the batch — all in one
database transaction. A crash before the commit loses nothing (the records are consumed
again from the stored offsets); a crash after it doubles nothing.

Fencing: the writer remembers the offsets it last stored for each partition it applies.
The offset update is conditional on them; when another projector has moved a partition
since (a rebalance this writer has not seen yet), :class:`Fenced` is raised and nothing
of the batch is written.
"""

from __future__ import annotations

import gc
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    Engine,
    Float,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.types import UserDefinedType

from grid.events import CaseEvent, parse_event
from grid.projection import (
    TZ,
    CaseSummary,
    _dt,
    decision_facts,
    decision_of,
    fold,
    merged_report,
    new_case,
    report_facts,
)
from grid.topics import ALERTS, CASE_EVENTS, DISPATCH
from store import schema as S
from store.rows import CASE_COLUMNS, SUMMARY_FIELDS, Names, case_values, from_row, no_names, to_row

log = logging.getLogger(__name__)

TOPICS = (CASE_EVENTS, DISPATCH, ALERTS)  # what a projector consumes
CHUNK = 500  # ids per IN (…) clause

TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass
class Applied:
    """What a batch changed: new events (in log order) and alerts, for live subscribers."""

    records: list[bytes] = field(default_factory=list)  # of the new events, in log order
    alerts: list[dict[str, Any]] = field(default_factory=list)
    work_orders: int = 0
    skipped: int = 0  # malformed or already applied

    @property
    def events(self) -> list[dict[str, Any]]:
        """The new events' messages, parsed from their records when asked. A batch's
        messages kept alive past :meth:`StoreWriter.apply` were the cyclic collector's
        first work once it ran again (~40,000 containers a batch of 10,000: 2-5 % of the
        projector's time, grid bench store); a projector without subscribers never asks."""
        return [m for r in self.records if (m := _parse(r)) is not None]


class Fenced(RuntimeError):
    """Another projector has applied one of these partitions since this one looked."""


def _insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _chunks(conn: Connection, items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    """``items`` in pieces for :func:`_in`: all at once on PostgreSQL (one array
    parameter), :data:`CHUNK` at a time on SQLite (one parameter each)."""
    n = max(len(items), 1) if _pg(conn) else CHUNK
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _in(conn: Connection, col: Any, ids: Sequence[str]) -> Any:
    """``col IN ids`` (ids are strings); on PostgreSQL ``col = ANY(:array)``: one parameter,
    so the statement is the same for any number of ids (no per-id rendering, parsing or
    binding), given as the array's text (:func:`_pg_array`)."""
    if _pg(conn):
        return col == any_(bindparam(None, ids, type_=_Ids()))
    return col.in_(ids)


class _Ids(UserDefinedType):
    """Strings bound as one ``%s::VARCHAR[]`` parameter holding the array's text
    (:func:`_pg_array`): the server reads it as a constant array, as it did psycopg's
    list (a cast of a ``VARCHAR`` parameter is not, and a sequential scan then compares
    each row with every id)."""

    cache_ok = True
    render_bind_cast = True

    def get_col_spec(self, **kw: Any) -> str:
        return "VARCHAR[]"

    def bind_processor(self, dialect: Any) -> Any:
        return _pg_array


def _pg_array(ids: Iterable[Any]) -> str:
    """A PostgreSQL array literal of strings (``{"a","b"}``: each quoted, backslash and
    double quote escaped; None as NULL), for a ``%s::varchar[]`` parameter. psycopg's list
    dumper checks and escapes every element in Python: ~5 % of the projector's time with
    10,000 ids per statement, three statements a batch (grid bench store,
    docs/BENCHMARKS.md)."""
    return "{" + ",".join(['"' + str(i).replace("\\", "\\\\").replace('"', '\\"') + '"'
                           if i is not None else "NULL" for i in ids]) + "}"


def _copy_rows(conn: Connection, table: Any, cols: Sequence[str],
               rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL: ``COPY table (cols) FROM STDIN`` of ``rows`` (values in ``cols`` order,
    JSON columns already as JSON text), in the binary format: psycopg's text format took
    2.5 times the CPU per row (times, numbers and booleans written as text, every string
    scanned for escapes; grid bench store). Binary values are the columns' exact types:
    a naive time or a string where a number goes is a TypeError (the batch is halved down
    to the record, as for a row the database refuses); an integer must fit the column (it
    would be truncated, not refused: :func:`_case_event` checks ``seq``)."""
    names = ", ".join(f'"{c}"' for c in cols)
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN (FORMAT BINARY)') as cp:
        cp.set_types([_binary_type(table.c[c].type) for c in cols])
        for r in rows:
            cp.write_row(r)


def _binary_type(t: Any) -> str:
    """The type whose binary form psycopg writes for a column of SQLAlchemy type ``t``
    (strings as ``text``: varchar and json take the same bytes)."""
    if isinstance(t, S.UTCDateTime):
        return "timestamptz"
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, Integer):
        return "int8" if isinstance(t, BigInteger) else "int4"
    if isinstance(t, Float):
        return "float8"
    if isinstance(t, String | JSON):
        return "text"
    raise TypeError(f"no binary COPY type for {t!r}")


def _json(v: Any) -> str:
    return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()


class StoreWriter:
    """Applies batches for one projector name (``consumer``) to the store on ``engine``."""

    def __init__(self, engine: Engine, consumer: str = "projector", names: Names = no_names,
                 category_of: Any = None) -> None:
        self.engine = engine
        self.consumer = consumer
        self.names = names
        self.category_of = category_of
        self.positions: dict[TP, int] = {}

    # -- offsets -------------------------------------------------------------------------

    def load_positions(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The stored next offsets of ``tps`` (0 for a partition never applied); remembered
        as the base of the next conditional update."""
        tps = list(tps)
        with self.engine.connect() as conn:
            rows = conn.execute(select(S.offsets.c.topic, S.offsets.c.partition,
                                       S.offsets.c.next_offset)
                                .where(S.offsets.c.consumer == self.consumer)).all()
        stored = {(t, p): o for t, p, o in rows}
        got = {tp: stored.get(tp, 0) for tp in tps}
        self.positions.update(got)
        return got

    def forget(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            self.positions.pop(tp, None)

    def _move_offsets(self, conn: Connection, ends: dict[TP, int]) -> None:
        o = S.offsets.c
        for (topic, part), end in ends.items():
            base = self.positions.get((topic, part), 0)
            res = conn.execute(update(S.offsets).where(and_(
                o.consumer == self.consumer, o.topic == topic, o.partition == part,
                o.next_offset == base)).values(next_offset=end))
            if res.rowcount == 1:
                continue
            exists = conn.execute(select(o.next_offset).where(and_(
                o.consumer == self.consumer, o.topic == topic, o.partition == part))).first()
            if exists is not None or base != 0:
                raise Fenced(f"{topic}[{part}] is at {exists[0] if exists else None} in the "
                             f"store, not {base}: another projector applied it")
            conn.execute(_insert(conn, S.offsets).values(
                consumer=self.consumer, topic=topic, partition=part, next_offset=end))

    # -- one batch -----------------------------------------------------------------------

    def apply(self, records: Sequence[Record]) -> Applied:
        """Apply ``records`` (in consumed order) and move the offsets, atomically.

        Records below a partition's stored position are skipped (already applied).
        Raises :class:`Fenced` (and writes nothing) when another projector moved one of
        the partitions. A batch the database refuses is applied in halves, down to the one
        record it refuses, which is skipped (logged; its offset moves): no record stops the
        projector.
        """
        with _no_cyclic_gc():
            return self._apply_or_halve(records)

    def _apply_or_halve(self, records: Sequence[Record]) -> Applied:
        try:
            return self._apply(records)
        except (Fenced, OperationalError):
            raise  # another projector, or the database is away: the caller tries again
        except (DBAPIError, ValueError, TypeError, KeyError) as err:
            pending = [r for r in records if r.offset >= self.positions.get(
                (r.topic, r.partition), 0)]
            if len(pending) <= 1:
                for r in pending:
                    log.error("store skipped %s[%d]@%d: the database refuses it (%s)",
                              r.topic, r.partition, r.offset, err)
                    self._skip(r)
                return Applied(skipped=len(pending))
            half = len(pending) // 2
            first = self._apply_or_halve(pending[:half])
            second = self._apply_or_halve(pending[half:])
            return Applied(records=first.records + second.records,
                           alerts=first.alerts + second.alerts,
                           work_orders=first.work_orders + second.work_orders,
                           skipped=first.skipped + second.skipped)

    def _skip(self, r: Record) -> None:
        """Move the offset past one record without storing it."""
        with self.engine.begin() as conn:
            self._move_offsets(conn, {(r.topic, r.partition): r.offset + 1})
        self.positions[(r.topic, r.partition)] = r.offset + 1

    def _apply(self, records: Sequence[Record]) -> Applied:
        out = Applied()
        events: list[_Event] = []
        orders: list[dict[str, Any]] = []
        alerts: list[dict[str, Any]] = []
        ends: dict[TP, int] = {}
        for r in records:
            tp = (r.topic, r.partition)
            if r.offset < self.positions.get(tp, 0):
                out.skipped += 1
                continue
            ends[tp] = max(ends.get(tp, 0), r.offset + 1)
            msg = _parse(r.value)
            if msg is None:
                out.skipped += 1
                continue
            if r.topic == CASE_EVENTS:
                ev = _case_event(msg)
                if ev is None:
                    out.skipped += 1
                    continue
                events.append(_Event(msg, r.value, ev))  # type: ignore[arg-type]
            else:
                (orders if r.topic == DISPATCH else alerts).append(msg)
        if not ends:
            return out
        with self.engine.begin() as conn:
            out.records = self._events(conn, events)
            out.work_orders = self._work_orders(conn, orders)
            out.alerts = self._alerts(conn, alerts)
            self._move_offsets(conn, ends)
        self.positions.update(ends)
        return out

    # -- case events ---------------------------------------------------------------------

    def _events(self, conn: Connection, msgs: list[_Event]) -> list[bytes]:
        """Store the new events of ``msgs`` (in log order) and fold the cases they touch;
        returns the new ones' records."""
        seen = _stored(conn, list({g.event.event_id for g in msgs}))
        fresh: list[_Event] = []
        for g in msgs:
            if (eid := g.event.event_id) not in seen:
                seen.add(eid)
                fresh.append(g)
        if not fresh:
            return []
        if _pg(conn):  # the record's own JSON text as the body (not parsed and dumped again)
            _copy_rows(conn, S.case_events, EVENT_COLUMNS, (
                _event_values(g.message, g.raw.decode() if b"\\u0000" not in g.raw
                              else _json(g.message), g.event.at) for g in fresh))
        else:
            conn.execute(_insert(conn, S.case_events),
                         [_event_row(g.message, g.event.at) for g in fresh])

        by_case: dict[str, list[_Event]] = defaultdict(list)
        for g in fresh:
            by_case[g.event.case_id].append(g)
        cases, extra = self._load_cases(conn, list(by_case))
        created: set[str] = set()
        reports: list[dict[str, Any]] = []
        waiting: set[str] = {cid for cid, x in extra.items() if x["waiting"]}
        for cid, evs in by_case.items():
            for g in sorted(evs, key=lambda g: g.event.seq):
                c = cases.get(cid)
                ev = g.event
                if ev.seq == 0 or (c is not None and ev.seq <= c.seq):
                    continue  # command_rejected (history only) or an older event again
                if (c is None and ev.type != "reported") or (c is not None
                                                             and ev.seq > c.seq + 1):
                    waiting.add(cid)
                    continue
                if c is None:
                    c = cases[cid] = new_case(ev)
                    created.add(cid)
                    r = g.message["data"].get("report") or {}  # the stored JSON
                    extra[cid] = {"report": report_facts(r), "decision": None,
                                  "waiting": False}
                    if r.get("report_id"):
                        reports.append({"report_id": r["report_id"], "case_id": cid,
                                        "reporter_id": r.get("reporter_id"), "merged": False})
                self._fold(c, ev, extra[cid], reports)
        # events stored earlier that were waiting for one of this batch: their seq numbers
        # first (from the index), the bodies only of the cases that have one to fold
        catch_up = sorted((waiting | created) & cases.keys())
        for ids in _chunks(conn, catch_up):
            top = _top_seqs(conn, ids)
            behind = [cid for cid in ids if top.get(cid, 0) > cases[cid].seq]
            if behind:
                for cid, seq, body in _later_events(conn, behind):
                    c = cases[cid]
                    if seq == c.seq + 1:
                        self._fold(c, parse_event(body), extra[cid], reports)
            for cid in ids:
                extra[cid]["waiting"] = top.get(cid, 0) > cases[cid].seq
        self._write_cases(conn, cases, extra, created)
        if reports and _pg(conn):  # one statement, not one per row
            conn.exec_driver_sql(
                "INSERT INTO report_cases (report_id, case_id, reporter_id, merged) "
                "SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], "
                "%s::boolean[]) ON CONFLICT DO NOTHING",
                (*(_pg_array([r[k] for r in reports])
                   for k in ("report_id", "case_id", "reporter_id")),
                 "{" + ",".join(["t" if r["merged"] else "f" for r in reports]) + "}"))
        elif reports:
            conn.execute(_insert(conn, S.report_cases).on_conflict_do_nothing(), reports)
        return [g.raw for g in fresh]

    def _fold(self, c: CaseSummary, e: CaseEvent, extra: dict[str, Any],
              reports: list[dict[str, Any]]) -> None:
        fold(c, e, self.category_of)
        dec = decision_of(e)
        if dec is not None:
            extra["decision"] = decision_facts(dec)
        merged = merged_report(e)
        if merged is not None and merged.report_id:
            reports.append({"report_id": merged.report_id, "case_id": c.case_id,
                            "reporter_id": merged.reporter_id, "merged": True})

    def _load_cases(self, conn: Connection, ids: list[str]
                    ) -> tuple[dict[str, CaseSummary], dict[str, dict[str, Any]]]:
        cases: dict[str, CaseSummary] = {}
        extra: dict[str, dict[str, Any]] = {}
        if _pg(conn) and ids:  # the driver's rows, not SQLAlchemy's: ~half the CPU per row
            for t in _probe(conn, _LOAD_SQL, ids):
                m = dict(zip(_LOAD_COLUMNS, t, strict=True))
                for k in _TIME_COLUMNS:
                    if m[k] is not None:
                        m[k] = m[k].astimezone(TZ)  # as UTCDateTime reads it
                cases[m["case_id"]] = from_row(m)
                extra[m["case_id"]] = {"report": m["report"], "decision": m["decision"],
                                       "waiting": m["waiting"]}
            return cases, extra
        for chunk in _chunks(conn, ids):
            for row in conn.execute(select(S.cases).where(_in(conn, S.cases.c.case_id, chunk))):
                cases[row.case_id] = from_row(row)
                extra[row.case_id] = {"report": row.report, "decision": row.decision,
                                      "waiting": row.waiting}
        return cases, extra

    def _write_cases(self, conn: Connection, cases: dict[str, CaseSummary],
                     extra: dict[str, dict[str, Any]], created: set[str]) -> None:
        if _pg(conn) and cases:  # the changed rows out, all rows in: no per-row UPDATE
            old_ids = [cid for cid in cases if cid not in created]
            if old_ids:
                conn.execute(S.cases.delete().where(_in(conn, S.cases.c.case_id, old_ids)))
            names = self.names
            _copy_rows(conn, S.cases, _ROW_COLUMNS, (
                [*case_values(c, names, _json), _json((x := extra[cid])["report"]),
                 _json(x["decision"]), x["waiting"]] for cid, c in cases.items()))
            return
        rows = [to_row(c, self.names, **extra[cid]) for cid, c in cases.items()]
        new = [r for r in rows if r["case_id"] in created]
        old = [r for r in rows if r["case_id"] not in created]
        if new:
            conn.execute(_insert(conn, S.cases), new)
        if old:
            cols = [k for k in old[0] if k != "case_id"]
            stmt = (update(S.cases).where(S.cases.c.case_id == bindparam("_id"))
                    .values({k: bindparam(k) for k in cols}))
            conn.execute(stmt, [{**r, "_id": r["case_id"]} for r in old])

    # -- work orders and alerts ----------------------------------------------------------

    def _work_orders(self, conn: Connection, msgs: list[dict[str, Any]]) -> int:
        rows = []
        for m in msgs:
            try:
                rows.append({
                    "work_order_id": str(m["work_order_id"]), "case_id": str(m["case_id"]),
                    "department": str(m["department"]), "unit": m.get("unit"),
                    "role": m.get("role") or "lead",
                    "lead_department": m.get("lead_department"), "priority": m.get("priority"),
                    "tier": m.get("tier"), "type_code": m.get("type_code"),
                    "district": m.get("district"), "street": m.get("street"),
                    "issued_at": _dt(m["issued_at"]),
                    "due_dispose": _dt((m.get("due") or {}).get("dispose")), "body": m})
            except (KeyError, TypeError, ValueError):
                log.warning("store skipped a malformed work order: %.200r", m)
        if rows:
            conn.execute(_insert(conn, S.work_orders).on_conflict_do_nothing(), rows)
        return len(rows)

    def _alerts(self, conn: Connection, msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows, fresh = [], []
        for m in msgs:
            try:
                rows.append({"alert_id": str(m["alert_id"]), "case_id": str(m["case_id"]),
                             "kind": str(m["kind"]), "district": m.get("district"),
                             "at": _dt(m["at"]), "body": m})
                fresh.append(m)
            except (KeyError, TypeError, ValueError):
                log.warning("store skipped a malformed alert: %.200r", m)
        if not rows:
            return []
        a = S.alerts.c
        known = set(conn.scalars(select(a.alert_id).where(
            a.alert_id.in_([r["alert_id"] for r in rows]))))
        rows = [r for r in rows if r["alert_id"] not in known]
        if rows:
            conn.execute(_insert(conn, S.alerts).on_conflict_do_nothing(), rows)
        return [m for m in fresh if m["alert_id"] not in known]


# -- stored events by id and by case: one index probe per id ----------------------------
#
# PostgreSQL: each id is looked up in its index (a LATERAL subquery per id, which its LIMIT,
# aggregate or ORDER BY keeps from being flattened into a join). Written as
# ``col = ANY(:ids)``, the planner counted every id as present and, once a batch's ids were a
# few percent of the table, scanned the whole table instead: ~70 ms a query at 175,000
# events, growing with the history (grid bench store, docs/BENCHMARKS.md).

_STORED_SQL = ("SELECT u.id FROM unnest(%s::varchar[]) AS u(id) CROSS JOIN LATERAL "
               "(SELECT 1 FROM case_events e WHERE e.event_id = u.id LIMIT 1) AS hit")
_TOP_SQL = ("SELECT u.id, (SELECT max(e.seq) FROM case_events e WHERE e.case_id = u.id "
            "AND e.seq > 0) FROM unnest(%s::varchar[]) AS u(id)")
_LATER_SQL = ("SELECT u.id, e.seq, e.body FROM unnest(%s::varchar[]) AS u(id) CROSS JOIN "
              "LATERAL (SELECT seq, body FROM case_events e WHERE e.case_id = u.id "
              "AND e.seq > 0 ORDER BY seq) AS e ORDER BY u.id, e.seq")  # sorted: not a join


def _probe(conn: Connection, sql: str, ids: Sequence[str]) -> Any:
    """The driver's rows of ``sql`` with ``ids`` as its one array parameter."""
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    return cur.execute(sql, (_pg_array(ids),))


def _stored(conn: Connection, event_ids: list[str]) -> set[str]:
    """Those of ``event_ids`` already in ``case_events``."""
    if _pg(conn):
        return {eid for (eid,) in _probe(conn, _STORED_SQL, event_ids)}
    e_ = S.case_events.c
    return {eid for ids in _chunks(conn, event_ids)
            for eid in conn.scalars(select(e_.event_id).where(e_.event_id.in_(ids)))}


def _top_seqs(conn: Connection, case_ids: Sequence[str]) -> dict[str, int]:
    """The highest stored ``seq`` (above 0) of each of ``case_ids`` that has one."""
    if _pg(conn):
        return {cid: seq for cid, seq in _probe(conn, _TOP_SQL, case_ids) if seq is not None}
    e_ = S.case_events.c
    q = (select(e_.case_id, func.max(e_.seq))
         .where(e_.case_id.in_(case_ids), e_.seq > 0).group_by(e_.case_id))
    return {cid: seq for cid, seq in conn.execute(q)}


def _later_events(conn: Connection, case_ids: Sequence[str]) -> Iterable[Any]:
    """(case id, seq, body) of the stored events (``seq`` above 0) of ``case_ids``, by case
    and seq."""
    if _pg(conn):
        return _probe(conn, _LATER_SQL, case_ids)
    e_ = S.case_events.c
    return conn.execute(select(e_.case_id, e_.seq, e_.body)
                        .where(e_.case_id.in_(case_ids), e_.seq > 0)
                        .order_by(e_.case_id, e_.seq))


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector paused for one batch. A batch allocates some 10^5
    short-lived dicts and rows that reference counting frees; with the collector on, its
    collections (over every long-lived object of the process, too) took about a third of
    the projector's CPU at 1,000,000 cases (grid bench store, docs/BENCHMARKS.md)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _parse(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        log.warning("store skipped a record that is not JSON: %.120r", raw)
        return None
    if not isinstance(msg, dict):
        return None
    return _without_nul(msg) if b"\\u0000" in raw else msg


def _without_nul(v: Any) -> Any:
    """``v`` with NUL characters replaced (PostgreSQL text cannot hold them; U+FFFD says
    something was there)."""
    if isinstance(v, str):
        return v.replace("\x00", "\ufffd")
    if isinstance(v, dict):
        return {_without_nul(k): _without_nul(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_without_nul(x) for x in v]
    return v


def _case_event(m: dict[str, Any]) -> CaseEvent | None:
    """The typed event of a case-event message whose envelope the columns can hold (ids,
    a seq that fits the column, an aware time); None (logged) for any other: a record is
    parsed once, and a malformed one is skipped before the batch's transaction."""
    try:
        ev = parse_event(m)
    except ValidationError as err:
        first = err.errors()[0]
        why = f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    else:
        if not (ev.event_id and ev.case_id and ev.type):
            why = "an empty event id, case id or type"
        elif not 0 <= ev.seq < 2**31:
            why = f"seq {ev.seq} does not fit the column"
        elif ev.at.utcoffset() is None:
            why = "a time without a UTC offset"
        else:
            return ev
    log.warning("store skipped a malformed case event (%s): %.200r", why, m)
    return None


@dataclass(frozen=True, slots=True)
class _Event:
    """A case-event record: its message, its bytes and its typed event (parsed once)."""

    message: dict[str, Any]
    raw: bytes
    event: CaseEvent


ORDER_TYPES = frozenset({*S.DISPATCH_TYPES, "part_reported", "part_closed_out"})
EVENT_COLUMNS = ("event_id", "case_id", "seq", "type", "state_from", "state_to", "actor",
                 "role", "at", "reason", "body", "district", "department", "unit",
                 "unit_name", "parts")


_LOAD_COLUMNS = (*SUMMARY_FIELDS, "report", "decision", "waiting")
_ROW_COLUMNS = (*CASE_COLUMNS, "report", "decision", "waiting")  # a case row's COPY
_LOAD_SQL = (f"SELECT {', '.join(_LOAD_COLUMNS)} FROM cases "
             "WHERE case_id = ANY(%s::varchar[])")  # the ids: _pg_array
_TIME_COLUMNS = tuple(c for c in SUMMARY_FIELDS if isinstance(S.cases.c[c].type, S.UTCDateTime))


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _event_values(m: dict[str, Any], body: Any, at: datetime | None = None
                  ) -> tuple[Any, ...]:
    """The ``case_events`` values of a message, in :data:`EVENT_COLUMNS` order (``at``: its
    time when already parsed)."""
    t = str(m["type"])
    dept = unit = unit_name = parts = None
    if t in ORDER_TYPES:
        d = m.get("data")
        d = d if isinstance(d, dict) else {}
        dept, unit = _str(d.get("department")), _str(d.get("unit"))
        if t in S.DISPATCH_TYPES:
            a = d.get("assisting")
            unit_name, parts = _str(d.get("unit_name")), len(a) if isinstance(a, list) else 0
    return (str(m["event_id"]), str(m["case_id"]), int(m.get("seq", 0)), t,
            m.get("state_from"), m.get("state_to"), m.get("actor"), m.get("role"),
            at or _dt(m["at"]), m.get("reason"), body, _str(m.get("district")), dept, unit,
            unit_name, parts)


def _event_row(m: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    return dict(zip(EVENT_COLUMNS, _event_values(m, m, at), strict=True))

