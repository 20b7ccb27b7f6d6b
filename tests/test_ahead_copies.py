"""A follower reads its producer's output only from copies the producer's
write made: its endpoints were the producer's placement, named before the
write, and a copy given up on (a storage node restarted mid-write) answers
"does not exist" (the chaos soak's follower that failed after taking a slot,
an attempt that ran nothing)."""

from __future__ import annotations

from weft.actors.compute.ahead import made_copies

A, B, C = "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3"


def test_a_copy_the_producers_write_gave_up_on_is_not_read() -> None:
    entry = ([A, B], "j1/stdout")
    assert made_copies(entry, [["j1/stdout", A]]) == ([B], "j1/stdout")


def test_copies_dropped_of_other_objects_change_nothing() -> None:
    entry = ([A, B, C], "j1/stdout")
    assert made_copies(entry, [["j1/log", A], ["j2/stdout", B]]) == entry


def test_the_input_keeps_its_copies_rather_than_none() -> None:
    entry = ([A], "j1/stdout")
    assert made_copies(entry, [["j1/stdout", A]]) == entry
