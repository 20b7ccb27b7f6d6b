"""The coordinator on a real local cluster: every node is a subprocess.

Tests sharing the module's cluster use inputs of their own, so their job ids
(hashes of the specs) never collide. Tests that look at the stats counters
take deltas, and nothing they do leaves work running behind them.
"""

from __future__ import annotations

import random
import signal
import sys
import time

import pytest

from weft.actors.client import Client, JobFailed
from weft.actors.model import JobSpec

from .conftest import wait_for

CONCAT = "weft.actors.builtins:concat"
TERMINAL = ("succeeded", "failed", "cancelled")


def by_job(statuses: list[dict]) -> dict[str, dict]:
    return {s["job"]: s for s in statuses}


# -- 1. a diamond of command jobs ---------------------------------------------------------------

def test_diamond_through_the_client(client: Client) -> None:
    a = client.submit(["sh", "-c", "echo 'pack my box with five dozen liquor jugs'"])
    b = client.submit(["sh", "-c", 'tr a-z A-Z < "$WEFT_INPUTS/text"'], text=a)
    c = client.submit(["sh", "-c", "wc -w < \"$WEFT_INPUTS/text\" | tr -d ' '"], text=a)
    d = client.submit(CONCAT, **{"1_upper": b, "2_words": c})
    assert d.result(timeout=30) == b"PACK MY BOX WITH FIVE DOZEN LIQUOR JUGS\n8\n"
    sts = by_job(client.status([a, b, c, d]))
    assert all(s["state"] == "succeeded" and s["attempts"] == 1 for s in sts.values())
    # D started only after both of its inputs were (B and C after A). A job's
    # `finished` comes from its compute node's report, which may arrive after
    # storage announced the output and the reader started: compare starts.
    assert sts[d.job]["started"] > max(sts[b.job]["started"], sts[c.job]["started"])
    assert min(sts[b.job]["started"], sts[c.job]["started"]) > sts[a.job]["started"]


# -- 2. a 500-job random DAG ---------------------------------------------------------------------

def random_dag(seed: int, n: int) -> tuple[list[JobSpec], list[bytes]]:
    """Each job concatenates 0-3 earlier jobs' outputs and a value of its own.

    Every fifth job is a shell command doing the same as the callable. Parents
    are dropped (largest first) so no output exceeds a few KB.
    """
    rng = random.Random(seed)
    specs: list[JobSpec] = []
    expected: list[bytes] = []
    mains: list[str] = []
    for i in range(n):
        parents = sorted(rng.sample(range(i), min(i, rng.randint(0, 3))))
        while sum(len(expected[p]) for p in parents) > 2000:
            parents.remove(max(parents, key=lambda p: len(expected[p])))
        value = f"<dag{seed}-{i}>"
        refs = {f"p{k}": mains[p] for k, p in enumerate(parents)}
        if i % 5 == 4:
            spec = JobSpec(
                command=["sh", "-c", 'cat "$WEFT_INPUTS"/p* 2>/dev/null; printf %s "$WEFT_INPUT_V"'],
                inputs={"v": value}, refs=refs, outputs=["stdout"],
            )
            main = "stdout"
        else:
            spec = JobSpec(call=CONCAT, inputs={"v": value}, refs=refs, outputs=["result"])
            main = "result"
        specs.append(spec)
        mains.append(f"{spec.job_id()}/{main}")
        expected.append(b"".join(expected[p] for p in parents) + value.encode())
    return specs, expected


