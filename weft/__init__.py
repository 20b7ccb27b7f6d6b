"""weft: a distributed job and build execution system.

The repository keeps the design's layout (`actors/`, `bus/`, `cli/`, `bench/`
at the top); installed, they are `weft.actors`, `weft.bus`, `weft.cli` and
`weft.bench` (see `[tool.setuptools]` in pyproject.toml).

`weft.progress(percent, message)` reports a running job's progress; it is
loaded on first use, so `import weft` stays light.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "progress":
        from weft.actors.progress import progress

        return progress
    raise AttributeError(f"module 'weft' has no attribute {name!r}")
