"""Clock specs: real time, sped up, sped up from a shared origin (pure)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from grid.clock import Clock, shared_spec


def test_system_clock_is_real_time():
    before = datetime.now(UTC)
    now = Clock.from_spec("system").now()
    assert before <= now <= datetime.now(UTC)


def test_processes_with_one_origin_agree_whenever_they_started():
    origin = time.time() - 10  # ten real seconds ago
    a = Clock.from_spec(f"x600@{origin}")
    b = Clock.from_spec(f"x600@{origin}")
    ahead = (a.now() - datetime.now(UTC)).total_seconds()
    assert 5990 - 60 < ahead < 6000 + 60  # ~10 s × 600 ahead of real time
    assert abs((a.now() - b.now()).total_seconds()) < 60  # a few ms of real time apart


def test_shared_spec_pins_the_origin_once():
    spec = shared_spec("x600")
    assert spec.startswith("x600@") and shared_spec(spec) == spec
    assert shared_spec("system") == "system"


@pytest.mark.parametrize("bad", ["fast", "x", "xfast", "x600@soon"])
def test_bad_specs_say_what_is_accepted(bad):
    with pytest.raises(ValueError, match="x<speed>@<unix time>"):
        Clock.from_spec(bad)


def test_a_sped_up_clock_maps_a_real_instant_to_engine_time():
    clock = Clock(speed=60, origin=1_763_780_000)
    start = datetime.fromtimestamp(1_763_780_000, UTC)
    assert clock.at(1_763_780_010) == start + timedelta(minutes=10)
    clock.advance(timedelta(hours=1))
    assert clock.at(1_763_780_010) == start + timedelta(minutes=70)
    assert Clock().at(1_763_780_000) == start  # real time