def test_random_dag_of_500_jobs_runs_each_job_once(client: Client) -> None:
    specs, expected = random_dag(seed=20240501, n=500)
    assert len({s.job_id() for s in specs}) == 500
    assert sum(bool(s.refs) for s in specs) > 300  # it is a graph, not a bag of jobs
    before = client.stats()
    futures = client.submit_specs(specs)
    assert not any(f.cached for f in futures)
    statuses = client.wait(futures, timeout=90)
    bad = [s for s in statuses if s["state"] != "succeeded"]
    assert not bad, bad[:3]
    assert [s["attempts"] for s in statuses] == [1] * 500
    for f, want in zip(futures, expected, strict=True):
        assert client.get(f) == want, f.job
    after = client.stats()
    assert after["dispatched"] - before["dispatched"] == 500
    assert after["succeeded"] - before["succeeded"] == 500
    # Outputs are spread over both storage nodes (placed per dispatch batch).
    where = [client.locate(f.key)["storage"] for f in futures[::10]]
    assert len(set(where)) == 2 and min(where.count(w) for w in set(where)) >= 10, where
    assert after["soft_failures"] == before["soft_failures"]
    assert after["failed"] == before["failed"]


# -- 3. demand beats age when slots are scarce ------------------------------------------------

def test_job_with_many_dependents_starts_before_an_older_job(make_cluster) -> None:
    c = make_cluster(compute=1, storage=1, slots=1)
    with Client(c.endpoint, timeout=10.0, retry_for=10.0) as cl:
        blocker = cl.submit("weft.actors.builtins:sleep", seconds="2")
        wait_for(lambda: cl.status([blocker])[0]["state"] == "running", 10, "the blocker runs")
        # The older job also has the higher priority: only demand can put y first.
        x = cl.submit("weft.actors.builtins:echo", x="old job nobody waits on", priority=5)
        y = cl.submit("weft.actors.builtins:echo", x="the job five others need")
        deps = [cl.submit(CONCAT, a=y, b=str(i)) for i in range(5)]
        sts = by_job(cl.status([blocker, x, y, *deps]))
        # All of this was queued while the only slot was busy.
        assert sts[blocker.job]["state"] == "running", "the blocker ended too soon: the test proves nothing"
        assert sts[x.job]["state"] == "runnable"
        assert sts[y.job]["state"] == "runnable"
        assert sts[y.job]["demand"] == 5
        assert sts[x.job]["demand"] == 0
        assert sts[x.job]["priority"] > sts[y.job]["priority"]
        assert all(sts[d.job]["state"] == "waiting" for d in deps)

        done = by_job(cl.wait([blocker, x, y, *deps], timeout=30))
        assert all(s["state"] == "succeeded" for s in done.values())
        started = {j: s["started"] for j, s in done.items()}
        assert started[y.job] < started[x.job]
        # Among jobs nobody needs, the more urgent (and older) goes first.
        assert all(started[x.job] < started[d.job] for d in deps)
        assert [cl.get(d) for d in deps] == [b"the job five others need%d" % i for i in range(5)]


# -- 4. a finished job is never run twice -------------------------------------------------------

def test_resubmitting_a_finished_job_runs_nothing(client: Client) -> None:
    spec = client.spec(CONCAT, a="resubmit", b="-me")
    first = client.submit_specs([spec])[0]
    assert not first.cached
    assert first.result(timeout=30) == b"resubmit-me"
    before = client.stats()
    again = client.submit_specs([spec])[0]
    assert again.job == first.job
    assert again.cached
    assert again.status()["state"] == "succeeded"
    assert again.result(timeout=5) == b"resubmit-me"
    # The raw answer says how it was taken, and which asked-for setting it did not get.
    urgent = client.spec(CONCAT, a="resubmit", b="-me", priority=3)
    [raw] = client.call("submit", {"jobs": [urgent.to_wire()]})["jobs"]
    assert raw["job"] == first.job and raw["state"] == "succeeded"
    assert (raw["cached"], raw["joined"], raw["differs"]) == (True, False, ["priority"])
    assert again.status()["attempts"] == 1
    # A new job reading the cached one runs at once; once it has, every
    # dispatch the resubmissions could have caused would be counted too, so
    # exactly one more (the reader's) says they caused none.
    reader = client.submit(CONCAT, x=again, y="!")
    assert reader.result(timeout=30) == b"resubmit-me!"
    assert client.stats()["dispatched"] == before["dispatched"] + 1
    assert again.status()["attempts"] == 1


# -- 5. a chain of three delegations ----------------------------------------------------------

