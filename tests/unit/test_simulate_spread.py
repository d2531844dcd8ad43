"""The demo feed over the loaded districts (issue 22): how reports are spread (population,
area, equal, explicit weights) and that the sampled points fall in those districts."""

from __future__ import annotations

from collections import Counter

import pytest

from geodata.locator import Locator
from streams.simulate import POPULATION_2020, sample_points, shares, spread_weights


@pytest.fixture(scope="module")
def loc() -> Locator:
    return Locator.load(None)  # Yangpu 310110 and Qingpu 310118


def test_shares_add_up_and_follow_the_weights():
    assert shares(10, {"a": 1, "b": 1}) == {"a": 5, "b": 5}
    assert shares(7, {"a": 3, "b": 1}) == {"a": 5, "b": 2}  # 5.25 / 1.75
    assert shares(3, {"a": 1, "b": 1, "c": 1, "d": 0}) == {"a": 1, "b": 1, "c": 1, "d": 0}
    got = shares(1000, POPULATION_2020)
    assert sum(got.values()) == 1000 and max(got, key=got.get) == "310115"  # Pudong


def test_spread_weights_of_the_loaded_districts(loc):
    assert spread_weights(loc, "equal") == {"310110": 1.0, "310118": 1.0}
    assert spread_weights(loc, "population") == {"310110": 124.3, "310118": 127.1}
    area = spread_weights(loc, "area")
    assert set(area) == {"310110", "310118"} and 8 < area["310118"] \
        / area["310110"] < 12  # Qingpu ~670 km², Yangpu ~60 km²
    assert spread_weights(loc, "310110=3, 310118=1") == {"310110": 3.0, "310118": 1.0}
    with pytest.raises(ValueError, match="310115 has no cells"):
        spread_weights(loc, "310115=1")
    with pytest.raises(ValueError, match="one of equal, area, population"):
        spread_weights(loc, "crowds")


def test_points_fall_where_the_weights_say(loc):
    pts = sample_points(loc, 40, weights={"310110": 3, "310118": 1})
    placed = loc.locate_many([p[0] for p in pts], [p[1] for p in pts], "wgs84")
    assert all(p is not None and p.cell for p in placed)
    assert Counter(p.district for p in placed) == {"310110": 30, "310118": 10}
    only = sample_points(loc, 5, weights={"310118": 1})
    placed = loc.locate_many([p[0] for p in only], [p[1] for p in only], "wgs84")
    assert {p.district for p in placed} == {"310118"}
