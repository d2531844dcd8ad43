"""A realistic report stream for demos, tests and benchmarks (pure: no I/O).

The mix follows published digital-city-management bulletins: about half of all cases are
illegal posters and small ads, then exposed garbage, street order and facility damage;
supervisors fix some posters and garbage on the spot with evidence; hotline reports carry
free text (no type code) for the classifier; a few reports are duplicates of recent ones,
a few are redelivered, and a small share is bad input (for the dead-letter queue).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from grid.taxonomy import IncidentType, Taxonomy

# type code -> weight (the rest of the 120 types share WEIGHT_OTHER)
WEIGHTS = {"0701": 48.0, "0601": 12.0, "0901": 3.0, "0101": 1.5, "0102": 0.3, "0702": 2.0,
           "0801": 1.5, "0602": 3.0, "0603": 1.0, "0604": 1.0}
WEIGHT_OTHER = 27.0
SOURCES = [("supervisor", 75), ("hotline_12345", 12), ("video", 5), ("sensor", 3),
           ("citizen", 4), ("hotline_12319", 1)]
BAD_INPUTS: list[bytes] = [
    b'{"schema": "grid.report/1", "report_id": ',  # truncated
    b"not json at all",
    b'{"schema": "grid.report/1", "report_id": "x", "source": "supervisor"}',
    b'{"schema": "grid.report/9"}',
    b"\xff\xfe\x00garbage",
    b'[1, 2, 3]',
]


@dataclass
class Mix:
    """Shares of the stream (0..1)."""

    self_dispose: float = 0.4  # of self-disposable reports by supervisors
    duplicate: float = 0.03
    redeliver: float = 0.01
    bad: float = 0.02


class Simulator:
    """Generates report dicts (wire format) at points inside the covered cells."""

    def __init__(self, taxonomy: Taxonomy, points: Sequence[tuple[float, float]], seed: int = 7,
                 mix: Mix | None = None) -> None:
        self.taxonomy = taxonomy
        self.points = list(points)
        if not self.points:
            raise ValueError("the simulator needs at least one point inside the coverage")
        self.rng = random.Random(seed)
        self.mix = mix or Mix()
        codes = sorted(taxonomy.types)
        others = [c for c in codes if c not in WEIGHTS]
        self.codes = [*WEIGHTS, *others]
        self.weights = [*WEIGHTS.values(), *([WEIGHT_OTHER / max(len(others), 1)] * len(others))]
        self.recent: list[dict[str, Any]] = []

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def report(self, now: datetime) -> dict[str, Any]:
        """One fresh, valid report."""
        rng = self.rng
        code = rng.choices(self.codes, self.weights)[0]
        t = self.taxonomy.types[code]
        source = rng.choices([s for s, _ in SOURCES], [w for _, w in SOURCES])[0]
        lon, lat = rng.choice(self.points)
        lon += rng.uniform(-0.0002, 0.0002)
        lat += rng.uniform(-0.0002, 0.0002)
        r: dict[str, Any] = {
            "schema": "grid.report/1", "report_id": self._uuid(), "source": source,
            "reporter_id": f"{source[:3]}-{rng.randint(1, 400):04d}",
            "reported_at": (now - timedelta(seconds=rng.randint(0, 120))).isoformat(),
            "location": {"lon": round(lon, 7), "lat": round(lat, 7), "crs": "wgs84"},
            "description": self._describe(t), "photos": [f"https://img.example/p/{self._uuid()}.jpg"],
        }
        if source in ("supervisor", "video", "sensor"):
            r["type_code"] = code
        if code == "0101":
            r["component_id"] = rng.choice(["SS-", "WS-", "YS-", "DL-", "RQ-", "TX-"]) + str(
                rng.randint(10000, 99999))
        if (source == "supervisor" and t.handling == "self_disposable"
                and rng.random() < self.mix.self_dispose):
            r["self_disposed"] = True
            r["evidence_photos"] = [f"https://img.example/e/{self._uuid()}.jpg"]
        return r

    def _describe(self, t: IncidentType) -> str:
        words = list(t.keywords_zh[:2]) if t.keywords_zh else [t.name_zh]
        return f"{self.rng.choice(['发现', '路边', '小区门口', '路口'])}{''.join(words)}，请处理"

    def stream(self, now: datetime | Callable[[], datetime]) -> Iterator[bytes]:
        """An endless stream of raw messages (bytes), with duplicates and bad input; ``now``
        is the reports' time, or a function giving it (a running clock)."""
        while True:
            x = self.rng.random()
            m = self.mix
            if x < m.bad:
                yield self.rng.choice(BAD_INPUTS)
                continue
            if x < m.bad + m.redeliver and self.recent:
                yield orjson.dumps(self.rng.choice(self.recent))
                continue
            if x < m.bad + m.redeliver + m.duplicate and self.recent:
                dup = dict(self.rng.choice(self.recent))
                dup.update(report_id=self._uuid(), self_disposed=False, evidence_photos=[],
                           reporter_id="cit-dup", source="supervisor")
                dup["type_code"] = dup.get("type_code") or "0701"
                yield orjson.dumps(dup)
                continue
            r = self.report(now() if callable(now) else now)
            self.recent = [*self.recent[-199:], r]
            yield orjson.dumps(r)
