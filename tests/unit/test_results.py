"""The API's wait for the engine's answer to a command (streams.results)."""

from __future__ import annotations

import asyncio

from streams.results import CommandResults


def ev(cid: str, seq: int, type_: str = "accepted") -> dict:
    return {"event_id": f"c:{seq}", "seq": seq, "type": type_, "data": {"command_id": cid}}


async def test_the_events_of_a_command_come_back_in_order_and_others_are_ignored():
    r = CommandResults()
    r.expect("a")
    r.expect("b")

    async def engine() -> None:
        await asyncio.sleep(0.01)
        r.on_event("alert", {"data": {"command_id": "a"}})  # alerts are not answers
        r.on_event("event", ev("b", 9))
        r.on_event("event", ev("a", 5, "rework"))  # one stored batch, out of order
        r.on_event("event", ev("a", 4, "verified"))

    task = asyncio.create_task(engine())
    got = await r.wait("a", 1.0)
    await task
    assert [(e["seq"], e["type"]) for e in got] == [(4, "verified"), (5, "rework")]
    assert [e["seq"] for e in await r.wait("b", 1.0)] == [9]


async def test_no_answer_within_the_wait_is_none_and_the_waiter_is_forgotten():
    r = CommandResults()
    r.expect("x")
    assert await r.wait("x", 0.05) is None
    r.on_event("event", ev("x", 1))  # too late: nobody waits, nothing is kept
    assert r._waiting == {}


async def test_a_refusal_is_an_answer():
    r = CommandResults()
    r.expect("z")
    r.on_event("event", {"type": "command_rejected", "seq": 0, "reason": "no",
                         "data": {"command_id": "z", "refused": "conflict"}})
    got = await r.wait("z", 1.0)
    assert [e["type"] for e in got] == ["command_rejected"]
