"""Closing the journal while a commit runs in its worker thread: the
coordinator's shutdown did this, and SQLite crashed the process (exit -11
under `weft up` Ctrl-C on a loaded machine). Run in a child process, so a
crash fails this test instead of the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

RACE = textwrap.dedent('''
    import sys, threading
    from pathlib import Path
    from weft.actors.coordinator.journal import Journal
    from weft.actors.coordinator.graph import Graph
    from weft.actors.model import JobSpec

    g = Graph()
    for round_ in range(30):  # bounded: 30 journals, each closed under a writer
        j = Journal(Path(sys.argv[1]) / f"j{round_}.db")
        for i in range(2000):
            job = g.add_job(f"r{round_}-{i}", JobSpec(command=["true"], outputs=["stdout"]))
            j.stage_new(job)
        batch = j.take()

        def write():
            try:
                j.write(batch)
            except Exception:
                pass  # refused once closed: what must happen instead of a crash

        t = threading.Thread(target=write)
        t.start()
        j.close()
        t.join(30)
    print("ok")
''')


def test_closing_the_journal_under_a_commit_thread_does_not_crash(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", RACE, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-1000:])
