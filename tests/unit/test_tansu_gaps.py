"""The fetch gap guard (streams.tansu.patch_fetch_gaps, Tansu only) on hand-made record
batches (pure).

A gap is a batch whose base offset lies beyond the offset the consumer expects next: the
embedded broker made a later batch readable before an earlier one. The guarded consumer
must stop in front of it (its position stays at the gap, so the gap is fetched again),
and must not mistake an ordinary fetch for a gap.
"""

from __future__ import annotations

import struct

import pytest
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from streams import tansu


def batch(base: int, n: int) -> bytes:
    """A v2 record batch of ``n`` records with offsets ``base .. base + n - 1``."""
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    for i in range(n):
        b.append(i, timestamp=1_700_000_000_000, key=None, value=f"{base + i}".encode(),
                 headers=[])
    raw = bytearray(b.build())
    raw[:8] = struct.pack(">q", base)  # the broker's offset; the CRC does not cover it
    return bytes(raw)


def fetch(topic: str, fetch_offset: int, *batches: bytes) -> tuple[list[int], int]:
    """Offsets a consumer would get from one fetch response, and its next fetch position."""
    recs = PartitionRecords(TopicPartition(topic, 0), MemoryRecords(b"".join(batches)), [],
                            fetch_offset, None, None, True, READ_UNCOMMITTED)
    got = [r.offset for r in recs]
    assert [int(r) for r in got] == got
    return got, recs.next_fetch_offset


@pytest.fixture(autouse=True)
def _guarded():
    """The guard installed (as in a process on Tansu) and removed after each test."""
    installed_before = bool(getattr(PartitionRecords, tansu._GAP_PATCHED, None))
    tansu.patch_fetch_gaps()
    tansu._open_gaps.clear()
    yield
    tansu._open_gaps.clear()
    if not installed_before:
        tansu.unpatch_fetch_gaps()


def test_contiguous_batches_are_all_read():
    assert fetch("grid.located.v1", 0, batch(0, 3), batch(3, 2)) == ([0, 1, 2, 3, 4], 5)


def test_fetch_from_inside_a_batch_is_not_a_gap():
    assert fetch("grid.located.v1", 2, batch(0, 5), batch(5, 1)) == ([2, 3, 4, 5], 6)


def test_reading_stops_in_front_of_a_gap_and_fetches_it_again():
    held = tansu.gap_stats["held"]
    assert fetch("grid.located.v1", 0, batch(0, 3), batch(5, 3)) == ([0, 1, 2], 3)
    # the next fetch starts at the gap; while the batch is still missing nothing is read
    assert fetch("grid.located.v1", 3, batch(5, 3)) == ([], 3)
    assert tansu.gap_stats["held"] == held + 2
    # once the broker shows the missing batch, everything is read in order
    assert fetch("grid.located.v1", 3, batch(3, 2), batch(5, 3)) == ([3, 4, 5, 6, 7], 8)
    assert not tansu._open_gaps


def test_changelog_and_internal_topics_are_not_guarded():
    # compacted topics have real gaps on Apache Kafka
    assert fetch("grid-cases-changelog", 0, batch(0, 2), batch(7, 1)) == ([0, 1, 7], 8)
    assert fetch("__consumer_offsets", 0, batch(3, 1)) == ([3], 4)


def test_a_gap_open_longer_than_the_wait_is_crossed(monkeypatch):
    clock = iter([100.0, 100.0 + tansu.GAP_WAIT / 2, 100.0 + tansu.GAP_WAIT + 0.1])
    monkeypatch.setattr(tansu.time, "monotonic", lambda: next(clock))
    crossed = tansu.gap_stats["crossed"]
    assert fetch("grid.reports.v1", 0, batch(4, 2)) == ([], 0)
    assert fetch("grid.reports.v1", 0, batch(4, 2)) == ([], 0)
    assert fetch("grid.reports.v1", 0, batch(4, 2)) == ([4, 5], 6)
    assert tansu.gap_stats["crossed"] == crossed + 1
    assert not tansu._open_gaps


def test_gap_counts_are_exported_as_a_counter():
    from prometheus_client import CollectorRegistry, generate_latest

    from streams.metrics import FetchGapCollector

    reg = CollectorRegistry()
    reg.register(FetchGapCollector())
    before = tansu.gap_stats["held"]
    fetch("grid.located.v1", 0, batch(2, 1))
    text = generate_latest(reg).decode()
    assert f'grid_fetch_gaps_total{{outcome="held"}} {before + 1:.1f}' in text
    assert 'grid_fetch_gaps_total{outcome="crossed"}' in text
