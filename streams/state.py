"""Case state over Faust tables, plus an in-memory index of open cases per street.

The tables are the durable truth (changelog-backed): ``cases`` (case_id → case JSON) and
``report_index`` (report_id → case_id, for idempotent ingest; and ``origin:<topic:partition>``
→ the highest offset of that report partition handled: :meth:`CaseStore.handled_to`).
The open-case index is derived from ``cases`` and rebuilt after every rebalance; it
serves duplicate search and the escalation timer without scanning the table on each event.
Decoded cases are kept in a bounded LRU cache (cases are immutable), so duplicate search
does not re-validate JSON.

Writes go through ``writer(table, key, value)`` when given (the stream app uses it to update
the local store and produce the changelog entry itself), else into the mappings directly.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from grid import lifecycle
from grid.models import Case


@dataclass(frozen=True, slots=True)
class OpenEntry:
    """What the index keeps of an open case: enough to filter before loading it."""

    case_id: str
    street: str
    type_code: str | None
    next_check: datetime | None  # when the earliest deadline's warning becomes due


ORIGIN_KEY = b"origin:"  # report_index keys that are no report id (those are UUIDs)
BUCKET_DEG = 0.001  # duplicate-search buckets: ~95 m (lon) × 111 m (lat) at Shanghai
BUCKET_MIN_M = 90.0  # the smallest side of a bucket, in metres, at Shanghai's latitudes


def _bucket(lon: float, lat: float) -> tuple[int, int]:
    return math.floor(lon / BUCKET_DEG), math.floor(lat / BUCKET_DEG)


def encode_case(case: Case) -> bytes:
    return case.model_dump_json(by_alias=True).encode()


def decode_case(raw: bytes | None) -> Case | None:
    """A changelog value as a case (a ``grid.case/1`` one too: see
    :func:`grid.lifecycle.decode_case`); None for a tombstone."""
    return None if raw is None else lifecycle.decode_case(raw)


Writer = Callable[[str, bytes, bytes], None]  # (table: "cases" | "report_index", key, value)


class CaseStore:
    """Reads and writes cases in a table-like mapping and keeps the open index in step."""

    def __init__(self, cases: MutableMapping, report_index: MutableMapping,
                 owns_street=lambda street: True, warn_share: float = 0.8,
                 writer: Writer | None = None, cache_size: int = 50_000) -> None:
        self.cases = cases
        self.report_index = report_index
        self.owns_street = owns_street
        self.warn_share = warn_share
        self.writer = writer
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Case] = OrderedDict()
        self._open: dict[str, dict[str, OpenEntry]] = {}
        # (street, type_code) -> (bucket x, bucket y) -> open case ids: duplicate search looks
        # only at the buckets around a report instead of every open case of the street
        self._near: dict[tuple[str, str | None], dict[tuple[int, int], set[str]]] = {}
        # the escalation timer's view: open cases by warning time (a heap, stale entries
        # skipped when popped) and those whose time has come — a tick costs O(due + log n)
        self._entries: dict[str, OpenEntry] = {}
        self._by_time: list[tuple[datetime, str]] = []
        self._due: dict[str, OpenEntry] = {}
        self._fresh = False

    def invalidate(self) -> None:
        """Called on rebalance: index and cache are rebuilt from the table on next use."""
        self._fresh = False
        self._cache.clear()

    def rebuild(self) -> None:
        """Rebuild the open-case index from the table now (after a restore; may run in a
        worker thread while nothing else uses this store)."""
        self.invalidate()
        self._ensure()

    def _write(self, table: str, key: bytes, value: bytes) -> None:
        if self.writer is not None:
            self.writer(table, key, value)
        elif table == "cases":
            self.cases[key] = value
        else:
            self.report_index[key] = value

    def _remember(self, case: Case) -> None:
        cache = self._cache
        cache[case.case_id] = case
        cache.move_to_end(case.case_id)
        if len(cache) > self.cache_size:
            cache.popitem(last=False)

    def _ensure(self) -> None:
        if self._fresh:
            return
        self._open.clear()
        self._near.clear()
        self._entries.clear()
        self._by_time.clear()
        self._due.clear()
        for _key, raw in list(self.cases.items()):
            case = decode_case(raw)
            if case is not None and case.is_open and self.owns_street(
                    case.placement.partition_key):
                self._index(case)
        self._fresh = True

    def _index(self, case: Case) -> None:
        street = case.placement.partition_key
        bucket = self._open.setdefault(street, {})
        kind, at = (street, case.type_code), _bucket(case.placement.lon, case.placement.lat)
        if case.is_open:
            self._near.setdefault(kind, {}).setdefault(at, set()).add(case.case_id)
            nxt = None
            if case.deadlines:
                due = min(case.deadlines.values())
                nxt = case.created_at + (due - case.created_at) * self.warn_share
            entry = OpenEntry(case.case_id, street, case.type_code, nxt)
            bucket[case.case_id] = self._entries[case.case_id] = entry
            self._due.pop(case.case_id, None)  # back on the heap, at its (new) time
            if nxt is not None:
                heapq.heappush(self._by_time, (nxt, case.case_id))
                if len(self._by_time) > 4 * len(self._entries) + 1000:  # mostly stale
                    self._by_time = [(e.next_check, c) for c, e in self._entries.items()
                                     if e.next_check is not None and c not in self._due]
                    heapq.heapify(self._by_time)
        else:
            bucket.pop(case.case_id, None)
            cell = self._near.get(kind, {}).get(at)
            if cell is not None:
                cell.discard(case.case_id)
                if not cell:
                    del self._near[kind][at]
            self._entries.pop(case.case_id, None)
            self._due.pop(case.case_id, None)

    def get(self, case_id: str) -> Case | None:
        case = self._cache.get(case_id)
        if case is not None:
            self._cache.move_to_end(case_id)
            return case
        case = decode_case(self.cases.get(case_id.encode()))
        if case is not None:
            self._remember(case)
        return case

    def case_for_report(self, report_id: str) -> Case | None:
        cid = self.report_index.get(report_id.encode())
        return self.get(cid.decode()) if cid is not None else None

    def handled_to(self, source: str) -> int | None:
        """The highest offset of report partition ``source`` (``topic:partition``) whose
        located record this store has handled; None if none."""
        v = self.report_index.get(ORIGIN_KEY + source.encode())
        return int(v) if v is not None else None

    def mark_handled(self, source: str, offset: int) -> None:
        self._write("report_index", ORIGIN_KEY + source.encode(), str(offset).encode())

    def put(self, case: Case, report_ids: list[str] = ()) -> None:
        self._ensure()
        key = case.case_id.encode()
        self._write("cases", key, encode_case(case))
        for rid in report_ids:
            self._write("report_index", rid.encode(), key)
        self._remember(case)
        self._index(case)

    def open_cases_near(self, street: str, type_code: str, lon: float, lat: float,
                        radius_m: float) -> Iterator[Case]:
        """Open cases of one type in a street whose location may lie within ``radius_m``
        (a superset: the caller measures the exact distance)."""
        self._ensure()
        cells = self._near.get((street, type_code))
        if not cells:
            return
        n = max(1, math.ceil(radius_m / BUCKET_MIN_M))
        bx, by = _bucket(lon, lat)
        if len(cells) < (2 * n + 1) ** 2:  # fewer occupied buckets than the window has
            near = [ids for (x, y), ids in cells.items() if abs(x - bx) <= n and abs(y - by) <= n]
        else:
            near = [ids for x in range(bx - n, bx + n + 1) for y in range(by - n, by + n + 1)
                    if (ids := cells.get((x, y)))]
        for cid in [c for ids in near for c in ids]:
            case = self.get(cid)
            if case is not None and case.is_open:
                yield case

    def on_located(self, engine: Any, msg: Any, now: datetime) -> Any:
        """Run ``engine.on_located`` against this store and keep its result: the one path
        from a located report to stored case state (the stream app and the bench use it)."""
        existing = self.case_for_report(msg.report.rid)
        t = msg.decision.type_code
        nearby = (self.open_cases_near(msg.placement.partition_key, t, msg.placement.lon,
                                       msg.placement.lat, engine.duplicate_radius_m(t))
                  if existing is None and t else ())
        fx = engine.on_located(msg, existing, nearby, now)
        if fx.case is not None and not fx.duplicate_delivery:
            self.put(fx.case, [msg.report.rid])
        return fx

    def due_for_check(self, now: datetime) -> Iterator[OpenEntry]:
        """Open cases whose earliest warning time has come (escalation timer)."""
        self._ensure()
        heap = self._by_time
        while heap and heap[0][0] <= now:
            t, cid = heapq.heappop(heap)
            entry = self._entries.get(cid)
            if entry is not None and entry.next_check == t:  # else closed or re-timed
                self._due[cid] = entry
        yield from list(self._due.values())

    def open_count(self) -> int:
        self._ensure()
        return sum(len(b) for b in self._open.values())
