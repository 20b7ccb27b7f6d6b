"""weft: a distributed job and build execution system.

The repository keeps the design's layout (`actors/`, `bus/`, `cli/`, `bench/`
at the top); installed, they are `weft.actors`, `weft.bus`, `weft.cli` and
`weft.bench` (see `[tool.setuptools]` in pyproject.toml).
"""

__version__ = "0.1.0"
