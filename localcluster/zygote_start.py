"""The zygote's command line: its interpreter starts without `site` (`-S`).

`site` plus an editable install's finder was ~12 ms of the zygote's start,
on the serial path of every local cluster (docs/performance.md, "Startup,
eighth round"). The zygote runs in the launcher's own environment, so
what `site` would compute is already known here: the launcher's sys.path
(site-packages and the directories .pth files added) and the meta path
finders an editable install's .pth installs. The zygote is given those and
sets them up itself; the builtins `site` adds (exit, quit, help, ...) too,
since jobs run in forks of this interpreter.

Anything else a .pth file would run (a coverage hook, say) cannot be
replayed this way: then the zygote starts with `site` as before.
"""

from __future__ import annotations

import json
import os
import sys

# Run by `python -S -c BOOT SPEC FD`: SPEC is the JSON of `_spec()`; the zygote
# then sees argv [-c, FD] as `python -m weft.localcluster.zygote FD` would.
_BOOT = """\
import sys
spec = __import__("json").loads(sys.argv.pop(1))
sys.path[0] = __import__("os").getcwd()
sys.path.extend(p for p in spec["path"] if p not in sys.path)
for name in spec["finders"]:
    __import__(name).install()
import site
site.setquit(); site.setcopyright(); site.sethelper()
del spec, site
__import__("runpy")._run_module_as_main(%r, alter_argv=False)
"""

# .pth lines `site` would exec that the zygote replays (editable finders) or
# may skip (setuptools' distutils shim: only `import distutils` uses it).
_KNOWN_HOOKS = ("import __editable__", "import os; var = 'SETUPTOOLS_USE_DISTUTILS'")


def _pth_hooks_known() -> bool:
    import site

    for d in [*site.getsitepackages(), site.getusersitepackages()]:
        try:
            names = [n for n in os.listdir(d) if n.endswith(".pth")]
        except OSError:
            continue
        for n in names:
            try:
                with open(os.path.join(d, n), encoding="utf-8", errors="replace") as f:
                    lines = f.read().splitlines()
            except OSError:
                return False
            for line in lines:
                if line.startswith(("import ", "import\t")) and not line.startswith(_KNOWN_HOOKS):
                    return False
    return True


def _spec() -> dict[str, list[str]] | None:
    """What `site` set up in this interpreter, or None if it cannot be replayed."""
    if sys.flags.no_site or not _pth_hooks_known():
        return None
    finders = []
    for f in sys.meta_path:
        mod = getattr(f, "__module__", "") or ""
        if mod.startswith("__editable__"):
            if not hasattr(sys.modules.get(mod), "install"):
                return None
            finders.append(mod)
    # `site` appends site-packages, then the directories .pth files name, at
    # the end of sys.path: that tail is what the zygote misses under -S.
    import site

    sites = {*site.getsitepackages(), site.getusersitepackages()}
    first = next((i for i, p in enumerate(sys.path) if p in sites), None)
    if first is None:
        return None
    return {"path": sys.path[first:], "finders": finders}


def zygote_argv(fd: int, module: str = "weft.localcluster.zygote") -> list[str]:
    """The command that starts the zygote (`module`, for tests) serving on FD."""
    spec = _spec()
    if spec is None:
        return [sys.executable, "-m", module, str(fd)]
    return [sys.executable, "-S", "-c", _BOOT % module, json.dumps(spec), str(fd)]
