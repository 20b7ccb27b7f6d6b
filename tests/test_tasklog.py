"""The compute node's task log: what a restarted node remembers of its tasks."""

from __future__ import annotations

from pathlib import Path

from weft.actors.compute.tasklog import TaskLog


def test_records_of_an_attempt_merge_and_a_new_attempt_replaces_them(tmp_path: Path) -> None:
    log = TaskLog(tmp_path / "tasks.log")
    log.load()
    spec = {"cmd": ["true"]}
    log.write({"job": "ja", "s": "started", "t": 1, "spec": spec})
    log.write({"job": "ja", "s": "started", "t": 1, "pg": 4242})
    log.write({"job": "ja", "s": "done", "t": 1, "o": "success", "x": 0})
    log.write({"job": "jb", "s": "started", "t": 1, "spec": spec})
    log.write({"job": "jb", "s": "done", "t": 1, "o": "failed-soft", "c": "node died"})
    log.write({"job": "jb", "s": "started", "t": 2, "spec": spec})  # a retry, still running
    log.write({"job": "jc", "s": "started", "t": 1, "spec": spec})
    log.write({"job": "jc", "s": "deleted"})
    log.close()

    records = TaskLog(tmp_path / "tasks.log").load()
    assert set(records) == {"ja", "jb"}
    assert records["ja"] == {"job": "ja", "s": "done", "t": 1, "spec": spec, "pg": 4242, "o": "success", "x": 0}
    # The retry is running: nothing of the earlier attempt's end may stick to it.
    assert records["jb"] == {"job": "jb", "s": "started", "t": 2, "spec": spec}


def test_a_torn_last_record_is_ignored_and_the_file_compacted(tmp_path: Path) -> None:
    path = tmp_path / "tasks.log"
    log = TaskLog(path)
    log.load()
    log.write({"job": "ja", "s": "started", "t": 1, "spec": {"cmd": ["true"]}})
    log.write({"job": "ja", "s": "done", "t": 1, "o": "success"})
    log.close()
    whole = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\x85\xa3job")  # a record cut short by a crash
    records = TaskLog(path).load()
    assert records["ja"]["o"] == "success" and records["ja"]["spec"] == {"cmd": ["true"]}
    assert path.stat().st_size < whole  # two records became one


def test_a_restarted_compute_node_still_reports_the_empty_outputs_it_wrote_nowhere(tmp_path: Path) -> None:
    """An empty output is on no storage node (Transfers._hold_empty): after a
    restart the node's inventory must still say so, or the coordinator
    would wait for storage to announce it, forever."""
    from weft.actors.compute.node import ComputeNode
    from weft.actors.compute.task import Task
    from weft.actors.model import JobSpec
    from weft.protocol.enums import Outcome, TaskState
    from weft.runtime.node import NodeConfig

    config = NodeConfig(data_dir=tmp_path, node_id="compute-0", beacon=False)
    node = ComputeNode(config)
    spec = JobSpec(command=["sh", "-c", ": > $WEFT_OUTPUTS/log"], outputs=["stdout", "log", "out"])
    task = Task("ja", spec, {}, {}, 7)
    node.tasks["ja"] = task
    node.tasklog.write({"job": "ja", "s": "started", "t": 7, "spec": spec.to_wire()})  # as _start does
    node.unfinished += 1
    node._hold_empty(task, "stdout")
    node._hold_empty(task, "log")
    task.stored["out"] = ["storage-0", 3, b"abc"]  # stored as usual: storage's inventory tells
    node._finish(task, Outcome.SUCCESS)
    node.tasklog.close()

    again = ComputeNode(config).tasks["ja"].report()
    assert again.state == TaskState.DONE and again.outcome == Outcome.SUCCESS
    assert again.stored == {"stdout": [None, 0, b""], "log": [None, 0, b""]}


def test_a_command_running_when_its_node_died_comes_back_as_an_attempt(tmp_path: Path) -> None:
    """Its slot time (which tells the coordinator the run counts as an
    attempt) rides on its spawn's record when it had nothing to fetch."""
    from weft.actors.compute.node import ComputeNode
    from weft.actors.compute.task import Task
    from weft.actors.model import JobSpec
    from weft.protocol.enums import Outcome, TaskState
    from weft.runtime.node import NodeConfig

    config = NodeConfig(data_dir=tmp_path, node_id="compute-0", beacon=False)
    node = ComputeNode(config)
    spec = JobSpec(command=["sleep", "100"], outputs=["stdout"])
    task = Task("jr", spec, {}, {}, 7)
    node.tasklog.write({"job": "jr", "s": "started", "t": 7, "spec": spec.to_wire()})  # as _start does
    task.started = 1234.5  # it took a slot (_execute) ...
    node._spawned(task, 2**22 + 12345)  # ... and its process started (no such group: nothing to stop)
    node.tasklog.close()

    again = ComputeNode(config).tasks["jr"].report()
    assert again.state == TaskState.DONE and again.outcome == Outcome.FAILED_SOFT
    assert again.started == 1234.5


def test_records_written_as_one_batch_load_like_records_written_one_by_one(tmp_path: Path) -> None:
    log = TaskLog(tmp_path / "tasks.log")
    log.load()
    spec = {"cmd": ["true"]}
    log.write_many([{"job": j, "s": "started", "t": 1, "spec": spec} for j in ("ja", "jb", "jc")])
    log.write({"job": "jb", "s": "done", "t": 1, "o": "success"})
    log.write_many([{"job": "ja", "s": "deleted"}, {"job": "jc", "s": "deleted"}])
    log.close()

    records = TaskLog(tmp_path / "tasks.log").load()
    assert records == {"jb": {"job": "jb", "s": "done", "t": 1, "spec": spec, "o": "success"}}


def test_a_batch_of_starts_and_a_batch_of_deletes_are_remembered_across_a_restart(tmp_path: Path) -> None:
    """start_many and delete write their tasks' records in one write per
    batch: every task of each batch must still be in the log."""
    import trio

    from weft.actors.compute.node import ComputeNode
    from weft.actors.model import JobSpec
    from weft.protocol.enums import Outcome, TaskState
    from weft.protocol.tasks import DeleteTasks, Start, StartMany
    from weft.runtime.node import NodeConfig

    config = NodeConfig(data_dir=tmp_path, node_id="compute-0", beacon=False)
    node = ComputeNode(config)
    spec = JobSpec(command=["true"], outputs=["stdout"])
    jobs = ["j1", "j2", "j3", "j4"]

    async def start_batch() -> dict:
        async with trio.open_nursery() as nursery:
            node._task_nursery = nursery
            starts = [Start(j, spec, outputs={"stdout": ["tcp://127.0.0.1:9"]}, token=3) for j in jobs]
            reply = node._op_start_many(StartMany(starts).to_wire(), None)
            nursery.cancel_scope.cancel()  # no run: as if the node died right after answering
        return reply

    reply = trio.run(start_batch)
    assert [t["job"] for t in reply["tasks"] if "error" not in t] == jobs
    for job in ("j1", "j2", "j3"):  # three ended, j4 is still "running"
        node.tasks[job].state = TaskState.RUNNING
        node._finish(node.tasks[job], Outcome.SUCCESS)
    node._op_delete(DeleteTasks(["j1", "j3"]).to_wire(), None)
    node.tasklog.close()

    again = ComputeNode(config).tasks
    assert set(again) == {"j2", "j4"}
    assert again["j2"].report().outcome == Outcome.SUCCESS
    assert again["j4"].report().outcome == Outcome.FAILED_SOFT  # was running when the node died
