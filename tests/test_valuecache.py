"""The compute node's value cache (actors/compute/valuecache.py): bounded by
its budget, evicting values already read before unread ones, refusing what
does not fit, and forgetting a job's outputs when it runs again."""

from __future__ import annotations

import pytest

from weft.actors.compute.valuecache import CACHE_MIN, DEFAULT_VALUE_CACHE, UNREAD_KEEP, ValueCache

KIB = 1 << 10


def val(n_kib: int, fill: bytes = b"x") -> bytes:
    return fill * (n_kib * KIB)


def test_a_value_is_served_as_the_same_bytes() -> None:
    c = ValueCache(1024 * KIB)
    v = val(100)
    assert c.put("j/result", v)
    assert c.get("j/result") is v  # no copy made to cache or serve it
    assert c.get("k/result") is None
    assert c.view()["hits"] == 1 and c.view()["misses"] == 1


def test_never_more_than_the_budget() -> None:
    c = ValueCache(300 * KIB)
    assert c.put("a/r", val(100)) and c.put("b/r", val(100)) and c.put("c/r", val(100))
    # Nothing was read yet: its consumers are probably queued here, so the new one is refused.
    assert not c.put("d/r", val(100))
    assert c.used == 300 * KIB
    assert c.get("d/r") is None  # read from storage the old way
    assert c.get("b/r") is not None
    assert c.put("d/r", val(100))  # `b`, read already, made room
    assert c.get("b/r") is None and c.get("a/r") is not None
    assert c.used <= c.budget


def test_read_values_go_oldest_first() -> None:
    c = ValueCache(300 * KIB)
    for name in "abc":
        c.put(f"{name}/r", val(100))
    c.get("c/r")
    c.get("a/r")
    assert c.put("d/r", val(150))  # needs two read values out: `a` (older), then `c`
    assert c.get("b/r") is not None and c.get("d/r") is not None
    assert c.get("a/r") is None and c.get("c/r") is None
    assert c.used == 250 * KIB


def test_values_nobody_read_give_way_after_a_while() -> None:
    now = [0.0]
    c = ValueCache(200 * KIB)
    c.clock = lambda: now[0]
    c.put("a/r", val(100))
    c.put("b/r", val(100))
    assert not c.put("c/r", val(100))  # both unread and young: likely still wanted here
    now[0] = UNREAD_KEEP + 1
    assert c.put("c/r", val(100))  # `a` (oldest) gave way; `b` was enough
    assert c.get("a/r") is None and c.get("b/r") is not None and c.get("c/r") is not None


def test_what_never_fits_is_refused_and_evicts_nothing() -> None:
    c = ValueCache(300 * KIB)
    c.put("a/r", val(100))
    c.get("a/r")
    assert not c.put("big/r", val(400))
    assert c.get("a/r") is not None
    assert c.view()["refused"] == 1


def test_small_values_and_non_bytes_are_not_kept() -> None:
    c = ValueCache(1024 * KIB)
    assert not c.put("s/r", b"x" * (CACHE_MIN - 1))
    assert not c.put("m/r", memoryview(val(100)))
    assert not ValueCache(0).put("z/r", val(100))
    assert len(c) == 0


def test_a_new_attempt_forgets_the_old_outputs() -> None:
    c = ValueCache(1024 * KIB)
    c.put("j/a", val(100))
    c.put("j/b", val(100))
    c.put("jj/a", val(100))
    c.forget_job("j")
    assert c.get("j/a") is None and c.get("j/b") is None
    assert c.get("jj/a") is not None
    assert c.used == 100 * KIB


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="budget"):
        ValueCache(-1)


def test_the_default_budget_leaves_a_small_node_its_memory() -> None:
    assert ValueCache.sized(None, 64 << 30).budget == DEFAULT_VALUE_CACHE
    assert ValueCache.sized(None, 1 << 30).budget == 128 << 20
    assert ValueCache.sized(0, 64 << 30).budget == 0  # asked off: off


def test_a_value_a_follower_took_already_gives_way_like_a_read_one() -> None:
    # A follower took the producer's bytes from memory before they were
    # stored (actors/compute/ahead.py): its cached copy must not keep newer
    # values out for UNREAD_KEEP seconds (seen: 17-59 of 100 handoff
    # consumers read from storage once followers left their values unread).
    c = ValueCache(200 * KIB)
    c.put("a/r", val(100), read=True)
    c.put("b/r", val(100))
    assert c.put("c/r", val(100))  # `a` made room at once
    assert c.get("a/r") is None
    assert not c.put("d/r", val(100), read=True)  # `b` and `c` unread and young: kept
    assert c.get("b/r") is not None and c.get("c/r") is not None
