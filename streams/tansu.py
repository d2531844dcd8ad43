"""Workaround for a Tansu 0.6 bug that breaks Faust table recovery.

Tansu answers ListOffsets(latest) with *base offset of the last record batch + 1*
instead of *last offset + 1*: after one produce request carrying a batch of 20
records the "end offset" is 1, not 20. Faust reads changelog topics up to that
highwater when it recovers a table, so a restarted worker silently loses table
entries (memory store) or crashes with ``ConsistencyError`` (RocksDB store, whose
persisted offset is "beyond" the highwater).

:func:`patch_end_offsets` makes ``AIOKafkaConsumer.end_offsets`` (what Faust's
``highwaters`` uses) verify each answer by fetching from ``end - 1`` (the last
batch's base offset) and returning ``last record offset + 1``. On a correct broker
the fetch returns the single last record and the answer is unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

_PATCHED = "_grid_tansu_end_offsets"


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
