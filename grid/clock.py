"""Injectable time. The engine never calls ``datetime.now`` directly, so tests (and demos)
can run the deadline ladder in seconds with a scaled or manually advanced clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time, optionally sped up: ``speed=3600`` makes one real second an hour."""

    def __init__(self, speed: float = 1.0, offset: timedelta = timedelta(0),
                 origin: float | None = None) -> None:
        """``origin`` (Unix seconds): the instant engine time and real time agree; processes
        sharing a sped-up clock must share it (default: now, i.e. this process's start)."""
        self.speed = speed
        self.offset = offset
        self._t0 = time.time() if origin is None else origin
        self._start = datetime.fromtimestamp(self._t0, UTC)

    def now(self) -> datetime:
        return self.at(time.time())

    def at(self, unix_seconds: float) -> datetime:
        """The engine time at real instant ``unix_seconds`` (e.g. a record's timestamp)."""
        elapsed = (unix_seconds - self._t0) * self.speed
        return self._start + timedelta(seconds=elapsed) + self.offset

    def advance(self, delta: timedelta) -> None:
        """Jump forward (tests)."""
        self.offset += delta

    @classmethod
    def from_spec(cls, spec: str | None) -> Clock:
        """``None``/``""``/``"system"`` = real time; ``"x3600"`` = 3600× speed from now;
        ``"x3600@1763780000"`` = 3600× speed from that Unix time (several processes)."""
        if not spec or spec == "system":
            return cls()
        if spec.startswith("x"):
            speed, _, origin = spec[1:].partition("@")
            try:
                return cls(speed=float(speed), origin=float(origin) if origin else None)
            except ValueError:
                pass
        raise ValueError(f"clock spec {spec!r}: use 'system', 'x<speed>' or "
                         "'x<speed>@<unix time>', e.g. x3600")


def shared_spec(spec: str) -> str:
    """``spec`` with its origin pinned to now, for handing to several processes."""
    if spec.startswith("x") and "@" not in spec:
        return f"{spec}@{time.time():.3f}"
    return spec


class FixedClock(Clock):
    """A clock that moves only when told to (unit tests)."""

    def __init__(self, at: datetime) -> None:
        super().__init__()
        self.fixed = at

    def now(self) -> datetime:
        return self.fixed + self.offset

    def at(self, unix_seconds: float) -> datetime:
        """Whenever it was: this clock's time (it moves only when told to)."""
        return self.now()
