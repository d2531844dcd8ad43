"""The loop's pipelining without a broker: polling queues records per unit, a unit's task
commits while others go on, what arrives meanwhile is its next batch, a failed commit
reaches the loop. A fake consumer and sink stand in for aiokafka (pure unit tests)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from streams.kafka_io import run_forever, stop_client
from streams.loop import PartitionWatch, Stalled, UnitLoop, first_failure
from streams.settings import Settings

TOPIC = "in"


class FakeConsumer:
    def __init__(self) -> None:
        self.sought: list[tuple[TopicPartition, int]] = []

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought.append((tp, offset))

    def highwater(self, tp: TopicPartition) -> int:
        return 100

    async def position(self, tp: TopicPartition) -> int:
        return 50


class GatedSink:
    """Records each commit; a commit of a unit in ``gates`` waits for its event."""

    def __init__(self) -> None:
        self.commits: list[tuple[str, list, dict]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.fail: Exception | None = None

    async def commit(self, unit, records, offsets) -> None:
        if unit in self.gates:
            await self.gates[unit].wait()
        if self.fail is not None:
            raise self.fail
        self.commits.append((unit, records, offsets))


class Loop(UnitLoop):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "test")
        self.handled: list[tuple[str, list[int]]] = []

    def unit_of(self, tp: TopicPartition) -> str:
        return str(tp.partition)

    def handle(self, unit, records):
        self.handled.append((unit, [r.offset for r in records]))
        return [f"out-{unit}-{r.offset}" for r in records], None


def recs(partition: int, *offsets: int) -> tuple[TopicPartition, list]:
    tp = TopicPartition(TOPIC, partition)
    return tp, [SimpleNamespace(topic=TOPIC, partition=partition, offset=o, timestamp=o,
                                value=b"") for o in offsets]


@pytest.fixture()
def loop(tmp_path) -> Loop:
    s = Settings.from_env(broker="kafka://127.0.0.1:9", data_dir=str(tmp_path),
                          app_id=f"unit-{uuid.uuid4().hex[:6]}", batch_size=4)
    lp = Loop(s)
    lp.sink = GatedSink()  # type: ignore[assignment]
    lp.units = {"0", "1"}
    return lp


async def settle(loop: Loop) -> None:
    while loop._running:
        await asyncio.wait(list(loop._running.values()))


def test_a_unit_commits_while_polling_goes_on_and_takes_what_came_meanwhile(loop):
    async def scenario() -> None:
        cons, sink = FakeConsumer(), loop.sink
        sink.gates["0"] = gate = asyncio.Event()
        loop._queue(cons, dict([recs(0, 0, 1)]))
        await asyncio.sleep(0)  # unit 0 handles its first batch and waits in its commit
        assert loop.handled == [("0", [0, 1])]
        loop._queue(cons, dict([recs(0, 2), recs(1, 7)]))  # polled during that commit
        loop._queue(cons, dict([recs(0, 3, 4)]))
        await asyncio.sleep(0.01)
        assert sink.commits == [("1", ["out-1-7"], {TopicPartition(TOPIC, 1): 8})]
        gate.set()
        await settle(loop)
        # the two polls that came while unit 0 committed are one batch, in offset order
        assert loop.handled == [("0", [0, 1]), ("1", [7]), ("0", [2, 3, 4])]
        assert [(u, o) for u, _r, o in sink.commits] == [
            ("1", {TopicPartition(TOPIC, 1): 8}), ("0", {TopicPartition(TOPIC, 0): 2}),
            ("0", {TopicPartition(TOPIC, 0): 5})]
        assert loop.committed == {TopicPartition(TOPIC, 0): 5, TopicPartition(TOPIC, 1): 8}

    asyncio.run(scenario())


def test_records_of_a_unit_not_yet_taken_over_are_read_again(loop):
    async def scenario() -> None:
        cons = FakeConsumer()
        loop._queue(cons, dict([recs(2, 10, 11)]))
        assert cons.sought == [(TopicPartition(TOPIC, 2), 10)]
        assert loop._running == {} and loop.handled == []

    asyncio.run(scenario())


def test_polling_waits_while_batch_size_records_are_queued(loop):
    async def scenario() -> None:
        cons, sink = FakeConsumer(), loop.sink
        sink.gates["0"] = gate = asyncio.Event()
        loop._queue(cons, dict([recs(0, 0)]))
        await asyncio.sleep(0)
        loop._queue(cons, dict([recs(0, 1, 2, 3, 4)]))  # 4 queued = batch_size
        waiting = asyncio.create_task(loop._backpressure())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        gate.set()
        await asyncio.wait_for(waiting, 1)
        await settle(loop)
        assert loop.handled == [("0", [0]), ("0", [1, 2, 3, 4])]

    asyncio.run(scenario())


def test_a_failed_commit_ends_the_loop_at_its_next_turn(loop):
    async def scenario() -> None:
        cons, sink = FakeConsumer(), loop.sink
        sink.fail = RuntimeError("fenced")
        loop._queue(cons, dict([recs(1, 3)]))
        await settle(loop)
        with pytest.raises(RuntimeError, match="fenced"):
            loop._raise_failure()
        loop._raise_failure()  # raised once: the restarted loop starts clean
        assert loop.committed == {}

    asyncio.run(scenario())


def test_quiesce_drops_the_queue_and_waits_for_the_commit_in_hand(loop):
    async def scenario() -> None:
        cons, sink = FakeConsumer(), loop.sink
        sink.gates["0"] = gate = asyncio.Event()
        loop._queue(cons, dict([recs(0, 0)]))
        await asyncio.sleep(0)
        loop._queue(cons, dict([recs(0, 1)]))  # queued behind the commit: dropped
        quiet = asyncio.create_task(loop._quiesce())
        await asyncio.sleep(0.01)
        assert not quiet.done()
        gate.set()
        await asyncio.wait_for(quiet, 1)
        assert loop.handled == [("0", [0])]
        assert [o for _u, _r, o in sink.commits] == [{TopicPartition(TOPIC, 0): 1}]

    asyncio.run(scenario())


class WatchedConsumer(FakeConsumer):
    """A consumer holding partitions 0 and 1: ``paused`` and per-partition stable end and
    fetch position as the test sets them."""

    def __init__(self) -> None:
        super().__init__()
        self.tps = [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)]
        self.paused_tps: set[TopicPartition] = set()
        self.lso: dict[TopicPartition, int] = {}
        self.pos: dict[TopicPartition, int] = {}
        self.answered: dict[TopicPartition, int | None] = {}  # default: just now

    def assignment(self) -> set[TopicPartition]:
        return set(self.tps)

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_tps)

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        return self.lso.get(tp)

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return self.answered.get(tp, int(time.time() * 1000))

    async def position(self, tp: TopicPartition) -> int:
        return self.pos.get(tp, 0)


async def watch_twice(loop: Loop, cons: WatchedConsumer) -> None:
    """Two checks ``stall_seconds`` apart."""
    await loop._watch(cons)
    await asyncio.sleep(loop.settings.stall_seconds)
    await loop._watch(cons)


def test_partition_watch_counts_time_waiting_with_the_same_mark():
    tp = TopicPartition(TOPIC, 0)
    w = PartitionWatch()
    assert w.observe(tp, True, (5, 7), now=100.0) == 0.0
    assert w.observe(tp, True, (5, 7), now=130.0) == 30.0
    assert w.observe(tp, True, (6, 7), now=140.0) == 0.0  # committed moved: progress
    assert w.observe(tp, True, (6, 7), now=150.0) == 10.0
    assert w.observe(tp, False, (6, 7), now=160.0) == 0.0  # nothing waits
    assert w.observe(tp, True, (6, 7), now=170.0) == 0.0


def test_a_partition_left_paused_outside_a_takeover_restarts_the_loop(loop):
    loop.settings.stall_seconds = 0.05
    cons = WatchedConsumer()
    cons.paused_tps = {TopicPartition(TOPIC, 1)}
    with pytest.raises(Stalled, match=r"in\[1\] \(unit 1\) has waited 0 s .*paused True"):
        asyncio.run(watch_twice(loop, cons))


def test_records_past_the_fetch_position_never_fetched_restart_the_loop(loop):
    loop.settings.stall_seconds = 0.05
    cons = WatchedConsumer()
    tp = TopicPartition(TOPIC, 0)
    loop.fetched_to[tp] = cons.pos[tp] = 40
    cons.lso[tp] = 90
    with pytest.raises(Stalled, match=r"in\[0\] .*fetched to 40, stable end 90"):
        asyncio.run(watch_twice(loop, cons))


def test_an_aborted_transaction_at_the_end_or_a_pending_takeover_is_no_stall(loop):
    loop.settings.stall_seconds = 0.05
    cons = WatchedConsumer()
    tp = TopicPartition(TOPIC, 0)
    loop.fetched_to[tp] = 40
    cons.pos[tp] = cons.lso[tp] = 52  # the consumer moved past aborted records: none to read
    asyncio.run(watch_twice(loop, cons))
    cons.pos[tp] = 40  # now they wait, but a newer assignment is about to be taken over
    cons.paused_tps = set(cons.tps)
    loop._takeover = list(cons.tps)
    asyncio.run(watch_twice(loop, cons))
    assert loop.watch.observe(tp, True, (None, 40), now=0.0) == 0.0  # the takeover reset it


def test_records_in_hand_that_commit_are_progress(loop):
    loop.settings.stall_seconds = 0.05
    cons = WatchedConsumer()

    async def scenario() -> None:
        tp = TopicPartition(TOPIC, 0)
        loop._pending["0"] = [recs(0, 1)]  # queued, as if its unit were busy
        await loop._watch(cons)
        await asyncio.sleep(0.06)
        loop.committed[tp] = 2  # ... and its batch committed meanwhile
        await loop._watch(cons)

    asyncio.run(scenario())


def test_a_rebalance_while_the_watch_awaits_a_position_ends_the_look(loop):
    """aiokafka asserts on a partition no longer assigned: the watch reads nothing of a
    partition after an await that a rebalance may have taken it away in."""

    class Rebalancing(WatchedConsumer):
        def last_stable_offset(self, tp):
            assert tp in self.tps, "Partition is not assigned"
            return super().last_stable_offset(tp)

        def assignment(self):  # partition 1 (nothing waits) looked at first
            return sorted(self.tps, key=lambda tp: -tp.partition)

        async def position(self, tp):
            self.tps = [TopicPartition(TOPIC, 1)]  # partition 0 revoked meanwhile
            return 0

    loop.settings.stall_seconds = 0.0
    cons = Rebalancing()
    tp0 = TopicPartition(TOPIC, 0)
    loop.fetched_to[tp0] = 0
    cons.lso[tp0] = 90  # unfetched: the watch awaits its position
    cons.tps = [tp0, TopicPartition(TOPIC, 1)]
    asyncio.run(loop._watch(cons))  # would raise Stalled (stall_seconds 0) or assert;
    # a partition where nothing waits is never stalled, not even at stall_seconds 0
    assert loop.watch.observe(tp0, True, (None, 0), now=5.0) == 0.0  # the look was reset


def test_a_partition_the_fetcher_never_answers_for_restarts_the_loop(loop):
    loop.settings.stall_seconds = 0.05
    cons = WatchedConsumer()
    tp = TopicPartition(TOPIC, 1)
    cons.answered[tp] = None  # resumed, and no fetch answer since
    with pytest.raises(Stalled, match=r"in\[1\] .*paused False.*last fetch answer never"):
        asyncio.run(watch_twice(loop, cons))
    cons.answered[tp] = int(time.time() * 1000) - 6_000  # answered, but not for 6 s
    with pytest.raises(Stalled, match=r"in\[1\] .*last fetch answer 6 s ago"):
        asyncio.run(watch_twice(loop, cons))
    cons.paused_tps = {TopicPartition(TOPIC, 0)}  # paused: not fetched, by design ...
    cons.answered = {tp: None for tp in cons.tps}
    loop._restoring = True  # ... while a takeover restores the state
    asyncio.run(watch_twice(loop, cons))
    assert loop.watch.observe(tp, True, (None, 0), now=0.0) == 0.0  # the restore reset it


def test_the_first_of_two_coroutines_to_fail_ends_both():
    cancelled = asyncio.Event()

    async def stuck() -> None:  # a poll waiting on an await that never returns
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def watch() -> None:
        await asyncio.sleep(0.01)
        raise Stalled("in[0] has waited")

    async def scenario() -> None:
        with pytest.raises(Stalled, match=r"in\[0\] has waited"):
            await first_failure(stuck(), watch())
        assert cancelled.is_set()

    asyncio.run(scenario())


def _runs_of_a_consumer_cancelled(consume_body) -> tuple[int, bool]:
    """Start ``run_forever`` on a consumer whose body is ``consume_body(started)``, cancel
    it once started, and return (times the consumer started, whether the task ended
    cancelled rather than with an error)."""
    starts = 0
    abandon = False  # set when the loop went on: the consumer then ends it, so the test fails

    async def scenario() -> tuple[int, bool]:
        nonlocal starts, abandon
        started = asyncio.Event()

        async def consume() -> None:
            nonlocal starts
            if abandon:
                raise asyncio.CancelledError
            starts += 1
            await consume_body(started)

        task = asyncio.create_task(run_forever(consume, "test loop", pause=0.01))
        await started.wait()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2.0)
        if not done:
            abandon = True
            await asyncio.wait([task], timeout=2.0)
        assert done, f"run_forever went on after it was cancelled ({starts} starts)"
        return starts, task.cancelled()

    return asyncio.run(scenario())


def test_a_cancelled_loop_whose_clean_up_fails_stops_instead_of_restarting():
    async def body(started: asyncio.Event) -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            raise ConnectionError("leaving the group failed")  # replaces the CancelledError

    starts, cancelled = _runs_of_a_consumer_cancelled(body)
    assert starts == 1
    assert cancelled is True


def test_a_cancelled_loop_whose_consumer_swallowed_the_cancel_stops():
    async def body(started: asyncio.Event) -> None:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):  # as some client code does
            await asyncio.Event().wait()

    starts, cancelled = _runs_of_a_consumer_cancelled(body)
    assert starts == 1
    assert cancelled is True


def test_a_failed_consumer_not_cancelled_is_started_again():
    async def body(started: asyncio.Event) -> None:
        if starts_seen.append(1) or len(starts_seen) == 3:
            started.set()
            await asyncio.Event().wait()
        raise ConnectionError("broker gone")

    starts_seen: list[int] = []
    starts, cancelled = _runs_of_a_consumer_cancelled(body)
    assert starts == 3
    assert cancelled is True


class _Stopping:
    """A consumer whose ``stop`` hangs (its broker gone), fails or returns at once."""

    def __init__(self, hangs: bool, fails: bool = False) -> None:
        self.hangs, self.started, self.finished, self.cancelled = hangs, False, False, False
        self.fails = fails

    async def stop(self) -> None:
        self.started = True
        try:
            if self.fails:
                raise ConnectionError("broker gone")
            if self.hangs:
                await asyncio.Event().wait()
            self.finished = True
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def test_a_client_that_does_not_stop_or_fails_to_is_dropped_and_logged(caplog):
    hung, quick = _Stopping(hangs=True), _Stopping(hangs=False)
    failing = _Stopping(hangs=False, fails=True)
    caplog.set_level(logging.INFO, logger="streams.kafka_io")

    async def scenario() -> None:
        await stop_client(hung, timeout=0.05)  # type: ignore[arg-type]
        await stop_client(failing, timeout=0.05)  # type: ignore[arg-type]
        await stop_client(quick, timeout=0.05)  # type: ignore[arg-type]

    asyncio.run(scenario())
    assert (hung.started, hung.finished, hung.cancelled) == (True, False, True)
    assert (failing.started, failing.finished, failing.cancelled) == (True, False, False)
    assert (quick.started, quick.finished, quick.cancelled) == (True, True, False)
    assert [r.getMessage() for r in caplog.records] == [
        "a consumer did not stop within 0.05 s; dropped",
        "a consumer stopped with an error: ConnectionError('broker gone')"]
