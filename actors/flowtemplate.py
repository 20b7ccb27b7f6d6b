"""Flow files for real builds: variables, templates and includes.

A flow file is expanded into plain `[jobs.NAME]` tables here, before
actors/flow.py turns them into job specs, so everything downstream (ids,
references, exit actions) sees the flow as if it had been written out.

    name = "cbuild"                  # the flow's name (default: the file name without .toml)
    include = ["common.toml"]        # other flow files: their vars, jobs and templates join in

    [vars]
    cflags = ["-O2", "-Wall"]        # a string or a list of strings
    out = "lib${name}.a"             # may use the variables above it

    [jobs.link]
    command = ["cc", "${cflags}", "-o", "app", "..."]   # a list variable alone fills argv items

    [[each]]                         # one job per item (or per file)
    for = "src"                      # the item's variable
    glob = "src/*.c"                 # files, relative to this flow file ... or in = ["a", "b"]
    name = "cc-${src.stem}"          # each job's name
    [each.job]                       # the job, as under [jobs.NAME]
    command = ["cc", "${cflags}", "-c", "${src.name}"]
    inputs = { code = "@./${src}" }

`${var}` works in a job's command, call, inputs (names and values), outputs, after, groups and
name strings; `$${` is a literal `${` (e.g. for sh -c). A variable holding
a list fills several argv items when it is an item of `command` on its own;
anywhere else its items are joined by spaces. An item of `each` is `${VAR}`;
for a glob it is the file's path relative to the flow file, with `${VAR.name}`
(its file name), `${VAR.stem}` (without the suffix) and `${VAR.dir}` (its
folder). Included files are read relative to the including one; its jobs
use its own variables, and the including file sees them too (its own
winning); a job name may be defined once across all of them.

Errors are one line naming the file and the key (`build.toml: jobs.cc.
command[2]: undefined variable ${cflag}`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .model import SpecError

# Top-level keys of a flow file.
_TOP = {"name", "include", "vars", "jobs", "each", "secrets"}  # secrets: the submitted file only (flowsecrets.py)
_EACH = {"for", "in", "glob", "name", "job"}
# Keys of a job whose strings take variables (nested lists/tables included).
_TEMPLATED = ("command", "call", "inputs", "outputs", "after", "groups", "after_groups", "name")
_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_]+)?)\}")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
# A glob stamping more jobs than this is most likely a mistake (`**/*`).
MAX_EACH = 10_000
# Includes nest at most this deep (a cycle is named before that).
MAX_INCLUDE_DEPTH = 16

Vars = dict[str, "str | list[str]"]


def read_flow(path: Path) -> dict[str, Any]:
    """A workflow file's TOML, as data."""
    import tomllib  # here: only workflow files need it, not a daemon's start

    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"workflow file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read workflow file {str(path)!r}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None
    return data


def resolve_input(value: str, base_dir: Path) -> str:
    """The one place a flow's input value is turned into what the job
    reads, given the directory of the file that wrote it. `@./path`
    inputs (a local file put first, see `weft put`) are resolved here;
    today every value is kept as written."""
    return value