# A command job: levels 0-2 hand their stdout to the next level by writing a
# delegation to $WEFT_DELEGATE; level 3 prints the bytes.
CHAIN = """\
import json, os, sys
env = os.environ
level = int(env["WEFT_INPUT_LEVEL"])
if level < 3:
    job = {"o": ["stdout"], "cmd": [sys.executable, "-c", env["WEFT_INPUT_CODE"]],
           "in": {"code": env["WEFT_INPUT_CODE"], "level": str(level + 1), "tag": env["WEFT_INPUT_TAG"]}}
    with open(env["WEFT_DELEGATE"], "w") as f:
        json.dump({"job": job, "stream": "stdout"}, f)
else:
    print("level 3 of " + env["WEFT_INPUT_TAG"] + " made these bytes")
"""


def chain_spec(level: int, tag: str) -> JobSpec:
    return JobSpec(
        command=[sys.executable, "-c", CHAIN],
        inputs={"code": CHAIN, "level": str(level), "tag": tag},
        outputs=["stdout"],
    )


def test_chain_of_three_delegations(client: Client) -> None:
    check_chain_of_three_delegations(client, "chain-5")


def test_chain_of_three_delegations_without_following_ahead(make_cluster) -> None:
    # Following ahead can start W on the node making A's output and so hide
    # waiters that did not move to the delegate: without it, W runs only if
    # each delegation moved it on to the next job.
    c = make_cluster(compute=1, storage=1, slots=2, coordinator_args=["--follow-ahead", "0"])
    with Client(c.endpoint, timeout=10.0, retry_for=10.0) as cl:
        check_chain_of_three_delegations(cl, "chain-6")
        assert cl.stats()["followed"] == 0


def check_chain_of_three_delegations(client: Client, tag: str) -> None:
    want = f"level 3 of {tag} made these bytes\n".encode()
    ids = [chain_spec(level, tag).job_id() for level in range(4)]
    before = client.stats()
    a = client.submit_specs([chain_spec(0, tag)])[0]
    assert a.job == ids[0]
    w = client.submit(["sh", "-c", 'cat "$WEFT_INPUTS/x"; echo "and W read them"'], x=a)
    assert w.result(timeout=30) == want + b"and W read them\n"
    # The reader gets A3's bytes through A's object.
    assert a.result(timeout=10) == want
    assert client.get(a.key) == want
    assert client.get(f"{ids[0]}/stdout") == want

    sts = by_job(client.status(ids + [w.job]))
    st_a = sts[ids[0]]
    assert st_a["state"] == "succeeded"
    assert st_a["delegate"] == ids[1]
    assert st_a["final"]["job"] == ids[3]
    assert st_a["final"]["state"] == "succeeded"
    for parent, child in zip(ids, ids[1:], strict=False):
        assert sts[child]["parent"] == parent
        assert sts[child]["state"] == "succeeded"
        assert sts[child]["attempts"] == 1
    assert sts[ids[1]]["delegate"] == ids[2]
    assert sts[ids[2]]["delegate"] == ids[3]
    assert "delegate" not in sts[ids[3]]
    # W waited for the end of the chain, not for A (see the diamond on `finished`).
    assert sts[w.job]["started"] > sts[ids[3]]["started"]
    after = client.stats()
    assert after["delegations"] - before["delegations"] == 3
    assert after["soft_failures"] == before["soft_failures"]


# -- 6. a hard failure fails its dependents, naming it ------------------------------------------

def test_hard_failure_fails_dependents_with_a_cause(client: Client, weft) -> None:
    bad = client.submit("weft.actors.builtins:fail", message="boom-case-6")
    dep = client.submit(CONCAT, x=bad, y="never")
    dep2 = client.submit(CONCAT, x=dep, y="never either")
    sts = by_job(client.wait([bad, dep, dep2], timeout=30))
    assert sts[bad.job]["state"] == "failed"
    assert sts[bad.job]["outcome"] == "failed-hard"
    assert "boom-case-6" in sts[bad.job]["cause"]
    assert sts[dep.job]["state"] == "failed"
    assert bad.job in sts[dep.job]["cause"]
    assert "boom-case-6" in sts[dep.job]["cause"]
    assert sts[dep2.job]["state"] == "failed"
    assert dep.job in sts[dep2.job]["cause"]
    assert sts[dep.job]["attempts"] == 0  # it never ran
    with pytest.raises(JobFailed, match=bad.job):
        dep.result(timeout=10)

    p = weft("wait", dep.job, "--timeout", "20")
    assert p.returncode == 1, p.stderr
    assert dep.job in p.stdout and "failed" in p.stdout and bad.job in p.stdout


