"""What the engine made of a command: the HTTP API's wait for it, fed by the event stream.

The API produces a command and awaits :meth:`CommandResults.wait`; the worker's projector
(or live feed) hands every stored case event to :meth:`CommandResults.on_event`, which
resolves the waiter of the event's ``data.command_id``. The API never runs the lifecycle
itself: the case loop's answer — its events, or a ``command_rejected`` event with the reason
— is the one answer.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CommandResults:
    """Waiters keyed by command id; the events of a command are collected as they come."""

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[asyncio.Future, list[dict[str, Any]]]] = {}

    def expect(self, command_id: str) -> None:
        """Register before producing the command, so that no answer can be missed."""
        if command_id not in self._waiting:
            fut = asyncio.get_running_loop().create_future()
            self._waiting[command_id] = (fut, [])

    async def wait(self, command_id: str, timeout: float) -> list[dict[str, Any]] | None:
        """The command's events (in order), or None when none came within ``timeout``."""
        fut, events = self._waiting[command_id]
        try:
            if timeout > 0:
                await asyncio.wait_for(asyncio.shield(fut), timeout)
                await asyncio.sleep(0)  # the rest of the batch the first event came in
            return sorted(events, key=lambda e: e.get("seq") or 0) if fut.done() else None
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(command_id, None)

    def on_event(self, kind: str, msg: dict[str, Any]) -> None:
        """A stored event or alert (a projector / live feed listener)."""
        if kind != "event":
            return
        cid = (msg.get("data") or {}).get("command_id")
        got = self._waiting.get(cid) if isinstance(cid, str) else None
        if got is None:
            return
        fut, events = got
        events.append(msg)
        if not fut.done():
            fut.set_result(None)
