"""Task directories: taken ready-made, and recycled empty after their results are deleted."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import trio

from weft.actors.compute.taskdirs import SUBDIRS, TaskDirs


def contents(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): (p.stat().st_size if p.is_file() else -1) for p in sorted(path.rglob("*"))}


async def wait_spares(dirs: TaskDirs, n: int) -> None:
    with trio.fail_after(10):
        while len(dirs._spares) < n or dirs._used:
            await trio.sleep(0.01)


async def test_a_used_directory_comes_back_empty(tmp_path: Path) -> None:
    dirs = TaskDirs(tmp_path / "tasks", keep=2)
    dirs.prepare()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dirs.run)
        await wait_spares(dirs, 2)
        a = dirs.take("job-a")
        (a / "results" / "output.txt").write_bytes(b"log of a")
        (a / "results" / "stdout").write_bytes(b"out of a")
        (a / "outputs" / "result").write_bytes(b"x")
        (a / "work" / "sub").mkdir()
        (a / "work" / "sub" / "f").write_bytes(b"y")
        (a / "inputs" / "i").symlink_to(tmp_path)
        (a / "delegate.json").write_text("{}")
        dirs.recycle("job-a")
        assert not a.exists()
        await wait_spares(dirs, 2)
        # Take them all: one of them is job-a's, emptied.
        taken = [dirs.take(f"job-b{i}") for i in range(len(dirs._spares))]
        nursery.cancel_scope.cancel()
    for b in taken:
        assert sorted(os.listdir(b)) == sorted(SUBDIRS)
        files = contents(b)
        assert all(size <= 0 for size in files.values()), files
        assert not (b / "work" / "sub").exists() and not (b / "delegate.json").exists()
    assert tmp_path.exists()  # the symlink was removed, not followed


async def used_then_reused(tmp_path: Path, use: Callable[[Path], object]) -> Path:
    """With one spare kept: job-a's directory, after `use(it)` and recycling,
    is the one job-b takes next."""
    dirs = TaskDirs(tmp_path / "tasks", keep=1)
    dirs.prepare()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dirs.run)
        await wait_spares(dirs, 1)
        use(dirs.take("job-a"))
        dirs.recycle("job-a")
        await wait_spares(dirs, 1)
        b = dirs.take("job-b")
        nursery.cancel_scope.cancel()
    return b


async def test_a_directory_a_command_damaged_is_repaired(tmp_path: Path) -> None:
    def damage(a: Path) -> None:
        # The command replaced its working directory by a file.
        os.rmdir(a / "work")
        (a / "work").write_bytes(b"not a directory")

    b = await used_then_reused(tmp_path, damage)
    assert (b / "work").is_dir() and not os.listdir(b / "work")
    assert sorted(os.listdir(b)) == sorted(SUBDIRS)


async def test_a_commands_moved_stdout_goes_back_empty_to_results(tmp_path: Path) -> None:
    inode: list[int] = []

    def run(a: Path) -> None:
        # As the runner leaves it: captured stdout renamed to outputs/stdout.
        (a / "results" / "output.txt").write_bytes(b"log")
        (a / "outputs" / "stdout").write_bytes(b"printed by a")
        inode.append((a / "outputs" / "stdout").stat().st_ino)

    b = await used_then_reused(tmp_path, run)
    assert not (b / "outputs" / "stdout").exists()  # nothing of a's is an output of b
    assert (b / "results" / "stdout").read_bytes() == b""
    assert [(b / "results" / "stdout").stat().st_ino] == inode  # the same file, reused


def test_a_deleted_task_recycles_a_directory_only_where_one_was_left() -> None:
    # A command's directory is recycled when its task is deleted, unless it
    # succeeded with an empty log (given back as it ended); a callable has
    # one only for object inputs (a tree is laid out there), so a no-op's
    # delete looks for no directory (a failing rename each, before).
    from weft.actors.compute.task import Task
    from weft.actors.model import JobSpec
    from weft.protocol.enums import Outcome

    def task(spec: JobSpec, outcome: Outcome, log_empty: bool = False) -> Task:
        t = Task("j1", spec, {}, {}, 1)
        t.outcome, t.log_empty = outcome, log_empty
        return t

    command = JobSpec(command=["true"], outputs=["stdout"])
    noop = JobSpec(call="weft.actors.builtins:noop", outputs=["result"])
    reader = JobSpec(call="weft.actors.builtins:concat", refs={"a": "p1/result"}, outputs=["result"])
    assert not task(command, Outcome.SUCCESS, log_empty=True).has_dir()
    assert task(command, Outcome.SUCCESS).has_dir() and task(command, Outcome.FAILED_HARD, log_empty=True).has_dir()
    assert not task(noop, Outcome.SUCCESS).has_dir() and not task(noop, Outcome.FAILED_HARD).has_dir()
    assert task(reader, Outcome.SUCCESS).has_dir()


def test_a_restarted_node_stops_the_groups_its_task_directories_recorded(tmp_path: Path) -> None:
    """kill_leftover_groups finds each task directory's `pgid` file (hidden names too, as the glob did)."""
    import subprocess

    from weft.actors.compute.taskdirs import kill_leftover_groups

    tasks = tmp_path / "tasks"
    procs = []
    for name in ("job-a", ".job-b"):
        d = tasks / name
        d.mkdir(parents=True)
        p = subprocess.Popen(["sleep", "60"], start_new_session=True,
                             env={**os.environ, "WEFT_OUTPUTS": f"{tasks}/{name}/outputs"})
        (d / "pgid").write_text(str(p.pid))
        procs.append(p)
    (tasks / "job-c").mkdir()  # no group recorded
    (tasks / "stray-file").write_text("x")
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)  # not this node's: spared
    try:
        assert kill_leftover_groups(tasks, {stranger.pid}) == 2
        for p in procs:
            assert p.wait(10) == -9
        assert not list(tasks.glob("*/pgid"))
        assert stranger.poll() is None
    finally:
        for p in [*procs, stranger]:
            p.kill()
            p.wait(10)