def test_failed_command_fails_its_dependents(client: Client, weft) -> None:
    bad = client.submit(["sh", "-c", "echo case-6b; exit 3"])
    dep = client.submit(["cat", "x"], x=bad)  # never runs
    st_bad, st_dep = client.wait([bad, dep], timeout=30)
    assert st_bad["state"] == "failed"
    assert "exit code 3" in st_bad["cause"]
    assert st_dep["state"] == "failed"
    assert bad.job in st_dep["cause"]
    p = weft("wait", dep.job, bad.job, "--timeout", "20")
    assert p.returncode == 1


# -- 7. a compute node that joins late takes the queued work ---------------------------------------

def test_compute_node_added_while_jobs_are_queued_takes_work(make_cluster) -> None:
    c = make_cluster(compute=0, storage=1)
    with Client(c.endpoint, timeout=10.0, retry_for=10.0) as cl:
        assert cl.stats()["computes"] == 0
        futures = cl.map("weft.actors.builtins:echo", [f"queued-{i}" for i in range(6)])
        joined = cl.submit(CONCAT, a=futures[0], b=futures[5])
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            sts = cl.status(futures)
            assert [s["state"] for s in sts] == ["runnable"] * 6
            assert cl.status([joined])[0]["state"] == "waiting"
            time.sleep(0.2)
        assert cl.stats()["runnable"] == 6

        c.add_compute(slots=2)
        done = cl.wait([*futures, joined], timeout=15)
        assert all(s["state"] == "succeeded" for s in done)
        # Each ran on the node that joined (the only one there is).
        assert [s.get("ran_on") for s in cl.status(futures)] == ["compute-0"] * 6
        assert [f.result(timeout=5) for f in futures] == [f"queued-{i}".encode() for i in range(6)]
        assert joined.result(timeout=5) == b"queued-0queued-5"
        assert cl.stats()["computes"] == 1


# -- bugs found -------------------------------------------------------------------------------------
# Last in the module: when it fails, work it started may still finish later.

def test_resubmitted_failed_job_waits_for_all_its_inputs(client: Client, tmp_path) -> None:
    flag = tmp_path / "flaky-ran-once"
    slow = client.submit(["sh", "-c", "sleep 2; echo slow"])
    # Fails the first time, succeeds (slowly) when run again.
    flaky = client.spec(
        ["sh", "-c", 'if [ -e "$WEFT_INPUT_FLAG" ]; then sleep 3; echo flaky; else touch "$WEFT_INPUT_FLAG"; exit 1; fi'],
        flag=str(flag),
    )
    f1 = client.submit_specs([flaky])[0]

    def joined_spec() -> JobSpec:
        return client.spec(CONCAT, a=slow, b=f1)

    w1 = client.submit_specs([joined_spec()])[0]
    st_f, st_w = client.wait([f1, w1], timeout=20)
    assert st_f["state"] == "failed"
    assert st_w["state"] == "failed" and f1.job in st_w["cause"]
    assert slow.status()["state"] in ("runnable", "running")

    # Retry: submit the failed jobs again (what re-submitting a workflow does).
    f2, w2 = client.submit_specs([flaky, joined_spec()])
    assert (f2.job, w2.job) == (f1.job, w1.job)
    assert slow.result(timeout=20) == b"slow\n"
    time.sleep(0.3)
    seen = {s["job"]: s["state"] for s in client.status([f2, w2])}
    final = client.wait([f2, w2], timeout=20)
    assert seen[f2.job] == "running", "the premise failed: the flaky job's second run already ended"
    # While one input is still being produced, the job must wait.
    assert seen[w2.job] == "waiting"
    assert [s["state"] for s in final] == ["succeeded", "succeeded"]
    assert w2.result(timeout=5) == b"slow\nflaky\n"


