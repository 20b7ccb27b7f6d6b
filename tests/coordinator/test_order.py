"""Which runnable job goes first, and where its work is placed."""

from __future__ import annotations

from weft.actors.coordinator.graph import RUNNABLE, RUNNING, WAITING

from .harness import Cluster, out, spec


def test_most_blocked_job_goes_before_an_older_job_of_higher_priority() -> None:
    c = Cluster(slots=1)
    c.submit(spec("old", priority=5))
    c.submit(spec("hub"), spec("d1", "hub"), spec("d2", "hub"), spec("d3", "hub"))
    assert c.job("hub").demand == 3 and c.job("old").priority > c.job("hub").priority
    assert c.started() == ["hub"]
    assert c.job("old").state == RUNNABLE


def test_a_job_that_ran_and_goes_again_keeps_its_place_before_more_needed_work() -> None:
    # It was picked before the hub queued; its node was lost under it. It
    # goes again first, not behind every job more needed than it (a leaf
    # behind a 1000-job DAG waited a minute in the chaos soak).
    c = Cluster(slots=1)
    c.submit(spec("leaf"))
    assert c.started() == ["leaf"]
    c.submit(spec("hub"), spec("d1", "hub"), spec("d2", "hub"))
    c.ends("leaf", "failed-soft", cause="compute node compute-0 lost")
    assert c.job("leaf").state == RUNNABLE and c.job("hub").demand == 2
    assert c.started() == ["leaf"]
    c.ends("leaf")
    assert c.started() == ["hub"]


def test_a_start_that_never_ran_does_not_go_first() -> None:
    # Given back without running (its queued task withdrawn, its node
    # restarted before it took a slot): no place was taken, demand decides.
    c = Cluster(slots=1)
    c.submit(spec("leaf"))
    assert c.started() == ["leaf"]
    c.submit(spec("hub"), spec("d1", "hub"))
    c.ends("leaf", "failed-soft", cause="withdrawn", ran=False)
    assert c.started() == ["hub"]


def test_higher_priority_goes_before_an_older_job_when_equally_needed() -> None:
    c = Cluster(slots=1)
    c.submit(spec("old"))
    c.submit(spec("urgent", priority=3))
    assert c.started() == ["urgent"]


def test_older_job_goes_first_among_equals() -> None:
    c = Cluster(slots=1)
    c.submit(spec("first"))
    c.submit(spec("second"))
    assert c.started() == ["first"]


def test_demand_counts_transitive_dependents() -> None:
    c = Cluster(slots=1)
    c.submit(spec("root"), spec("mid", "root"), spec("leaf", "mid"))
    c.submit(spec("other", priority=9), spec("o1", "other"))
    # root blocks mid and leaf (2); other blocks only o1 (1).
    assert c.job("root").demand == 2
    assert c.started() == ["root"]


def test_a_job_waits_until_every_input_is_finished() -> None:
    c = Cluster(slots=2)
    c.submit(spec("a"), spec("b"), spec("both", "a", "b"))
    assert sorted(c.started()) == ["a", "b"]
    c.ends("a")
    assert c.job("both").state == WAITING
    assert c.started() == []
    c.ends("b")
    assert c.started() == ["both"]


def test_a_task_success_waits_for_its_outputs_to_be_durable() -> None:
    c = Cluster()
    c.submit(spec("a"), spec("b", "a"))
    c.started()
    c.ends("a", stored=False)  # the task ended; storage has not said the output is there
    assert c.job("a").state == RUNNING
    c.object_finished(out("a"))
    assert c.job("a").state == "succeeded"
    assert c.job("b").state == RUNNABLE


def test_start_message_reads_inputs_from_the_storage_holding_them() -> None:
    c = Cluster(storages=2)
    c.submit(spec("a"), spec("b", "a"))
    c.started()
    where = c.job("a").placement[0]
    c.ends("a")
    [d] = c.round()
    job, start = d.items[0]
    assert job.id == "b" and start.after == {}
    assert start.inputs["in0"] == ([f"tcp://{where}:1"], out("a"))
    assert start.inline == {"in0": b"abc"}  # a's small output came with its `done`
    [sent] = c.state.start_messages(d, c.state.attempt_tokens(d), {}, {})
    wire = sent.to_wire()  # what the node gets
    assert wire["inputs"] == {"in0": [f"tcp://{where}:1", out("a"), b"abc"]}
    assert wire["outputs"] == {"result": f"tcp://{c.job('b').placement[0]}:1"}
    assert wire["token"] == job.token and "after" not in wire


def test_outputs_go_to_the_least_loaded_storage() -> None:
    c = Cluster(computes=2, storages=2)
    c.submit(spec("a"), spec("b"))
    c.round()
    assert {c.job("a").placement[0], c.job("b").placement[0]} == {"storage-0", "storage-1"}


def test_replicas_put_each_output_on_distinct_storage_nodes() -> None:
    c = Cluster(storages=3, replicas=2)
    c.submit(spec("a"))
    c.round()
    placement = c.job("a").placement
    assert len(placement) == 2 and len(set(placement)) == 2


def test_no_storage_means_nothing_with_outputs_is_started() -> None:
    c = Cluster(storages=0)
    c.submit(spec("a"))
    assert c.started() == []
    assert c.job("a").state == RUNNABLE
    c.add_storage("storage-0")
    assert c.started() == ["a"]


def test_a_compute_node_met_later_takes_the_queued_work() -> None:
    c = Cluster(computes=1, slots=1)
    c.submit(spec("a"), spec("b"))
    assert c.started() == ["a"]
    c.add_compute("compute-late", 1)
    [d] = c.round()
    assert d.node.node == "compute-late" and [j.id for j, _ in d.items] == ["b"]
    assert c.job("b").ran_on == "compute-late"
