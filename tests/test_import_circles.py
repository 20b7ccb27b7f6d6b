"""No import circle among weft's modules: a module never imports (at the top,
inside a function, or under `if TYPE_CHECKING:`) one that imports it back,
directly or through others. A type-hint-only import counts too: it ties the
two modules together for a reader and a type checker; name a Protocol of
what is used instead (actors/coordinator/nodeview.py). Read from the source
with `ast`, nothing is imported; run it alone with
`python -m pytest tests/test_import_circles.py`."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def modules() -> dict[str, Path]:
    """Module name -> file, for every package folder pyproject.toml maps."""
    dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    out: dict[str, Path] = {}
    for package, folder in dirs.items():
        for f in (REPO / folder).rglob("*.py"):
            parts = [package, *f.relative_to(REPO / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out.setdefault(".".join(parts), f)
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The weft modules `name` imports, wherever the import stands."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                # `from pkg import mod` imports mod; `from mod import name`, mod.
                sub = f"{base}.{a.name}"
                if sub in known:
                    out.add(sub)
                elif base in known:
                    out.add(base)
    out.discard(name)
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    known = modules()
    assert "weft.actors.model" in known and "weft.cli.main" in known  # the walk found the tree
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert circles(graph) == []


def test_a_circle_is_found() -> None:
    """The check itself finds a loop through three modules, and no loop where there is none."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
