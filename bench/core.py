"""CPU per report of the pure engine, on the path a worker takes (issue 14).

Runs against whichever tree is on PYTHONPATH, so an old and a new engine are measured with
one script, alternately (the host's speed drifts by more than most changes)::

    git worktree add /tmp/old HEAD~3
    PYTHONPATH=/tmp/old python bench/core.py ~/.cache/grid/geodata/city
    PYTHONPATH=. python bench/core.py ~/.cache/grid/geodata/city

Per batch of ``BATCH`` simulated reports (:mod:`bench.mix`): intake (parse, locate,
classify, decide), the located record's JSON and its parse, the case loop's handling
(:class:`streams.state.CaseStore`, changelog writes encoded and dropped) and the JSON of
every event, work order and alert. Prints the process CPU µs per report, the best of
``ROUNDS`` rounds over the same reports (each into an empty store).

    python bench/core.py [GEODATA_DIR ("": the Yangpu demo)] [REPORTS (8000)]
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from bench.mix import messages, simulator
from grid.service import Engine, Located, dumps
from streams.state import CaseStore

BATCH = 200
ROUNDS = 3


def run(engine: Engine, raws: list[bytes], now: datetime) -> int:
    """One pass over ``raws``; returns the number of case events made."""
    store = CaseStore({}, {}, writer=lambda table, key, value: None)
    n = 0
    for i in range(0, len(raws), BATCH):
        for res in engine.intake_each(raws[i:i + BATCH], now):
            raw = dumps(res)
            if not isinstance(res, Located):
                continue
            fx = store.on_located(engine, Located.model_validate_json(raw), now)
            for model in (*fx.events, *fx.work_orders, *fx.alerts):
                dumps(model)
            n += len(fx.events)
    return n


def main() -> None:
    geodata = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None  # None: the demo
    reports = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
    engine = Engine.load(geodata)
    raws = messages(simulator(engine.locator), reports)
    now = datetime.now(UTC)
    run(engine, raws[:1000], now)  # warm caches
    seconds = []
    for _ in range(ROUNDS):
        t0 = time.process_time()
        events = run(engine, raws, now)
        seconds.append(time.process_time() - t0)
    print(f"{min(seconds) / reports * 1e6:.0f} µs of CPU a report (rounds: "
          f"{', '.join(f'{s:.2f} s' for s in seconds)}; {reports} reports, {events} events)")


if __name__ == "__main__":
    main()
