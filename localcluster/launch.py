"""Start one daemon from a JSON config, without the CLI: `python -m weft.localcluster.launch CONFIG`.

Launchers that start many daemons at once (`weft up`, the tests, the
benchmark) use this instead of `weft <role>`: it imports only the role it
runs, which roughly halves each process's start on a 2-core machine. CONFIG is
`{"role": ..., "node": {NodeConfig fields}, "options": {role keyword args}}`.
People use `weft coordinator|storage|compute`, which build the same objects.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m weft.localcluster.launch CONFIG-JSON\n")
        return 2
    try:
        cfg = json.loads(argv[1])
        role = cfg["role"]
        node_fields = dict(cfg.get("node", {}))
        options = dict(cfg.get("options", {}))
    except (ValueError, KeyError, TypeError) as e:
        sys.stderr.write(f"weft launch: bad config: {e}\n")
        return 2

    from weft.runtime import log as weft_log
    from weft.runtime.node import NodeConfig, run_forever

    weft_log.setup(os.environ.get("WEFT_LOG_LEVEL"))
    if node_fields.get("data_dir"):
        node_fields["data_dir"] = Path(node_fields["data_dir"]).resolve()
        node_fields["data_dir"].mkdir(parents=True, exist_ok=True)
    config = NodeConfig(**node_fields)
    if role == "coordinator":
        from weft.actors.coordinator.node import CoordinatorNode as cls
    elif role == "storage":
        from weft.actors.storage.node import StorageNode as cls
    elif role == "compute":
        from weft.actors.compute.node import ComputeNode as cls
    else:
        sys.stderr.write(f"weft launch: unknown role {role!r}\n")
        return 2
    node = cls(config, **options)
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
