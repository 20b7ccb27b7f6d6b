"""Start one daemon from a JSON config, without the CLI: `python -m weft.localcluster.launch CONFIG`.

Launchers that start many daemons at once (`weft up`, the tests, the
benchmark) use this instead of `weft <role>`: it imports only the role it
runs, which roughly halves each process's start on a 2-core machine. CONFIG is
`{"role": ..., "values": {setting name: value}}` (weft.runtime.settings).
People use `weft coordinator|storage|compute`, which build the node through
the same weft.runtime.daemon.build: same checks, same data directory lock.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m weft.localcluster.launch CONFIG-JSON\n")
        return 2
    try:
        cfg = json.loads(argv[1])
        role = cfg["role"]
        values = dict(cfg.get("values", {}))
    except (ValueError, KeyError, TypeError) as e:
        sys.stderr.write(f"weft launch: bad config: {e}\n")
        return 2

    from weft.runtime import log as weft_log
    from weft.runtime.daemon import build
    from weft.runtime.node import run_forever
    from weft.runtime.settings import SettingError

    weft_log.setup(os.environ.get("WEFT_LOG_LEVEL"))
    try:
        node = build(role, values)
        return _run(role, node, run_forever)
    except SettingError as e:
        # The line `weft <role>` would print: launchers show it as the reason.
        sys.stderr.write(f"weft: error: {' '.join(str(e).split())}\n")
        return 2


def _run(role: str, node: object, run_forever: Callable[[object], None]) -> int:
    profile_dir = os.environ.get("WEFT_PROFILE")
    if not profile_dir:
        run_forever(node)
        return 0
    # Where the CPU goes, for docs/performance.md: cProfile of the whole
    # daemon, written when it stops (SIGTERM or Ctrl-C).
    import cProfile

    prof = cProfile.Profile()
    try:
        prof.runcall(run_forever, node)
    finally:
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        prof.dump_stats(str(Path(profile_dir) / f"{role}-{node.node_id}.prof"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
