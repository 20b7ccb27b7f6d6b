"""Modules this node's callable workers can import, known without a probe.

A compute node's inventory names them (TaskInventory.importable), so the
coordinator takes a first submit of one of them from what it knows instead
of asking every node (`probe`: a round trip and a look-up in the spare or a
new interpreter, ~3-5 ms on the first task's path at a cluster's start).

Only names a worker is sure to find, by a directory listing or two, nothing
imported or run (~1 ms in a daemon forked from the zygote, once, at its
first inventory):

- the top-level modules and packages in the directories a worker's path
  starts with: the node's working directory (where `weft up` was started:
  the user's code) and the workers' PYTHONPATH;
- weft's own modules: its package tree, by the packages' directories or,
  in an editable install, the directories its finder maps (setuptools'
  `MAPPING`). The worker itself runs from that installation.

Not the rest of the node's image (the standard library, trio, ...): what a
process has imported need not be on a worker's path (a test runner's own
modules), and callables rarely live there; those are probed.

Private names (a part starting with `_`) are left out, and so is a working
directory or PYTHONPATH entry of more than `_MOST` entries (a home
directory): shorter lists. Any module not listed is probed as before, so
one that no node can import is still refused at submit.
"""

from __future__ import annotations

import keyword
import os
import sys
from collections.abc import Iterator
from importlib.machinery import EXTENSION_SUFFIXES

_SUFFIXES = (".py", *EXTENSION_SUFFIXES)
_OWN = __name__.partition(".")[0]  # weft
# A directory with more entries than this is not listed (its modules are probed).
_MOST = 500


def path_head(env: dict[str, str]) -> list[str]:
    """What `python -m`/`-c` puts first on a worker's sys.path: the directory
    it was started in, then $PYTHONPATH (`env`: the workers' environment)."""
    return [os.getcwd(), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]


def known(env: dict[str, str]) -> list[str]:
    """The modules listed above, sorted (`env`: the workers' environment)."""
    names: set[str] = set()
    here = os.getcwd()
    for top in dict.fromkeys(path_head(env)):
        names.update(name for name, _ in _entries(os.path.join(here, top), packages=False, most=_MOST))
    names.update(_own_modules())
    return sorted(names)


def _own_modules() -> Iterator[str]:
    """weft's modules, from its package directories down. Not by a walk over
    sys.modules: in a daemon forked from the zygote, touching its ~400
    modules copied a page of the image for each (~1.8 ms)."""
    packages = {_OWN: [p for p in getattr(sys.modules.get(_OWN), "__path__", []) if type(p) is str]}
    for finder in sys.meta_path:
        mapping = getattr(sys.modules.get(getattr(finder, "__module__", "")), "MAPPING", None)
        if type(mapping) is dict:
            for name, where in mapping.items():
                if type(name) is str and name.partition(".")[0] == _OWN and type(where) is str:
                    packages.setdefault(name, []).append(where)
    todo = list(packages.items())
    while todo:
        name, dirs = todo.pop()
        for d in dirs:
            for child, is_package in _entries(d, packages=True):
                full = f"{name}.{child}"
                yield full
                if is_package and full not in packages:
                    packages[full] = [os.path.join(d, child)]
                    todo.append((full, packages[full]))


def _entries(directory: str, *, packages: bool, most: int = 1 << 30) -> Iterator[tuple[str, bool]]:
    """(name, is a regular package: only asked with `packages`) for each
    module, package or namespace directory in `directory` that `find_spec`
    would find; nothing if it has more than `most` entries."""
    try:
        with os.scandir(directory) as it:
            entries = []
            for e in it:
                entries.append(e)
                if len(entries) > most:
                    return
    except OSError:  # gone, not a directory, unreadable
        return
    for e in entries:
        name = e.name
        try:
            is_dir = e.is_dir()
        except OSError:
            continue
        if is_dir:
            if _usable(name):
                yield name, packages and os.path.exists(os.path.join(e.path, "__init__.py"))
            continue
        for suffix in _SUFFIXES:
            if name.endswith(suffix):
                if _usable(name[:-len(suffix)]):
                    yield name[:-len(suffix)], False
                break


def _usable(name: str) -> bool:
    return name.isidentifier() and not name.startswith("_") and not keyword.iskeyword(name)
