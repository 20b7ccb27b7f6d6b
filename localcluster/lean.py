"""What the zygote's image leaves out of `import trio`: a subprocess no daemon needs.

Every local cluster's start waits for the zygote's image (docs/performance.md,
"Startup"), and trio's import runs a program there for something weft never uses:
`trio._core._thread_cache` names its worker threads through
`ctypes.util.find_library("pthread")`, which on Linux runs `/sbin/ldconfig -p`
as a subprocess (a fork, an exec and a wait on the image's path) and imports
ctypes.util with it. `fast_find_library` answers that one question with the
soname ldconfig gives on glibc, `libpthread.so.0`, when the dynamic loader
can open it; anything else goes to the real ctypes.util. Thread names are the
only use (trio names its worker threads), and they come out the same.

Only the zygote calls `trim_trio_import()`; a daemon started on its own
imports trio as usual.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager


def fast_find_library(name: str) -> str | None:
    """ctypes.util.find_library without running ldconfig for "pthread" (see the module's doc)."""
    if name == "pthread" and sys.platform == "linux":
        import ctypes

        try:
            ctypes.CDLL("libpthread.so.0")
            return "libpthread.so.0"
        except OSError:
            pass
    return _real_ctypes_util().find_library(name)


def _real_ctypes_util() -> types.ModuleType:
    """The real ctypes.util, loaded in place of the stub if the stub is in."""
    import ctypes

    if isinstance(sys.modules.get("ctypes.util"), _Stub):
        del sys.modules["ctypes.util"]
        if isinstance(getattr(ctypes, "util", None), _Stub):
            del ctypes.util
    import ctypes.util

    return ctypes.util


class _Stub(types.ModuleType):
    pass


@contextmanager
def _stub_ctypes_util() -> Iterator[None]:
    """`ctypes.util` answers through fast_find_library while trio imports; the real one after."""
    if "ctypes.util" in sys.modules:
        yield
        return
    import ctypes

    stub = _Stub("ctypes.util")
    stub.find_library = fast_find_library  # type: ignore[attr-defined]
    sys.modules["ctypes.util"] = stub
    ctypes.util = stub  # what `import ctypes.util` binds when it finds the module already in
    try:
        yield
    finally:
        if sys.modules.get("ctypes.util") is stub:
            del sys.modules["ctypes.util"]
        if getattr(ctypes, "util", None) is stub:
            del ctypes.util  # the next `import ctypes.util` loads the real one


def trim_trio_import() -> None:
    """Import trio without running ldconfig."""
    if "trio" in sys.modules:
        return
    with _stub_ctypes_util():
        import trio  # noqa: F401