def substitute(text: str, env: Vars, where: str) -> str:
    """`text` with every `${var}` replaced (lists joined by spaces)."""
    def one(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return "${"
        value = _lookup(m.group(1), env, where)
        return " ".join(value) if isinstance(value, list) else value
    return _VAR.sub(one, text)


def _lookup(var: str, env: Vars, where: str) -> str | list[str]:
    if var in env:
        return env[var]
    known = ", ".join(sorted(env)) or "none defined"
    raise SpecError(f"{where}: undefined variable ${{{var}}} (variables: {known})")


def _expand_argv(items: list[Any], env: Vars, where: str) -> list[Any]:
    out: list[Any] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if isinstance(item, str):
            m = _VAR.fullmatch(item)
            if m is not None and m.group(1) is not None:
                value = _lookup(m.group(1), env, at)
                out.extend(value if isinstance(value, list) else [value])
                continue
        out.append(_expand(item, env, at))
    return out


def _expand(value: Any, env: Vars, where: str) -> Any:
    if isinstance(value, str):
        return substitute(value, env, where)
    if isinstance(value, list):
        return [_expand(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        # Keys too: an input's name may come from the item (`"${src.name}" = "@./${src}"`).
        return {substitute(k, env, f"{where}.{k}"): _expand(v, env, f"{where}.{k}") for k, v in value.items()}
    return value


def expand_job(table: dict[str, Any], env: Vars, where: str, base: Path) -> dict[str, Any]:
    """One job table with its variables filled in and its inputs resolved."""
    out = dict(table)
    for key in _TEMPLATED:
        if key not in out:
            continue
        if key == "command" and isinstance(out[key], list):
            out[key] = _expand_argv(out[key], env, f"{where}.command")
        else:
            out[key] = _expand(out[key], env, f"{where}.{key}")
    inputs = out.get("inputs")
    if isinstance(inputs, dict):
        out["inputs"] = {k: resolve_input(v, base) if isinstance(v, str) else v for k, v in inputs.items()}
    on_exit = out.get("on_exit")
    if isinstance(on_exit, dict) and base is not None:
        # A `submit:FILE` of an included file is relative to that file.
        out["on_exit"] = {w: _absolute_submit(a, base) for w, a in on_exit.items()}
    return out


def _absolute_submit(action: Any, base: Path) -> Any:
    if isinstance(action, str) and action.startswith("submit:") and action[7:]:
        path = Path(action[7:]).expanduser()
        if not path.is_absolute():
            return f"submit:{base / path}"
    return action


def _read_vars(data: dict[str, Any], inherited: Vars, where: str) -> Vars:
    raw = data.get("vars", {})
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: vars must be a table of name = value")
    env = dict(inherited)
    for name, value in raw.items():
        at = f"{where}: vars.{name}"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SpecError(f"{at}: a variable name is letters, digits and '_'")
        if isinstance(value, bool) or not isinstance(value, str | int | float | list):
            raise SpecError(f"{at}: expected a string, a number or a list of strings")
        if isinstance(value, list):
            if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
                raise SpecError(f"{at}: a list variable holds strings or numbers")
            env[name] = [substitute(str(v), env, f"{at}[{i}]") for i, v in enumerate(value)]
        else:
            env[name] = substitute(str(value), env, at)
    return env


def _each_items(each: dict[str, Any], var: str, where: str, base: Path) -> list[Vars]:
    """The variables of each job an `[[each]]` stamps."""
    if ("in" in each) == ("glob" in each):
        raise SpecError(f"{where}: give either in = [...] (a list) or glob = \"PATTERN\" (files)")
    if "in" in each:
        items = each["in"]
        if not isinstance(items, list) or not all(isinstance(v, str | int | float) and not isinstance(v, bool)
                                                  for v in items):
            raise SpecError(f"{where}.in: expected a list of strings or numbers")
        return [{var: str(v)} for v in items]
    pattern = each["glob"]
    if not isinstance(pattern, str) or not pattern:
        raise SpecError(f"{where}.glob: expected a pattern, e.g. \"src/*.c\"")
    if Path(pattern).is_absolute():
        raise SpecError(f"{where}.glob {pattern!r}: the pattern is relative to the flow file ({base})")
    try:
        files = sorted(p for p in base.glob(pattern) if p.is_file())
    except (ValueError, NotImplementedError, OSError) as e:
        raise SpecError(f"{where}.glob {pattern!r}: invalid pattern: {e}") from None
    if not files:
        raise SpecError(f"{where}.glob {pattern!r}: matches no file under {base}")
    if len(files) > MAX_EACH:
        raise SpecError(f"{where}.glob {pattern!r}: matches {len(files)} files, more than {MAX_EACH}")
    out = []
    for p in files:
        rel = p.relative_to(base)
        out.append({var: rel.as_posix(), f"{var}.name": p.name, f"{var}.stem": p.stem,
                    f"{var}.dir": rel.parent.as_posix()})
    return out


def _stamp(each: Any, i: int, env: Vars, where: str, base: Path) -> list[tuple[str, dict[str, Any]]]:
    at = f"{where}: each[{i}]"
    if not isinstance(each, dict):
        raise SpecError(f"{at}: expected a table ([[each]])")
    unknown = set(each) - _EACH
    if unknown:
        raise SpecError(f"{at} has unknown keys: {', '.join(sorted(unknown))} (expected {', '.join(sorted(_EACH))})")
    var = each.get("for")
    if not isinstance(var, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
        raise SpecError(f"{at}.for: expected the item's variable name, e.g. for = \"src\"")
    name = each.get("name")
    if not isinstance(name, str) or "${" not in name:
        raise SpecError(f"{at}.name: expected a job name that uses the item, e.g. name = \"cc-${{{var}.stem}}\"")
    job = each.get("job")
    if not isinstance(job, dict):
        raise SpecError(f"{at}.job: expected the job's table ([each.job])")
    out = []
    for item in _each_items(each, var, at, base):
        item_env = {**env, **item}
        jname = substitute(name, item_env, f"{at}.name")
        if not _NAME.fullmatch(jname):
            raise SpecError(f"{at}.name: {jname!r} is not a job name (letters, digits, '.', '_', '-', "
                            "at most 64): use ${VAR.stem} for files")
        out.append((jname, expand_job(job, item_env, f"{at}.job ({jname})", base)))
    return out


def expand_flow(data: dict[str, Any], path: Path | None, *, inherited: Vars | None = None,
                seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A flow file's data with includes read, variables filled in and
    templates stamped: `{"jobs": {name: table}}` plus its `name`."""
    where = str(path) if path is not None else "workflow"
    base = path.parent if path is not None else Path.cwd()
    unknown = set(data) - _TOP
    if unknown:
        raise SpecError(f"{where}: unknown top-level keys: {', '.join(sorted(unknown))} "
                        f"(a flow has {', '.join(sorted(_TOP))})")
    if "secrets" in data and seen:
        raise SpecError(f"{where}: [secrets] go in the flow file given to weft submit --file, not in an included one")
    jobs: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}

    def add(name: str, table: dict[str, Any], at: str) -> None:
        if name in jobs:
            raise SpecError(f"{at}: job {name!r} is defined twice (also at {origin[name]})")
        jobs[name] = table
        origin[name] = at

    includes = data.get("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) and i for i in includes):
        raise SpecError(f"{where}: include must be a list of flow files")
    included_vars: Vars = dict(inherited or {})
    chain = (*seen, path.resolve()) if path is not None else seen
    for inc in includes:
        target = (base / Path(inc).expanduser()).resolve()
        if target in chain:
            shown = " -> ".join(str(p) for p in (*chain, target))
            raise SpecError(f"{where}: include {inc!r}: include cycle: {shown}")
        if len(chain) >= MAX_INCLUDE_DEPTH:
            raise SpecError(f"{where}: include {inc!r}: includes nest more than {MAX_INCLUDE_DEPTH} deep")
        try:
            sub = read_flow(target)
        except SpecError as e:
            raise SpecError(f"{where}: include {inc!r}: {e}") from None
        got = expand_flow(sub, target, inherited=dict(inherited or {}), seen=chain)
        included_vars.update(got.get("vars") or {})
        for name, table in got["jobs"].items():
            add(name, table, f"{target}: jobs.{name}")

    env = _read_vars(data, included_vars, where)
    own = data.get("jobs", {})
    if not isinstance(own, dict):
        raise SpecError(f"{where}: jobs must be tables [jobs.NAME]")
    for name, table in own.items():
        if not isinstance(table, dict):
            raise SpecError(f"{where}: jobs.{name} must be a table")
        add(name, expand_job(table, env, f"{where}: jobs.{name}", base), f"{where}: jobs.{name}")
    eaches = data.get("each", [])
    if isinstance(eaches, dict):
        eaches = [eaches]
    if not isinstance(eaches, list):
        raise SpecError(f"{where}: each must be [[each]] tables")
    for i, each in enumerate(eaches):
        for name, table in _stamp(each, i, env, where, base):
            add(name, table, f"{where}: each[{i}] ({name})")
    out: dict[str, Any] = {"jobs": jobs, "vars": env}
    if "name" in data:
        out["name"] = data["name"]
    return out


def flow_name(data: dict[str, Any], path: Path | None) -> str | None:
    """The flow's name: its `name = ...` key, else its file name without .toml."""
    name = data.get("name")
    where = str(path) if path is not None else "workflow"
    if name is None:
        if path is None:
            return None
        name = path.name[:-5] if path.name.endswith(".toml") else path.name
        if not _NAME.fullmatch(name):
            raise SpecError(f"{where}: the file name {path.name!r} cannot name the flow: add name = \"...\"")
        return name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SpecError(f"{where}: name {name!r}: expected letters, digits, '.', '_', '-' (at most 64)")
    return name
