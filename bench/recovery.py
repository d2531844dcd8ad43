"""Recovery: time to rebuild case state from a log of case events.

Realistic histories come from the pure engine (reports from the simulator, then accept →
dispose → verify → close for the dispatched ones); they are serialised as on
``grid.case-events.v1`` and copied under fresh case ids until the log holds ``n`` events.
Timed: parse every event (``CaseEvent.model_validate_json``) and fold it into its case with
:func:`grid.lifecycle.evolve` — what a new read model or a lost table would do — and, for
comparison, decoding the ``cases`` table as restored from its changelog (one latest case JSON
per case) into the store's open-case index, as a worker does after recovery.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from grid.service import dumps


def _templates(geodata: str | None, n_reports: int = 1500) -> list[list[bytes]]:
    from bench import mix
    from grid import lifecycle
    from grid.models import Action, Command
    from grid.service import Engine

    engine = Engine.load(geodata)
    sim = mix.simulator(engine.locator, seed=3)
    now = datetime.now(UTC)
    located, _ = engine.intake(mix.messages(sim, n_reports, now), now)
    out = []
    for msg in located:
        fx = engine.on_located(msg, None, (), now)
        case, events = fx.case, list(fx.events)
        if case is not None and case.state == "dispatched":
            steps = [(Action.ACCEPT, case.department, "department", {}),
                     (Action.DISPOSE, case.department, "department",
                      {"evidence_photos": ["https://img.example/d/1.jpg"]}),
                     (Action.VERIFY, "sup-1", "supervisor", {"passed": True}),
                     (Action.CLOSE, "cc-1", "command_center", {})]
            for i, (action, actor, role, kw) in enumerate(steps):
                at = now + timedelta(hours=i + 1)
                cmd = Command(command_id=str(uuid.uuid4()), case_id=case.case_id,
                              action=action, actor=actor, role=role, at=at, **kw)
                try:
                    case, evs = lifecycle.apply(case, cmd, at)
                except lifecycle.IllegalTransition:  # e.g. a joint case waits for its
                    break  # assisting departments: its history stops there (still open)
                events += evs
        if events:
            out.append([dumps(e) for e in events])
    return out


def build_log(n: int, geodata: str | None = None) -> list[tuple[str, bytes]]:
    """``n`` serialised case events (case_id, JSON), histories in order per case."""
    templates = _templates(geodata)
    log: list[tuple[str, bytes]] = []
    copy = 0
    while len(log) < n:
        for evs in templates:
            old = evs[0].split(b'"case_id":"', 1)[1].split(b'"', 1)[0]
            new = old[:-12] + f"{copy:06d}{len(log) % 1000000:06d}".encode()[-12:]
            cid = new.decode()
            log += [(cid, e.replace(old, new)) for e in evs]
            if len(log) >= n:
                break
        copy += 1
    return log[:n]


def replay_log(log: list[tuple[str, bytes]]) -> dict[str, object]:
    """Fold the log into cases (parse + evolve); returns case_id → Case."""
    from grid.lifecycle import evolve
    from grid.models import CaseEvent

    cases: dict[str, object] = {}
    for cid, raw in log:
        cases[cid] = evolve(cases.get(cid), CaseEvent.model_validate_json(raw))
    return cases


def measure(n: int = 1_000_000, geodata: str | None = None) -> dict[str, object]:
    from streams.state import CaseStore, encode_case

    t = time.perf_counter()
    log = build_log(n, geodata)
    built = time.perf_counter() - t
    t = time.perf_counter()
    cases = replay_log(log)
    replay_s = time.perf_counter() - t
    table = {cid.encode(): encode_case(c) for cid, c in cases.items()}
    t = time.perf_counter()
    store = CaseStore(table, {})
    open_cases = store.open_count()
    index_s = time.perf_counter() - t
    return {"events": len(log), "cases": len(cases), "log_build_s": round(built, 1),
            "replay_s": round(replay_s, 1), "replay_events_per_s": round(len(log) / replay_s),
            "table_entries": len(table), "open_cases": open_cases,
            "table_index_s": round(index_s, 1)}
