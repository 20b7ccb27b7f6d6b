"""Job names and versions, in-process: a taken name given other work is
refused unless replaced; a replacement is the name's next version; `NAME`
is the newest, `NAME@K` version K; older versions are not disturbed."""

from __future__ import annotations

from pathlib import Path

import pytest

from weft.actors.coordinator.journal import Journal
from weft.actors.coordinator.replay import replay
from weft.actors.coordinator.state import CoordinatorState
from weft.actors.model import JobSpec, SpecError
from weft.protocol.enums import JobState

from .harness import CONCAT, Cluster, spec


def test_other_work_under_a_taken_name_is_refused_naming_it_and_what_differs() -> None:
    c = Cluster()
    c.submit(spec("build", value="one"))
    with pytest.raises(SpecError) as e:
        c.submit(spec("build", value="two"))
    msg = str(e.value)
    assert "'build'" in msg and "inputs" in msg and "--replace" in msg
    assert "\n" not in msg
    assert list(c.graph.jobs) == ["build"]
    assert c.job("build").spec.inputs == {"v": "one"}

    with pytest.raises(SpecError, match="command"):
        c.submit(JobSpec(command=["echo", "x"], name="build", outputs=["result"]))


def test_settings_that_are_not_identity_do_not_refuse() -> None:
    c = Cluster()
    c.submit(spec("build", value="one"))
    [again] = c.submit(spec("build", value="one", priority=5, timeout=30.0))
    assert again.job.id == "build" and again.joined
    assert set(again.differs) == {"priority", "time_limit"}


def test_replace_makes_the_next_version_and_leaves_the_running_one_alone() -> None:
    c = Cluster()
    c.submit(spec("build", value="one"))
    assert c.started() == ["build"]  # version 1 runs
    [v2] = c.state.submit([spec("build", value="two")], replace=True)[0]
    assert v2.job.id == "build@2"
    assert c.job("build").state == JobState.RUNNING  # not disturbed
    names = c.graph.names
    assert names.resolve("build") == "build@2"
    assert names.resolve("build@1") == "build"
    assert names.resolve("build@2") == "build@2"
    assert names.resolve_object("build/result") == "build@2/result"
    assert names.resolve_object("build@1/result") == "build/result"
    [v3] = c.state.submit([spec("build", value="three")], replace=True)[0]
    assert v3.job.id == "build@3"
    # The same work as the newest version is that version, not a new one.
    [same] = c.state.submit([spec("build", value="three")], replace=True)[0]
    assert same.job.id == "build@3"


def test_readers_of_a_name_read_its_newest_version() -> None:
    c = Cluster()
    c.submit(spec("src", value="one"))
    c.state.submit([spec("src", value="two")], replace=True)
    [reader] = c.submit(JobSpec(call=CONCAT, refs={"x": "src/result"}, outputs=["result"]))
    assert reader.job.spec.refs == {"x": "src@2/result"}
    [old] = c.submit(JobSpec(call=CONCAT, refs={"x": "src@1/result"}, outputs=["result"]))
    assert old.job.spec.refs == {"x": "src/result"}


def test_one_submit_replacing_a_name_and_reading_it_reads_the_new_version() -> None:
    c = Cluster()
    c.submit(spec("src", value="one"))
    results, _ = c.state.submit([spec("src", value="two"), spec("use", "src")], replace=True)
    assert [r.job.id for r in results] == ["src@2", "use"]
    assert c.job("use").spec.refs == {"in0": "src@2/result"}


def test_versions_come_back_after_a_restart(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    c = Cluster(journal=journal)
    c.submit(spec("build", value="one"))
    c.take(c.state.submit([spec("build", value="two")], replace=True)[1])
    journal.close()
    state = CoordinatorState()
    replay(Journal(tmp_path / "journal.sqlite"), state)
    assert state.graph.names.resolve("build") == "build@2"
    assert state.graph.names.resolve("build@1") == "build"
    with pytest.raises(SpecError, match="version 3"):
        state.submit([spec("build", value="three")])


def test_a_version_number_is_never_given_twice_after_an_older_one_is_forgotten() -> None:
    c = Cluster()
    c.submit(spec("build", value="one"))
    c.state.submit([spec("build", value="two")], replace=True)
    c.graph.forget_job(c.job("build"))
    assert c.graph.names.resolve("build") == "build@2"
    [v3] = c.state.submit([spec("build", value="three")], replace=True)[0]
    assert v3.job.id == "build@3"


def test_a_user_name_cannot_take_the_version_form() -> None:
    with pytest.raises(SpecError, match="invalid job name 'x@2'"):
        spec("x@2")
