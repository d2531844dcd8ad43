"""Crash soak: the CI crash test, longer. SIGKILL the worker at random moments while reports
flow, restart it, and check the whole output (tests/integration/reliability.py:check_run).

    python scripts/crash_soak.py --reports 100000 --kills 10 --seed 1

Runs its own embedded broker; exit status 1 when the check fails.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streams.broker import EmbeddedBroker, ensure_topics
from streams.topics import ALL_TOPICS
from tests.integration.conftest import WorkerProc
from tests.integration.reliability import (
    check_run,
    produce,
    sim_messages,
    wait_accounted,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=int, default=100_000)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="grid-soak-"))
    raws, bad = sim_messages(args.reports, seed=args.seed)
    chunks = max(args.kills * 2, 10)
    size = -(-len(raws) // chunks)
    kill_at = set(rng.sample(range(chunks - 1), min(args.kills, chunks - 1)))
    app_id = f"soak-{uuid.uuid4().hex[:6]}"
    broker = EmbeddedBroker(log_path=tmp / "tansu.log").start()
    workers: list[WorkerProc] = []

    def start() -> WorkerProc:
        w = WorkerProc(broker.url, tmp, app_id)
        w.env["GRID_CLOCK"] = "system"
        workers.append(w.start())
        return w

    try:
        ensure_topics(broker.bootstrap, ALL_TOPICS)
        w = start()
        t0 = time.monotonic()
        for i in range(chunks):
            produce(broker.bootstrap, raws[i * size:(i + 1) * size])
            time.sleep(rng.uniform(0.5, 4.0))
            if i in kill_at:
                w.kill(signal.SIGKILL)
                print(f"{time.monotonic() - t0:7.1f} s  SIGKILL after chunk {i}", flush=True)
                w = start()
        log = wait_accounted(broker.bootstrap, raws, bad, timeout=900)
        counts = check_run(log, raws, bad)
        print(f"OK in {time.monotonic() - t0:.0f} s: {len(kill_at)} kills, {counts}")
        return 0
    except AssertionError as err:
        print(f"FAILED: {err}\nworker log: {workers[-1].log_path}", file=sys.stderr)
        return 1
    finally:
        for x in workers:
            x.stop()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
