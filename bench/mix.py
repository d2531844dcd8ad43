"""The benchmark's message mix and what the engine makes of it.

:func:`messages` draws the stream from :class:`grid.simulator.Simulator` (duplicates,
redeliveries and ~2 % bad input included) at points inside the loaded coverage.
:func:`output_profile` runs the pure engine in-process on a sample of that stream and counts
the messages it produces per report — located hop, case events, work orders, alerts, DLQ
entries and the two changelog writes per case change — with their mean sizes; the raw
aiokafka baseline produces the same numbers of messages of the same sizes (one worker, as in
the bench, handles every case inline: no located hop).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np

from grid.models import CASE_NAMESPACE


def sample_points(locator, n: int, seed: int = 11,
                  district: str | None = None) -> list[tuple[float, float]]:
    """``n`` WGS-84 points inside cells, spread over the whole coverage or over one
    ``district`` (vectorised)."""
    rng = np.random.default_rng(seed)
    comms = locator.layers["communities"]
    if district:
        comms = comms[comms["code"].astype(str).str.startswith(district)]
    minx, miny, maxx, maxy = (float(v) for v in comms.total_bounds)
    out: list[tuple[float, float]] = []
    for _ in range(50):
        lons = rng.uniform(minx, maxx, 8 * n)
        lats = rng.uniform(miny, maxy, 8 * n)
        placed = locator.locate_many(lons, lats, "wgs84")
        out += [(float(x), float(y)) for x, y, p in zip(lons, lats, placed, strict=True)
                if p is not None and p.cell is not None
                and (district is None or p.district == district)]
        if len(out) >= n:
            break
    return out[:n]


def simulator(locator, seed: int = 7, n_points: int = 2000, district: str | None = None):
    from grid.simulator import Simulator
    from grid.taxonomy import default_taxonomy

    return Simulator(default_taxonomy(), sample_points(locator, n_points, district=district),
                     seed=seed)


def messages(sim, n: int, now: datetime | None = None) -> list[bytes]:
    """The next ``n`` raw messages of the simulated stream."""
    stream = sim.stream(now or datetime.now(UTC))
    return [next(stream) for _ in range(n)]


def case_suffix(report_id: str) -> str:
    """The report-derived part of a case id (``grid.models.case_id_for`` without the street)."""
    return uuid.uuid5(CASE_NAMESPACE, report_id).hex[:12]


@dataclass
class OutputProfile:
    """Messages the engine produces per input message, by kind, and their mean sizes."""

    inputs: int = 0
    counts: dict[str, float] = field(default_factory=dict)  # kind -> messages per input
    sizes: dict[str, int] = field(default_factory=dict)  # kind -> mean value bytes

    @property
    def per_input(self) -> float:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return asdict(self) | {"per_input": round(self.per_input, 3)}


def output_profile(engine, raws: list[bytes], now: datetime | None = None,
                   forwarded: bool = False) -> OutputProfile:
    """Run ``engine`` in-process (dict-backed store) over ``raws`` and count its output.

    ``forwarded``: count the located hop too (a report whose street partition another
    worker holds); a single worker holds them all and handles every case inline."""
    from grid.service import dumps
    from streams.state import CaseStore, encode_case

    now = now or datetime.now(UTC)
    store = CaseStore({}, {})
    tally: dict[str, list[int]] = {}

    def add(kind: str, value: bytes) -> None:
        tally.setdefault(kind, []).append(len(value))

    for i in range(0, len(raws), 500):
        located, dead = engine.intake(raws[i:i + 500], now)
        for d in dead:
            add("dlq", dumps(d))
        for msg in located:
            if forwarded:
                add("located", dumps(msg))
            fx = store.on_located(engine, msg, now)
            if fx.case is not None and not fx.duplicate_delivery:
                add("changelog_case", encode_case(fx.case))
                add("changelog_index", fx.case.case_id.encode())
            for e in fx.events:
                add("event", dumps(e))
            for w in fx.work_orders:
                add("work_order", dumps(w))
            for a in fx.alerts:
                add("alert", dumps(a))
    n = len(raws)
    return OutputProfile(
        inputs=n,
        counts={k: round(len(v) / n, 4) for k, v in sorted(tally.items())},
        sizes={k: int(sum(v) / len(v)) for k, v in sorted(tally.items())},
    )