# -- 9. dependents start ahead, on the node making their input ---------------------------------

def test_a_dependent_waits_on_its_producers_node_and_runs_when_the_input_exists(make_cluster) -> None:
    c = make_cluster(compute=2, storage=1, slots=1)
    with Client(c.endpoint, timeout=10.0, retry_for=10.0) as cl:
        before = cl.stats()
        producer = cl.submit("weft.actors.builtins:sleep", seconds="1.5")
        wait_for(lambda: cl.status([producer])[0]["state"] == "running", 10, "the producer runs")
        dep = cl.submit(CONCAT, a=producer, b="dependent of a sleeper")
        wait_for(lambda: cl.stats()["followed"] > before["followed"], 10, "the dependent is placed ahead")
        st_p, st_d = cl.status([producer, dep])
        assert st_p["state"] == "running", "the producer ended too soon: the test proves nothing"
        # Placed on the producer's node, but what the user sees is the truth:
        # it waits for its input, and has not been tried yet.
        assert st_d["state"] == "waiting"
        assert st_d["attempts"] == 0
        assert dep.result(timeout=30) == b"dependent of a sleeper"
        st_p, st_d = cl.status([producer, dep])
        assert st_d["state"] == "succeeded" and st_d["attempts"] == 1
        assert st_d["started"] >= st_p["finished"] - 0.05
        after = cl.stats()
        assert after["soft_failures"] == before["soft_failures"]
        assert after["unmet"] == before["unmet"]


def test_chain_survives_the_death_of_the_node_holding_its_next_jobs(make_cluster) -> None:
    c = make_cluster(compute=2, storage=1, slots=1)
    with Client(c.endpoint, timeout=10.0, retry_for=30.0) as cl:
        head = cl.submit("weft.actors.builtins:sleep", seconds="3")
        chain = [head]
        for i in range(4):
            chain.append(cl.submit(CONCAT, a=chain[-1], b=str(i)))
        node = wait_for(lambda: (s := cl.status([head])[0]).get("state") == "running" and s.get("node"), 10,
                        "the head of the chain runs")
        wait_for(lambda: cl.stats()["followed"] >= 2, 10, "its dependents wait on its node")
        # The coordinator shows the head running once it sent the start: kill
        # the node only once the node has it, or the lost start is a try too.
        endpoint = next(n["endpoint"] for n in cl.nodes() if n["node"] == node and n["role"] == "compute")
        with Client(endpoint, timeout=5.0) as on_node:
            wait_for(lambda: {head.job, chain[1].job, chain[2].job}
                     <= {t["job"] for t in on_node.call("list", {})["tasks"]}, 10, "the node has the chain's start")
        victim = next(p for p in c.computes if f"--node-id {node}" in " ".join(p.args))
        victim.signal(signal.SIGKILL)
        # Everything reruns on the other node, in order, with the right bytes.
        assert chain[-1].result(timeout=60) == b"0123"
        sts = by_job(cl.status(chain))
        assert all(s["state"] == "succeeded" for s in sts.values())
        assert sts[head.job]["attempts"] == 2


def test_wait_and_status_ask_in_pages_and_answer_every_job_in_order(client: Client,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # A wait on a million jobs once passed the message size limit (its
    # connection dropped with no word): the client asks in pages, here of 3.
    import weft.actors.client as client_module

    monkeypatch.setattr(client_module, "_WAIT_PAGE", 3)
    futures = client.map(CONCAT, [f"paged-{i}" for i in range(8)], key="v")
    ids = [f.job for f in futures]
    waited = client.wait(futures, timeout=60)
    assert [s["job"] for s in waited] == ids and all(s["state"] == "succeeded" for s in waited)
    assert [s["job"] for s in client.status(ids[::-1])] == ids[::-1]
