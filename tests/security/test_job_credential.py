"""A job's credential on a secure cluster (docs/security.md, "A job's credential").

One secure cluster for the module (coordinator, storage, and a compute node
that sandboxes its jobs, sharing only the weft checkout and a scratch
directory). A command job runs `weft submit` with no key of its own (it
cannot read any key file: the sandbox hides them): its child runs and its
output comes back; the same job is refused another root's status and an
admin op; and once it ended, its credential is refused at connect.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemons.conftest import REPO, Daemons, free_port, wait_for

from weft.actors.client import Client


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    from weft.cli.keys import make_cluster_keys

    tmp = tmp_path_factory.mktemp("jobcred")
    keys = tmp / "keys"
    admin = make_cluster_keys(keys)
    daemons = Daemons(tmp)
    secure = ("--security", "curve", "--keys", str(keys))
    try:
        coord = daemons.start("coordinator", *secure, "--key", str(keys / "coordinator.secret"),
                              "--listen", f"tcp://127.0.0.1:{free_port()}", "--data-dir", str(tmp / "coordinator"),
                              "--no-beacon")
        endpoint = daemons.ready_line(coord).split()[-1]
        for role in ("storage", "compute"):
            # The job sees Python and the weft checkout (to run `weft`) and `scratch`, not `keys` or any data
            # directory.
            shared = f"{sys.base_prefix}:{REPO}:{tmp / 'scratch'}"
            share = ("--isolation", "namespace", "--share", shared) if role == "compute" else ()
            (tmp / "scratch").mkdir(exist_ok=True)
            p = daemons.start(role, *secure, *share, "--coordinator", endpoint, "--no-beacon", "--node-id",
                              f"{role}-0", "--listen", f"tcp://127.0.0.1:{free_port()}", "--data-dir", str(tmp / role))
            daemons.ready_line(p)
        with Client(endpoint, timeout=20, key=admin) as client:
            wait_for(lambda: {n["node"] for n in client.nodes() if n["ready"]} >= {"storage-0", "compute-0"}, 30,
                     "the nodes registered")
            yield {"tmp": tmp, "client": client, "coordinator": endpoint, "keys": keys}
    finally:
        daemons.stop()


def _weft(*args: str) -> str:
    return shlex.join([sys.executable, "-m", "weft", *args])


def test_a_job_submits_a_child_and_reads_it_but_nothing_else_and_its_credential_dies_with_it(
        cluster: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    client: Client = cluster["client"]
    scratch: Path = cluster["tmp"] / "scratch"
    other = client.submit(["sh", "-c", "echo another root"], name="other-root")
    client.wait([other], timeout=60)
    script = "\n".join([
        # No key file, no WEFT_KEY: only the credential the compute node gave this job.
        'test -z "${WEFT_KEY:-}" && test -n "$WEFT_JOB_CREDENTIAL" && echo "has credential"',
        f'echo "$WEFT_JOB_CREDENTIAL" > {scratch}/credential',
        f"{_weft('submit', '--wait', '--', 'sh', '-c', 'echo child says hi')} 2>&1; echo \"submit rc=$?\"",
        f"{_weft('status', other.job)} 2>&1; echo \"status rc=$?\"",
        f"{_weft('pause')} 2>&1; echo \"pause rc=$?\"",
        f"cat {cluster['keys']}/admin.secret 2>/dev/null || echo 'no admin key in here'",
    ])
    job = client.submit(["sh", "-c", script], name="parent")
    [view] = client.wait([job], timeout=90)
    out = client.get(f"{job.job}/stdout").decode()
    assert view["state"] == "succeeded", out
    lines = out.splitlines()
    assert "has credential" in lines
    assert "child says hi" in lines and "submit rc=0" in lines, out
    assert "status rc=2" in lines, out
    assert any(f"'status' of job {other.job} is not allowed for a job's credential" in ln for ln in lines), out
    assert "pause rc=2" in lines, out
    assert any("'pause' on this coordinator is not allowed for a job's credential" in ln for ln in lines), out
    assert "no admin key in here" in lines, out
    # The child is in the parent's tree and belongs to the root's owner.
    tree = client.call("tree", {"root": job.job})
    kids = [j for j in tree["jobs"] if j.get("spawned_by") == job.job]
    assert len(kids) == 1 and kids[0]["state"] == "succeeded", tree
    [child] = client.status([kids[0]["job"]])
    assert child["owner"] == "admin:admin"
    # The attempt ended: its credential is refused (a client finds it in the environment, as in the job).
    from weft.bus.errors import BusError

    monkeypatch.setenv("WEFT_JOB_CREDENTIAL", (scratch / "credential").read_text().strip())
    with Client(cluster["coordinator"], timeout=10, retry_for=0) as late:
        assert late.security is not None and late.security.identity.role == "job"
        with pytest.raises(BusError) as err:
            late.status([job.job])
    assert err.value.code == "auth-failed" and "refused this client's key" in str(err.value), err.value


def test_a_connection_made_with_a_jobs_credential_is_cut_when_the_attempt_ends(
        cluster: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from weft.bus.errors import BusError

    client: Client = cluster["client"]
    scratch: Path = cluster["tmp"] / "scratch"
    cred, done = scratch / "held-credential", scratch / "held-done"
    # The job hands its credential out and runs until told to end (bounded: 60 s).
    script = (f'echo "$WEFT_JOB_CREDENTIAL" > {cred}.tmp && mv {cred}.tmp {cred}; '
              f"i=0; while [ ! -e {done} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done")
    job = client.submit(["sh", "-c", script], name="holder")
    wait_for(lambda: cred.exists(), 60, "the job wrote its credential")
    monkeypatch.setenv("WEFT_JOB_CREDENTIAL", cred.read_text().strip())
    with Client(cluster["coordinator"], timeout=10, retry_for=0) as held:
        [view] = held.status([job.job])  # admitted while the attempt runs
        assert view["state"] == "running"
        done.touch()
        [ended] = client.wait([job], timeout=60)
        assert ended["state"] == "succeeded"
        with pytest.raises(BusError) as err:  # the same connection, after the attempt ended
            held.status([job.job])
    assert err.value.code == "forbidden"
    assert f"'status' refused: the credential job:{job.job}@" in str(err.value)
    assert "ended with its job's attempt" in str(err.value) and "\n" not in str(err.value)
