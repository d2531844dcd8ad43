"""Workarounds for two Tansu 0.6 bugs that lose data silently.

**End offsets.** Tansu answers ListOffsets(latest) with *base offset of the last record
batch + 1* instead of *last offset + 1*: after one produce request carrying a batch of 20
records the "end offset" is 1, not 20. Faust reads changelog topics up to that
highwater when it recovers a table, so a restarted worker silently loses table
entries (memory store) or crashes with ``ConsistencyError`` (RocksDB store, whose
persisted offset is "beyond" the highwater). :func:`patch_end_offsets` makes
``AIOKafkaConsumer.end_offsets`` (what Faust's ``highwaters`` uses) verify each answer by
fetching from ``end - 1`` (the last batch's base offset) and returning ``last record
offset + 1``. On a correct broker the fetch returns the single last record and the answer
is unchanged.

**Batches visible out of order.** With several producers writing to one partition at once,
a later batch can become readable before an earlier one; a consumer fetching in between
moves past the earlier batch and never reads it. :func:`patch_fetch_gaps` makes consumers
stop at such a gap and fetch it again (details below).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

_PATCHED = "_grid_tansu_end_offsets"
log = logging.getLogger(__name__)


async def true_end_offsets(
    bootstrap: str | list[str], ends: Mapping[TopicPartition, int], timeout: float = 10.0
) -> dict[TopicPartition, int]:
    """Correct end offsets reported by the broker by reading each partition's last batch."""
    result = dict(ends)
    todo = [tp for tp, end in ends.items() if end and end > 0]
    if not todo:
        return result
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await probe.start()
    try:
        probe.assign(todo)
        for tp in todo:
            probe.seek(tp, ends[tp] - 1)
        pending = set(todo)
        async with asyncio.timeout(timeout):
            while pending:
                batches = await probe.getmany(*pending, timeout_ms=200)
                for tp, records in batches.items():
                    if records:
                        result[tp] = max(result[tp], records[-1].offset + 1)
                        pending.discard(tp)
    except TimeoutError:
        pass  # partitions with nothing readable at end-1 (e.g. compacted away) keep their value
    finally:
        await probe.stop()
    return result


def patch_end_offsets() -> None:
    """Make every ``AIOKafkaConsumer.end_offsets`` in this process Tansu-proof (idempotent)."""
    if getattr(AIOKafkaConsumer, _PATCHED, False):
        return
    original = AIOKafkaConsumer.end_offsets

    async def end_offsets(
        self: AIOKafkaConsumer, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, Any]:
        ends = await original(self, partitions)
        return await true_end_offsets(self._client._bootstrap_servers, ends)

    AIOKafkaConsumer.end_offsets = end_offsets  # type: ignore[method-assign]
    setattr(AIOKafkaConsumer, _PATCHED, True)


# -- offset gaps ------------------------------------------------------------------------------
#
# Tansu 0.6 (memory storage) assigns offsets in order but can make a record batch visible
# before an earlier one when several producers write to one partition at once: a fetch in
# between returns offsets 7470-7479 and 7490-7499 while 7480-7489 is still being stored, and
# the consumer moves its position past the batch it never saw (measured: in 3 of ~20 runs
# of 3-4 producer processes writing 60,000 records, a reader following them missed a batch;
# a fresh read afterwards finds every record at its offset). Two workers
# forwarding reports to the same located partition, or writing case events, are exactly
# that, so a consumer could lose input without any error.
#
# A consumer patched by :func:`patch_fetch_gaps` stops at such a gap and fetches again from
# its start until the batch is there. On Apache Kafka the offsets of a partition that is not
# compacted are contiguous (control batches of transactions included), so the guard never
# fires there; compacted topics (Faust's ``-changelog`` topics, ``__`` internal topics) may
# have real gaps and are not guarded. A gap still open after ``GAP_WAIT`` seconds is taken
# as real and crossed, with a warning.

GAP_WAIT = 5.0
_GAP_PATCHED = "_grid_tansu_gap_guard"
_open_gaps: dict[tuple[Any, int], float] = {}  # (tp, gap start) -> first seen (monotonic)
gap_stats = {"held": 0, "crossed": 0}  # fetches stopped at a gap; gaps taken as real


def guards_gaps(topic: str) -> bool:
    """Whether offsets of ``topic`` must be contiguous (not compacted, not internal)."""
    return not topic.endswith("-changelog") and not topic.startswith("__")


class _Contiguous:
    """A ``MemoryRecords`` view that ends before a batch starting beyond the expected offset."""

    __slots__ = ("_expected", "_next", "_records", "_tp")

    def __init__(self, records: Any, tp: Any, fetch_offset: int) -> None:
        self._records = records
        self._tp = tp
        self._expected = fetch_offset
        self._next: Any = None

    def has_next(self) -> bool:
        if self._next is None:
            if not self._records.has_next():
                return False
            self._next = self._records.next_batch()
        base = getattr(self._next, "base_offset", None)  # v2 batches; legacy ones have none
        if base is not None and base > self._expected and not _gap_expired(
                self._tp, self._expected, base):
            gap_stats["held"] += 1
            return False  # the consumer's position stays at the gap: it is fetched again
        return True

    def next_batch(self) -> Any:
        if self._next is None and not self.has_next():
            return None
        batch, self._next = self._next, None
        if _open_gaps:  # the gap this consumer waited at (if any) is filled
            _open_gaps.pop((self._tp, self._expected), None)
        self._expected = max(self._expected, batch.next_offset)
        return batch


def _gap_expired(tp: Any, start: int, found: int) -> bool:
    """Whether the gap at ``start`` of ``tp`` has been open for ``GAP_WAIT`` seconds."""
    now = time.monotonic()
    since = _open_gaps.setdefault((tp, start), now)
    if now - since < GAP_WAIT:
        return False
    log.warning(
        "%s: offsets %d-%d still missing after %.0f s; reading on from %d",
        tp, start, found - 1, GAP_WAIT, found)
    del _open_gaps[(tp, start)]
    gap_stats["crossed"] += 1
    return True


def patch_fetch_gaps() -> None:
    """Make every aiokafka consumer in this process wait out Tansu's unordered batch
    visibility instead of skipping a batch (idempotent)."""
    from aiokafka.consumer import fetcher

    cls = fetcher.PartitionRecords
    if getattr(cls, _GAP_PATCHED, False):
        return
    original = cls.__init__

    def __init__(self: Any, tp: Any, records: Any, aborted_transactions: Any,
                 fetch_offset: int, *args: Any, **kw: Any) -> None:
        if guards_gaps(tp.topic):
            records = _Contiguous(records, tp, fetch_offset)
        original(self, tp, records, aborted_transactions, fetch_offset, *args, **kw)

    cls.__init__ = __init__
    setattr(cls, _GAP_PATCHED, original)


def unpatch_fetch_gaps() -> None:
    """Remove the guard again (tests that install it in a process on Apache Kafka)."""
    from aiokafka.consumer import fetcher

    cls = fetcher.PartitionRecords
    original = getattr(cls, _GAP_PATCHED, None)
    if original:
        cls.__init__ = original
        setattr(cls, _GAP_PATCHED, None)
