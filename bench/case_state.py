"""Case changelog value size and handling CPU per input (issue 14, slim state).

Runs against whichever tree is on PYTHONPATH (it uses only what the grid.case/1 and /2 trees
share), so the old and the new engine are measured with one script, e.g.::

    git archive 39abba4 | tar -x -C /tmp/old-slim          # the tree before
    PYTHONPATH=/tmp/old-slim python bench/case_state.py 3000
    PYTHONPATH=. python bench/case_state.py 3000

Drives the pure engine through :class:`streams.state.CaseStore` (the case loop's path) with
the bench mix (:mod:`bench.mix`: simulated reports, duplicates and redeliveries included),
then walks every case on with commands, one per case and round, for 7 rounds: accept,
dispose, a failed verify then (after rework) a passed one, close; a deadline warning for
cases waiting in filed/triage/returned; in round 3 every applied command is sent a second
time (a client's retry, ``duplicate_delivery``). Every case write is encoded
(``encode_case``) and measured; the store's decoded-case cache is off, so every read decodes
the stored bytes (``decode_case``): the CPU per input is decode + decide + encode. Last,
what a restarted worker pays per case of its changelog: decoding every final case, and
``CaseStore.rebuild`` (decode + the open-case index) over them.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

from bench.mix import messages, simulator
from grid.models import Action, Command
from grid.service import Engine
from streams.state import CaseStore, decode_case

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
STEP = {"dispatched": (Action.ACCEPT, "department"), "accepted": (Action.DISPOSE, "department"),
        "rework": (Action.DISPOSE, "department"), "disposed": (Action.VERIFY, "supervisor"),
        "verified": (Action.CLOSE, "command_center")}


def command(case, step: int) -> Command | None:
    """The command of round ``step`` for ``case`` (None: it waits this round)."""
    state = case.state.value
    holder = case.unit or case.department or "x"
    kw: dict = {}
    if state in STEP:
        action, role = STEP[state]
        actor = {"department": holder, "supervisor": "sup-1"}.get(role, "cc-1")
        if action is Action.VERIFY:
            kw["passed"] = case.reworks > 0
    elif state in ("filed", "triage", "returned") and step == 1:
        action, role, actor, kw = Action.WARN, "system", "engine", {"stage": "dispose"}
    else:
        return None
    return Command(command_id=f"c{step}-{action.value}-{case.case_id}", case_id=case.case_id,
                   action=action, actor=actor, role=role, street=case.placement.street,
                   reason="done", **kw)


def commands(engine: Engine, store: CaseStore, cases: dict[bytes, bytes]) -> tuple[int, float]:
    """Seven rounds of commands over every case: (commands handled, CPU seconds)."""
    n_cmd, t_cmd, later = 0, 0.0, NOW
    ids = list(cases)
    for step in range(7):
        later += timedelta(hours=1)
        for key in ids:
            t0 = time.process_time()
            case = decode_case(cases[key])
            c = command(case, step)
            if c is None:
                continue
            fx = engine.on_command(c, case, later)
            applied = not fx.duplicate_delivery and any(e.seq > 0 for e in fx.events)
            if fx.case is not None and applied:
                store.put(fx.case)
            t_cmd += time.process_time() - t0
            n_cmd += 1
            if step == 2 and applied:  # the client sends it again
                t0 = time.process_time()
                again = engine.on_command(c, decode_case(cases[key]), later)
                assert again.duplicate_delivery
                t_cmd += time.process_time() - t0
                n_cmd += 1
    return n_cmd, t_cmd


def run(n: int) -> dict:
    engine = Engine.load()
    raws = messages(simulator(engine.locator, seed=7), n, NOW)
    located = []
    for i in range(0, len(raws), 500):
        located += engine.intake(raws[i:i + 500], NOW)[0]
    sizes: list[int] = []
    cases: dict[bytes, bytes] = {}
    index: dict[bytes, bytes] = {}

    def write(table: str, key: bytes, value: bytes) -> None:
        (cases if table == "cases" else index)[key] = value
        if table == "cases":
            sizes.append(len(value))

    store = CaseStore(cases, index, writer=write, cache_size=0)  # every read decodes
    t0 = time.process_time()
    for msg in located:
        store.on_located(engine, msg, NOW)
    t_rep = time.process_time() - t0
    opening = list(sizes)

    n_cmd, t_cmd = commands(engine, store, cases)
    # what a restarted worker pays per case of its changelog: decode, and the index rebuild
    t0 = time.process_time()
    for v in cases.values():
        decode_case(v)
    t_decode = time.process_time() - t0
    t0 = time.process_time()
    CaseStore(dict(cases), dict(index)).rebuild()
    t_rebuild = time.process_time() - t0
    states: dict[str, int] = {}
    for v in cases.values():
        s = json.loads(v)["state"]
        states[s] = states.get(s, 0) + 1
    return {
        "reports": len(raws), "located": len(located), "commands": n_cmd,
        "case_writes": len(sizes), "avg_bytes": round(sum(sizes) / len(sizes)),
        "p50_bytes": int(statistics.median(sizes)), "max_bytes": max(sizes),
        "avg_bytes_opening_writes": round(sum(opening) / len(opening)),
        "avg_bytes_final": round(sum(map(len, cases.values())) / len(cases)),
        "cpu_us_per_report": round(1e6 * t_rep / len(located), 1),
        "cpu_us_per_command": round(1e6 * t_cmd / n_cmd, 1),
        "restore_us_per_case_decode": round(1e6 * t_decode / len(cases), 1),
        "restore_us_per_case_rebuild": round(1e6 * t_rebuild / len(cases), 1),
        "states": states,
    }


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)))
