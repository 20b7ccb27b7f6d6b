"""Which modules this node's callable workers can import (the `probe` op).

Asked by the coordinator when a submit names a callable whose module it has
not seen this node import, so that a module no node has fails the submit at
once instead of every attempt at run time.

The answer must hold for the workers, not the daemon: they are started by
WorkerPool as `python -m weft.actors.compute.worker` with their own
PYTHONPATH and the node's working directory first on sys.path. So each probe
runs one short-lived interpreter started exactly like a worker (same
executable, environment and working directory), which looks the modules up
with `importlib.util.find_spec`: a top-level module is found without running
it, and nothing of the user's is ever imported into the node itself. (A
dotted name imports its parent packages, in that interpreter only.) It is
killed past `timeout`; its modules are then neither found nor missing.
Modules found are remembered for the node's life; missing ones are asked
again, so a module installed later is found.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import trio

from . import importable

log = logging.getLogger("weft.compute")

# Runs in the probe interpreter (lookup.py: the same loop as the spare's): stdout
# is the answer, so whatever a package's __init__ prints goes to stderr.
_SCRIPT = """
import os, sys
out = os.dup(1)
os.dup2(2, 1)
from weft.actors.compute.lookup import look_up
os.write(out, look_up(sys.argv[1:]).encode())
"""
# The probe interpreters running at once, at most.
_CONCURRENT = 2


class Prober:
    def __init__(self, env: dict[str, str], *, python: str = sys.executable, timeout: float = 5.0) -> None:
        self.env = env
        self.python = python
        self.timeout = timeout
        self.found: set[str] = set()
        self._limit = trio.CapacityLimiter(_CONCURRENT)
        self.spare: Any = None  # prefork.SpareProbe: answers the first probe without a new interpreter
        self._known: list[str] | None = None

    def known(self) -> list[str]:
        """What the workers can import, known without a probe (importable.py):
        listed once, at the node's first inventory; found from then on."""
        if self._known is None:
            self._known = importable.known(self.env)
            self.found.update(self._known)
        return self._known

    async def probe(self, modules: list[str]) -> tuple[list[str], list[str]]:
        """(found, missing) among `modules`; the rest could not be looked up in time."""
        ask = [m for m in dict.fromkeys(modules) if m not in self.found]
        answer = await self._run(ask) if ask else ""
        missing = []
        for m, digit in zip(ask, answer, strict=False):
            if digit == "1":
                self.found.add(m)
            else:
                missing.append(m)
        return [m for m in modules if m in self.found], missing

    async def _run(self, modules: list[str]) -> str:
        if self.spare is not None:
            spare, self.spare = self.spare, None
            answer = await spare.ask(modules, self.timeout)
            if answer:
                return answer  # else as if there were none
        with trio.move_on_after(self.timeout) as scope:
            async with self._limit:
                try:
                    done = await trio.run_process(
                        [self.python, "-c", _SCRIPT, *modules], env=self.env, capture_stdout=True,
                        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=False,
                    )
                except OSError as e:
                    log.warning("cannot start a probe interpreter: %s", e)
                    return ""
        if scope.cancelled_caught:
            log.warning("looking up %s took longer than %gs: answered unknown", ", ".join(modules), self.timeout)
            return ""
        answer = done.stdout.decode("ascii", "replace")
        if done.returncode != 0 or len(answer) != len(modules) or set(answer) - {"0", "1"}:
            log.warning("the probe interpreter failed (exit %s): modules answered unknown", done.returncode)
            return ""
        return answer
