"""The daemons' image (the zygote's imports) leaves out what a start and a first task do not need.

Every local cluster's start waits for that image on one core (docs/performance.md, "Startup,
seventh round"): modules only some ops, some settings or the CLI use are loaded on first use.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Loaded on first use, never by a start: time-window rules and exit-action flows (coordinator),
# beacons (only when on), metrics, the config file and the client/CLI side, and stdlib/third-party
# packages only those pull in.
NOT_IN_IMAGE = (
    "weft.actors.windows",
    "weft.actors.flow",
    "weft.actors.flowtemplate",
    "weft.actors.localinputs",
    "weft.actors.units",
    "weft.actors.client",
    "weft.actors.submitpipe",
    "weft.bus.beacon",
    "weft.runtime.metrics",
    "weft.runtime.configfile",
    "asyncio",
    "tomllib",
    "typer",
    "click",
    "rich",
    "http.server",
    "urllib.request",
    "email",
    "concurrent.futures",
    "multiprocessing",
    "tarfile",
    "zipfile",
)
# No module of these packages at all.
NO_PACKAGE = ("weft.cli", "weft.bench", "weft.dashboard")

PROBE = "import json, sys\nimport weft.localcluster.zygote\nprint(json.dumps(sorted(sys.modules)))\n"


def image() -> list[str]:
    """sys.modules of a fresh interpreter once the zygote's image is loaded."""
    p = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_the_daemons_image_leaves_out_what_a_start_does_not_need() -> None:
    mods = image()
    # The image is the daemons' (a sanity check that the probe saw it).
    assert {"weft.actors.coordinator.node", "weft.actors.compute.node", "weft.actors.storage.node"} <= set(mods)
    loaded = [m for m in NOT_IN_IMAGE if m in mods]
    loaded += [m for m in mods if any(m == p or m.startswith(p + ".") for p in NO_PACKAGE)]
    assert loaded == [], f"the daemons' image imports {loaded}; load them where they are used"
