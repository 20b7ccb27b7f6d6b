"""News from the nodes, parsed once (news.py) into the protocol's records:
what the state is given, and what a malformed entry costs (only itself)."""

from __future__ import annotations

import pytest

from weft.actors.coordinator import news
from weft.actors.coordinator.effects import Scavenge
from weft.bus.errors import BusError
from weft.protocol.enums import EventKind, ObjectState, Outcome, TaskState
from weft.protocol.tasks import TaskReport

from .harness import Cluster, out, spec, wire


def test_task_events_are_task_reports_and_other_kinds_are_skipped() -> None:
    events = wire([
        [1, "task", {"job": "a", "state": "running", "token": 3}],
        [2, "deleted", {"job": "b"}],
        [3, "task", {"job": "c", "state": "done", "token": 4, "outcome": "failed-soft", "cause": "disk",
                     "code": "no-space"}],
    ])
    running, done = news.task_events(events)
    assert (running.job, running.state, running.token) == ("a", TaskState.RUNNING, 3)
    assert (done.outcome, done.cause, done.code) == (Outcome.FAILED_SOFT, "disk", "no-space")


def test_task_ends_keep_what_the_state_acts_on_and_still_drop_malformed_entries() -> None:
    # The shell reads a poll answer with task_ends: steps the state ignores
    # are skipped unparsed, a slot given back (storing) and an end are kept,
    # and an entry with no known state is still refused (counted as dropped).
    dropped = news._dropped["count"]
    events = wire([
        [1, "task", {"job": "a", "state": "pending", "token": 3}],
        [2, "task", {"job": "a", "state": "fetching", "token": 3}],
        [3, "task", {"job": "a", "state": "running", "token": 3}],
        [4, "task", {"job": "a", "state": "storing", "token": 3}],
        [5, "deleted", {"job": "b"}],
        [6, "task", {"job": "a", "state": "done", "token": 3, "outcome": "success"}],
        [7, "task", {"job": "d", "state": "napping"}],
        [8, "task", {"job": ["x"], "state": "running"}],
        [9, "task", "junk"],
    ])
    assert [(t.job, t.state) for t in news.task_ends(events)] == [("a", TaskState.STORING), ("a", TaskState.DONE)]
    assert news._dropped["count"] == dropped + 3


def test_a_slot_given_back_reaches_the_state_through_the_shells_parse() -> None:
    # A `storing` step frees the node's slot for the next job; a `running` step changes nothing.
    c = Cluster(computes=1, storages=1)
    c.submit(spec("a"), spec("b"))
    assert c.started() == ["a"]
    job = c.job("a")
    c.task_news("compute-0", TaskReport("a", TaskState.RUNNING, job.token))
    assert c.compute().running == {"a"}
    c.task_news("compute-0", TaskReport("a", TaskState.STORING, job.token))
    assert not c.compute().running
    assert c.started() == ["b"]


def test_a_malformed_event_drops_only_itself() -> None:
    events = wire([
        [1, "task", {"job": "a", "state": "napping"}],
        [2, "task", {"job": "b", "state": "done", "token": "7"}],
        [3, "task", "junk"],
        [4, "task", {"job": "c", "state": "done", "token": 7, "outcome": "success"}],
    ])
    assert [t.job for t in news.task_events(events)] == ["c"]
    objects = wire([
        [1, "finished", {"name": "no-slash", "state": "finished"}],
        [2, "created", {"name": "a/result", "state": "empty", "size": -1}],
        [3, "weird-kind", {"name": "a/result", "state": "empty"}],
        [4, ["unhashable"], {"name": "a/result", "state": "empty"}],
        [5, "finished", {"name": "a/result", "state": "finished", "size": 3, "data": b"abc"}],
    ])
    [(kind, info)] = news.storage_events(objects)
    assert kind is EventKind.FINISHED and (info.name, info.state, info.data) == ("a/result", ObjectState.FINISHED, b"abc")


def test_a_partial_event_is_partial_news_whatever_state_it_carries() -> None:
    """A `partial` event may carry the object's state from before the bytes:
    the bytes are the news. Partial bytes no running job writes are scavenged."""
    c = Cluster()
    c.submit(spec("a"))  # queued, not running: nobody is writing a/result
    ref = c.state.storages["storage-0"]
    events = news.storage_events(wire([[1, "partial", {"name": out("a"), "state": "empty", "size": 10}]]))
    assert events[0][1].state is ObjectState.PARTIAL
    effects = c.take(c.state.storage_events(ref, events))
    assert [e.names for e in effects if isinstance(e, Scavenge)] == [[out("a")]]


def test_an_inventory_with_a_malformed_entry_keeps_the_rest() -> None:
    inv = news.compute_inventory(wire({
        "tasks": [{"job": "a", "state": "running", "token": 1}, {"job": 5, "state": "done"}],
        "next": 9, "inc": "i-1", "slots": 4, "busy": 1,
    }))
    assert [t.job for t in inv.tasks] == ["a"] and (inv.next, inv.inc, inv.slots) == (9, "i-1", 4)
    objs = news.storage_inventory(wire({
        "objects": [{"name": "a/result", "state": "finished", "size": 3}, {"name": "../x", "state": "finished"}],
        "next": 2, "inc": "i-2",
    }))
    assert [o.name for o in objs.objects] == ["a/result"] and objs.inc == "i-2"
    # An answer that is not an inventory at all is the shell's to retry.
    with pytest.raises(BusError):
        news.compute_inventory(wire({"tasks": [], "next": 0}))
    with pytest.raises(BusError):
        news.storage_inventory(wire(["not", "a", "map"]))


def test_start_answers_keep_good_items_of_a_malformed_reply() -> None:
    answers = news.start_answers(wire({"tasks": [
        {"job": "a", "state": "pending", "token": 5},
        {"job": "b", "error": {"code": "bad-spec", "message": "no"}},
        {"job": "c", "state": "sleeping"},
    ]}))
    assert [(type(a).__name__, a.job) for a in answers] == [("TaskReport", "a"), ("Refused", "b")]


def test_a_start_answer_gives_each_tasks_job_state_and_token() -> None:
    """What a dispatch reads of a start's answer (the rest of a done task
    comes in its `task` event); a malformed item drops only itself."""
    done = {"job": "a", "state": "done", "token": 7, "outcome": "success", "exit": 0, "finished": 2.0}
    answers = news.start_answers(wire({"tasks": [done, {"job": "b", "state": "running", "token": "7"},
                                                 {"job": "c", "state": "pending"}]}))
    assert [(a.job, a.state, a.token) for a in answers] == [("a", TaskState.DONE, 7), ("c", TaskState.PENDING, 0)]
    with pytest.raises(BusError):
        news.start_answers(wire({"tasks": "no"}))


def test_a_partial_content_object_is_not_scavenged() -> None:
    """A put's file (or a tree's) arrives in chunks with no job making it:
    deleting it mid-write would lose it (its writer takes over leftovers)."""
    c = Cluster()
    ref = c.state.storages["storage-0"]
    content = "sha256-" + "ab" * 32 + "/content"
    events = news.storage_events(wire([[1, "partial", {"name": content, "state": "partial", "size": 10}],
                                       [2, "partial", {"name": "sha256-x/content", "state": "partial", "size": 1}]]))
    effects = c.take(c.state.storage_events(ref, events))
    assert [e.names for e in effects if isinstance(e, Scavenge)] == [["sha256-x/content"]]  # (not a content name)
