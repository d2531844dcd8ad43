"""Injectable time. The engine never calls ``datetime.now`` directly, so tests (and demos)
can run the deadline ladder in seconds with a scaled or manually advanced clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time, optionally sped up: ``speed=3600`` makes one real second an hour."""

    def __init__(self, speed: float = 1.0, offset: timedelta = timedelta(0)) -> None:
        self.speed = speed
        self.offset = offset
        self._t0 = time.time()
        self._start = datetime.now(UTC)

    def now(self) -> datetime:
        elapsed = (time.time() - self._t0) * self.speed
        return self._start + timedelta(seconds=elapsed) + self.offset

    def advance(self, delta: timedelta) -> None:
        """Jump forward (tests)."""
        self.offset += delta

    @classmethod
    def from_spec(cls, spec: str | None) -> Clock:
        """``None``/``""``/``"system"`` = real time; ``"x3600"`` = 3600× speed."""
        if not spec or spec == "system":
            return cls()
        if spec.startswith("x"):
            return cls(speed=float(spec[1:]))
        raise ValueError(f"clock spec {spec!r}: use 'system' or 'x<speed>', e.g. x3600")


class FixedClock(Clock):
    """A clock that moves only when told to (unit tests)."""

    def __init__(self, at: datetime) -> None:
        super().__init__()
        self.at = at

    def now(self) -> datetime:
        return self.at + self.offset
