"""The life of a process forked from a warm image (a local cluster's daemons
from the zygote, a compute node's first workers and spare probe): one call,
then out with its status, never unwinding back into the parent's code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn


def run_and_exit(body: Callable[[], int | None], *, exit_handlers: bool = False) -> NoReturn:
    """In a forked child: run `body` and leave with its status (what it
    returns, 0 for None; a SystemExit's int code, else 1; 1 and a traceback
    on stderr for any other exception), stdout and stderr flushed.
    `exit_handlers`: run the atexit handlers first, as a normal exit would (a
    daemon's logging flush, a profile dump its role registered); a worker
    forked from a node must not run the node's (its journal, its log)."""
    rc = 1
    try:
        rc = body() or 0
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            if exit_handlers:
                import atexit

                atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)
