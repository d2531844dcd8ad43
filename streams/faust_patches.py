"""Changes to faust-streaming 0.15.3 (the newest release) that the worker needs.

**Fetch wait.** Faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500``. Apache Kafka
answers a fetch as soon as one byte is there, so this costs nothing; the embedded Tansu
broker holds the fetch for the whole wait when a partition is empty, which put ~1 s on every
hop of the pipeline. :func:`set_fetch_wait` (``GRID_FETCH_WAIT_MS``, default 25 ms; the
intake consumer uses it too) caps it. Much shorter is worse, not better: Tansu's cost per
fetch grows with the number of record batches stored in the partitions fetched, and 2 ms
waits overloaded it (docs/BENCHMARKS.md).

**A message lost after a rebalance** (faust-streaming issues #596 and #606, unfixed in
0.15.3). When table recovery ends, Faust resumes the stream partitions, seeks them to their
committed offsets and then calls ``app.flow_control.resume()``, which empties every stream
queue even though flow was already running: messages fetched in between are dropped
without being acked. A partition with no committed offset is not sought back, so they are
never read again. ``Consumer._new_offset`` then commits past the hole when it is a single
offset at the head (it only withholds the commit when the first acked offset is more than
one past the committed one), so the message is lost for good. Seen in the two-worker
rebalance test: exactly one forwarded report, the one in the agent's queue at "Worker
ready", never handled. :func:`fix_rebalance_loss` makes ``resume()`` a no-op when flow is
not suspended (a real suspension still clears the queues, as Faust intends), and never
lets a commit pass an offset that has not been acked.
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as driver
from mode.utils.queues import FlowControlEvent

_create_consumer = driver.AIOKafkaConsumerThread._create_worker_consumer
_PATCHED = "_grid_rebalance_fix"


def set_fetch_wait(ms: int) -> None:
    """Make every Faust worker consumer created after this call wait at most ``ms``."""

    def create(self: Any, transport: Any) -> Any:
        consumer = _create_consumer(self, transport)
        consumer._fetch_max_wait_ms = ms  # read by aiokafka when the consumer starts
        return consumer

    driver.AIOKafkaConsumerThread._create_worker_consumer = create


def fix_rebalance_loss() -> None:
    """Keep Faust from dropping, and committing past, messages at the end of a rebalance
    (idempotent)."""
    if getattr(FlowControlEvent, _PATCHED, False):
        return
    resume = FlowControlEvent.resume

    def resume_if_suspended(self: FlowControlEvent) -> None:
        if self.is_active():
            return  # flow is running: the queued messages are current, keep them
        resume(self)

    new_offset = Consumer._new_offset

    def new_offset_not_past_unacked(self: Consumer, tp: Any) -> int | None:
        acked, committed = self._acked[tp], self._committed_offset.get(tp)
        if acked and committed is not None and not self._gap.get(tp) \
                and min(acked) > committed:
            return None  # the message at the committed offset is not acked yet
        return new_offset(self, tp)

    FlowControlEvent.resume = resume_if_suspended
    Consumer._new_offset = new_offset_not_past_unacked
    setattr(FlowControlEvent, _PATCHED, True)
