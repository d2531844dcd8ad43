"""What each consumer of a worker is doing: the truth behind ``/api/v1/health``,
``/api/v1/ready`` and the ``grid_consumer_*`` metrics.

A consumer is

* ``starting`` until its first loop, ``running`` while it loops, ``restarting`` between a
  failure and its next start (:func:`streams.kafka_io.run_forever` reports failures);
* **stuck** when input waits for it and it has not moved its committed position for
  ``stuck_after`` seconds, when its loop has not come round for that long, or when it has
  been restarting for that long. A stuck consumer fails the health check (HTTP 503).

Progress is what a consumer has *committed*, not what it has handled: output that cannot be
delivered is not progress. A backlog that is being worked off is not stuck.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# upper bounds (seconds) of the commit-time histogram (grid_commit_seconds)
COMMIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class ConsumerHealth:
    """The health of one consumer loop. The owner calls :meth:`beat` every loop,
    :meth:`fetched` for each batch it takes, :meth:`committed` after a commit, and
    :meth:`failed` / :meth:`started` around restarts."""

    name: str
    stuck_after: float = 30.0
    lag: Callable[[], int] = lambda: 0  # messages waiting (end offset - committed)
    state: str = "starting"
    restarts: int = 0
    last_error: str = ""
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    _beat: float = field(default=0.0)
    _progress: float = field(default=0.0)
    _failed_at: float = field(default=0.0)
    _committed: dict[Any, int] = field(default_factory=dict)
    _pending: dict[Any, list[tuple[int, float]]] = field(default_factory=dict)
    _commit_counts: list[int] = field(default_factory=lambda: [0] * (len(COMMIT_BUCKETS) + 1))
    _commit_sum: float = 0.0

    def __post_init__(self) -> None:
        self._beat = self._progress = self.clock()

    # -- what the consumer reports ---------------------------------------------------------
    def started(self) -> None:
        self.state = "running"
        self._beat = self.clock()

    def beat(self) -> None:
        self._beat = self.clock()

    def failed(self, err: BaseException) -> None:
        self.state = "restarting"
        self.restarts += 1
        self.last_error = f"{type(err).__name__}: {err}"[:300]
        self._failed_at = self.clock()
        self._pending.clear()  # a new consumer fetches them again

    def fetched(self, tp: Any, first_offset: int, first_timestamp_ms: int) -> None:
        """A batch of ``tp`` starting at ``first_offset`` was taken (not yet committed)."""
        self._pending.setdefault(tp, []).append((first_offset, first_timestamp_ms / 1000))

    def committed(self, offsets: Mapping[Any, int]) -> None:
        """Offsets were committed: what lies before them is done."""
        moved = False
        for tp, off in offsets.items():
            if self._committed.get(tp) != off:
                moved = True
                self._committed[tp] = off
            if tp in self._pending:
                self._pending[tp] = [(o, ts) for o, ts in self._pending[tp] if o >= off]
                if not self._pending[tp]:
                    del self._pending[tp]
        if moved:
            self._progress = self.clock()

    def commit_took(self, seconds: float) -> None:
        """One commit (output and offsets: a Kafka transaction on Apache Kafka) took this
        long, from its first request to its acknowledgement."""
        self._commit_counts[bisect_left(COMMIT_BUCKETS, seconds)] += 1
        self._commit_sum += seconds

    def commit_histogram(self) -> tuple[list[tuple[float, int]], float]:
        """The commit times so far as cumulative histogram buckets (upper bound in seconds,
        commits that took at most that long; ``inf`` last: all of them) and their sum."""
        buckets, n = [], 0
        for bound, count in zip((*COMMIT_BUCKETS, math.inf), self._commit_counts, strict=True):
            n += count
            buckets.append((bound, n))
        return buckets, self._commit_sum

    def revoked(self, tps: Any) -> None:
        for tp in tps:
            self._pending.pop(tp, None)

    # -- what health, readiness and metrics read -------------------------------------------
    def oldest_unprocessed_seconds(self) -> float:
        """Age of the oldest input taken but not yet committed (0 when none waits)."""
        stamps = [ts for batches in self._pending.values() for _o, ts in batches]
        return max(0.0, self.wall() - min(stamps)) if stamps else 0.0

    def stuck_reason(self) -> str | None:
        """Why the consumer counts as stuck, in words; ``None`` when it is not."""
        now, n = self.clock(), self.stuck_after
        if self.state == "restarting" and now - self._failed_at >= n:
            return (f"{self.name} has been failing for {now - self._failed_at:.0f} s "
                    f"({self.restarts} restarts; last error: {self.last_error})")
        if self.state == "running" and now - self._beat >= n:
            return f"{self.name}'s loop has not come round for {now - self._beat:.0f} s"
        waiting = self.lag() or sum(len(b) for b in self._pending.values())
        if self.state != "starting" and waiting and now - self._progress >= n:
            return (f"{self.name}: {waiting} message(s) wait and nothing was committed "
                    f"for {now - self._progress:.0f} s")
        return None

    def status(self) -> dict[str, Any]:
        reason = self.stuck_reason()
        return {"state": "stuck" if reason else self.state, "stuck": reason is not None,
                "reason": reason, "lag": self.lag(), "restarts": self.restarts,
                "last_error": self.last_error or None,
                "oldest_unprocessed_seconds": round(self.oldest_unprocessed_seconds(), 3),
                "seconds_since_commit": round(self.clock() - self._progress, 3)}
