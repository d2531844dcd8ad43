"""The rebalance fixes of streams.faust_patches on Faust's own objects (pure: no broker).

Without them a message queued for an agent when table recovery ends is dropped by
``flow_control.resume()`` and then committed past (faust-streaming #596, #606)."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

from faust.transport.consumer import Consumer
from intervaltree import IntervalTree
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from streams.faust_patches import fix_rebalance_loss

fix_rebalance_loss()
TP = ("grid.located.v1", 4)


async def test_resume_while_running_keeps_queued_messages():
    flow = FlowControlEvent(initially_suspended=False)
    queue: FlowControlQueue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    queue.put_nowait("report at offset 33")
    flow.resume()  # recovery's final resume: flow never stopped, the message is current
    assert queue.qsize() == 1


async def test_resume_after_a_suspension_still_clears():
    flow = FlowControlEvent(initially_suspended=False)
    queue: FlowControlQueue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.suspend()  # a rebalance: what is queued belongs to the old assignment
    queue.put_nowait("stale")
    flow.resume()
    assert queue.qsize() == 0 and flow.is_active()


def consumer(committed: int | None, acked: list[int]) -> SimpleNamespace:
    """What ``Consumer._new_offset`` reads of a consumer."""
    return SimpleNamespace(_acked=defaultdict(list, {TP: list(acked)}),
                           _acked_index=defaultdict(set, {TP: set(acked)}),
                           _committed_offset=defaultdict(lambda: None, {TP: committed}),
                           _gap=defaultdict(IntervalTree))


def test_no_commit_past_an_unacked_offset_at_the_head():
    # committed 33 means "next to read is 33": 34.. acked without 33 must not commit
    assert Consumer._new_offset(consumer(33, [34, 35, 36]), TP) is None
    assert Consumer._new_offset(consumer(33, [35, 36]), TP) is None


def test_contiguous_acks_commit_as_before():
    assert Consumer._new_offset(consumer(33, [33, 34, 35]), TP) == 36
    assert Consumer._new_offset(consumer(None, [0, 1, 2]), TP) == 3
    assert Consumer._new_offset(consumer(33, [33, 34, 36]), TP) == 35  # up to the hole


def test_recorded_gaps_still_count_as_acked():
    # offsets Faust saw missing from the log (compacted topics) are skipped on purpose
    c = consumer(33, [36, 37])
    c._gap[TP].addi(33, 36)
    assert Consumer._new_offset(c, TP) == 38
