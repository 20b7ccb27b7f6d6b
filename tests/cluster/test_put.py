"""`weft put`, `@./path` inputs and trees, end to end on one shared local cluster.

A user's checks: the name is the content's, the same content is stored once
(each storage node holds one copy), an edited input file gives the job a new
id (never a stale cached result), a tree and its modes arrive in a command
job's inputs, and a directory output comes back through `weft get -o DIR`
with its structure and executable bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import trio

from weft.bus.peers import connect
from weft.protocol.objects import ListObjects

from .conftest import CLI_TIMEOUT, weft_argv


def run(weft, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    if cwd is None:
        return weft(*args, env=env)
    return subprocess.run([*weft_argv(), *args], capture_output=True, text=True, cwd=cwd,
                          env={**weft.env, **(env or {})}, timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, p.stderr
    return p.stdout


def content_objects(client) -> list[str]:
    """Every copy of every content object, over all storage nodes."""
    eps = [n["endpoint"] for n in client.nodes() if n["role"] == "storage"]

    async def main() -> list[str]:
        names = []
        for ep in eps:
            async with connect(ep, "test-put", timeout=5.0) as peer:
                r = await peer.call("list", ListObjects("sha256-").to_wire())
                names += [o["name"] for o in r["objects"]]
        return names

    return trio.run(main)


def make_tree(root: Path, tag: str) -> None:
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "a.c").write_text(f"int a_{tag}(void) {{ return 1; }}\n")
    (root / "src" / "deep" / "b.h").write_text("#define B 2\n")
    (root / "same.txt").write_text("twice\n")
    (root / "copy.txt").write_text("twice\n")  # same bytes as same.txt: one blob
    tool = root / "tool.sh"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    (root / "empty").mkdir()
    (root / "link").symlink_to("src/a.c")


def test_put_file_names_by_content_and_stores_once(weft, client, tmp_path: Path) -> None:
    f = tmp_path / "data.bin"
    f.write_bytes(b"weft put test file\n" * 1000)
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    first = ok(run(weft, "put", str(f))).strip()
    assert first == f"sha256-{digest}"
    again = json.loads(ok(run(weft, "put", str(f), "--json")))
    assert again["name"] == first
    copy = tmp_path / "other-name.bin"  # same bytes under another name: the same object
    copy.write_bytes(f.read_bytes())
    assert ok(run(weft, "put", str(copy))).strip() == first
    assert content_objects(client).count(f"{first}/content") == 1
    assert ok(run(weft, "get", first)) == f.read_text()
    assert client.get(first) == f.read_bytes()
    big = tmp_path / "big.bin"  # over one message: written in chunks, partial on the way
    big.write_bytes(os.urandom(3 << 20))
    name = client.put(big)
    assert client.get(name) == big.read_bytes()


def test_put_tree_stores_each_content_once(weft, client, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root, "put")
    name = ok(run(weft, "put", str(root))).strip()
    assert ok(run(weft, "put", str(root))).strip() == name
    held = content_objects(client)
    assert held.count(f"{name}/content") == 1
    twice = "sha256-" + hashlib.sha256(b"twice\n").hexdigest() + "/content"
    assert held.count(twice) == 1  # two files with the same bytes: stored once
    # An edit of one file: a new tree, the unchanged files not stored again.
    (root / "src" / "a.c").write_text("int a_put(void) { return 2; }\n")
    name2 = client.put(root)
    assert name2 != name
    held2 = content_objects(client)
    assert held2.count(twice) == 1
    assert len(held2) == len(held) + 2  # the new a.c and the new manifest
    out = tmp_path / "back"
    assert client.get_tree(name2, out) == 5
    assert (out / "src" / "a.c").read_text() == "int a_put(void) { return 2; }\n"
    assert os.access(out / "tool.sh", os.X_OK) and not os.access(out / "same.txt", os.X_OK)
    assert (out / "empty").is_dir() and os.readlink(out / "link") == "src/a.c"


def test_put_bad_paths_are_one_line_errors(weft, tmp_path: Path) -> None:
    p = run(weft, "put", str(tmp_path / "nope"))
    assert p.returncode == 2 and "no such file or directory" in p.stderr and p.stderr.count("\n") == 1
    root = tmp_path / "escape"
    root.mkdir()
    (root / "out").symlink_to("/etc/passwd")
    p = run(weft, "put", str(root))
    assert p.returncode == 2 and "points outside the tree" in p.stderr and p.stderr.count("\n") == 1
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0)
    if not os.access(secret, os.R_OK):  # (root reads anything)
        p = run(weft, "put", str(secret))
        assert p.returncode == 2 and "permission denied" in p.stderr
    p = run(weft, "submit", "--input", f"x=@{tmp_path}/missing", "--", "true")
    assert p.returncode == 2 and "missing" in p.stderr and "no such file" in p.stderr


def test_local_path_input_changes_job_id_when_the_file_changes(weft, client, tmp_path: Path) -> None:
    (tmp_path / "msg.txt").write_text("first\n")
    argv = ["submit", "--wait", "--json", "--input", "msg=@./msg.txt", "--", "sh", "-c", "cat $WEFT_INPUTS/msg"]
    r1 = json.loads(ok(run(weft, *argv, cwd=tmp_path)))["jobs"][0]
    assert r1["status"]["state"] == "succeeded"
    assert client.get(f"{r1['job']}/stdout") == b"first\n"
    r2 = json.loads(ok(run(weft, *argv, cwd=tmp_path)))["jobs"][0]
    assert r2["job"] == r1["job"] and r2["cached"]  # unchanged: the cache answers
    (tmp_path / "msg.txt").write_text("second\n")
    r3 = json.loads(ok(run(weft, *argv, cwd=tmp_path)))["jobs"][0]
    assert r3["job"] != r1["job"] and not r3["cached"]
    assert client.get(f"{r3['job']}/stdout") == b"second\n"


MAKE_OUT = r"""
set -e
o=$WEFT_OUTPUTS/out
test -d "$o"                       # made for the command (--output-dir)
mkdir -p "$o/bin" "$o/share/doc" "$o/empty"
printf '#!/bin/sh\necho built tool ran\n' > "$o/bin/tool"
chmod +x "$o/bin/tool"
echo readme > "$o/share/doc/README"
head -c 3000000 /dev/zero > "$o/share/zeros"
ln -s bin/tool "$o/tool-link"
printf '#!/bin/sh\necho plain exe ran\n' > "$WEFT_OUTPUTS/exe"
chmod 755 "$WEFT_OUTPUTS/exe"
"""


def test_directory_output_round_trips_structure_and_modes(weft, tmp_path: Path) -> None:
    r = json.loads(ok(run(weft, "submit", "--wait", "--json", "--output-dir", "out", "--output", "exe",
                          "--", "sh", "-c", MAKE_OUT)))["jobs"][0]
    assert r["status"]["state"] == "succeeded", r["status"]
    job = r["job"]
    dest = tmp_path / "got"
    p = ok(run(weft, "get", f"{job}/out", "-o", str(dest)))
    assert p == ""
    assert (dest / "share" / "doc" / "README").read_text() == "readme\n"
    assert (dest / "share" / "zeros").read_bytes() == bytes(3000000)
    assert (dest / "empty").is_dir()
    assert os.readlink(dest / "tool-link") == "bin/tool"
    tool = dest / "bin" / "tool"
    assert os.access(tool, os.X_OK) and not os.access(dest / "share" / "doc" / "README", os.X_OK)
    assert subprocess.run([str(tool)], capture_output=True, text=True).stdout == "built tool ran\n"
    # A plain file output keeps its executable bit too, and reads as its bytes.
    exe = tmp_path / "exe"
    ok(run(weft, "get", f"{job}/exe", "-o", str(exe)))
    assert subprocess.run([str(exe)], capture_output=True, text=True).stdout == "plain exe ran\n"
    assert ok(run(weft, "get", f"{job}/exe")).startswith("#!/bin/sh")
    # Without -o, a tree is refused in one line.
    p = run(weft, "get", f"{job}/out")
    assert p.returncode == 2 and "directory tree" in p.stderr and "-o DIR" in p.stderr
    # A job reading both: the tree laid out, the executable runnable as it came.
    p = ok(run(weft, "submit", "--wait", "--input", f"t=@{job}/out", "--input", f"x=@{job}/exe", "--",
               "sh", "-c", "$WEFT_INPUTS/t/bin/tool && $WEFT_INPUTS/x && cat $WEFT_INPUTS/t/tool-link"))
    assert p == "built tool ran\nplain exe ran\n#!/bin/sh\necho built tool ran\n"


LIST_TREE = r"""
cd "$WEFT_INPUTS/src"
find . -print | sort
for f in tool.sh same.txt src/a.c; do test -x "$f" && echo "$f x" || echo "$f -"; done
readlink link
./tool.sh
"""


def test_tree_input_is_laid_out_with_structure_and_modes(weft, client, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    make_tree(root, "layout")
    p = ok(run(weft, "submit", "--wait", "--input", "src=@./tree", "--", "sh", "-c", LIST_TREE, cwd=tmp_path))
    assert p.splitlines() == [
        ".", "./copy.txt", "./empty", "./link", "./same.txt", "./src", "./src/a.c", "./src/deep",
        "./src/deep/b.h", "./tool.sh",
        "tool.sh x", "same.txt -", "src/a.c -",
        "src/a.c",
        "tool ran",
    ]
    # A callable gets the tree as a path (a Path given to the client is put first).
    f = client.submit("posixpath:realpath", filename=root)
    path = f.result(timeout=60).decode()
    assert path.endswith("/inputs/filename"), path


COMPILE = r"""
set -e
for h in $(cat "$WEFT_INPUTS/src"); do cat "$WEFT_INPUTS/include/$h"; done
printf 'out.o: %s' "$WEFT_INPUTS/src" > "$WEFT_DEPFILE"
for h in $(cat "$WEFT_INPUTS/src"); do printf ' \\\n  %s' "$WEFT_INPUTS/include/$h" >> "$WEFT_DEPFILE"; done
echo >> "$WEFT_DEPFILE"
"""

FLOW = """
[jobs.one]
command = ["sh", "-c", '''{compile}''']
inputs = {{ src = "@./one.src", include = "@./include" }}

[jobs.two]
command = ["sh", "-c", '''{compile}''']
inputs = {{ src = "@./two.src", include = "@./include" }}

[jobs.link]
command = ["sh", "-c", "cat $WEFT_INPUTS/a $WEFT_INPUTS/b"]
inputs = {{ a = "@one", b = "@two" }}
"""


def test_a_depfile_keys_later_submits_by_the_files_read(weft, tmp_path: Path) -> None:
    (tmp_path / "include").mkdir()
    for h in ("a.h", "b.h", "c.h"):
        (tmp_path / "include" / h).write_text(f"{h} v1\n")
    (tmp_path / "one.src").write_text("a.h\n")
    (tmp_path / "two.src").write_text("b.h\n")
    flow = tmp_path / "build.toml"
    flow.write_text(FLOW.format(compile=COMPILE))

    def build() -> dict[str, dict]:
        out = json.loads(ok(run(weft, "submit", "--file", str(flow), "--wait", "--json",
                                env={"XDG_CACHE_HOME": str(tmp_path / "cache")})))
        assert out["ok"], out
        return {r["name"]: r for r in out["jobs"]}

    first = build()
    assert not any(r["cached"] for r in first.values())
    assert ok(run(weft, "get", first["link"]["job"])) == "a.h v1\nb.h v1\n"
    # A header only `two` read: `one` is answered by its earlier run.
    (tmp_path / "include" / "b.h").write_text("b.h v2\n")
    second = build()
    assert second["one"]["job"] == first["one"]["job"] and second["one"]["cached"]
    assert second["two"]["job"] != first["two"]["job"] and not second["two"]["cached"]
    assert not second["link"]["cached"]
    assert ok(run(weft, "get", second["link"]["job"])) == "a.h v1\nb.h v2\n"
    # A header nobody read: nothing runs.
    (tmp_path / "include" / "c.h").write_text("c.h v2\n")
    third = build()
    assert all(r["cached"] for r in third.values()), third
    assert third["link"]["job"] == second["link"]["job"]
    # The source itself is part of the key as ever.
    (tmp_path / "one.src").write_text("a.h\nc.h\n")
    fourth = build()
    assert not fourth["one"]["cached"] and fourth["two"]["cached"]
    assert ok(run(weft, "get", fourth["link"]["job"])) == "a.h v1\nc.h v2\nb.h v2\n"
    assert len(list((tmp_path / "cache" / "weft" / "flows").iterdir())) == 1  # the flow's state, nothing beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build.toml", "cache", "include", "one.src", "two.src"]


def test_submit_wait_of_a_tree_says_how_to_get_it(weft) -> None:
    p = run(weft, "submit", "--wait", "--output-dir", "out", "--", "sh", "-c", "echo x > $WEFT_OUTPUTS/out/x")
    assert p.returncode == 0 and p.stdout == ""
    assert "is a directory tree: weft get" in p.stderr and "-o DIR" in p.stderr, p.stderr


def test_an_output_tree_with_a_symlink_out_of_it_fails_the_job_saying_so(weft) -> None:
    p = run(weft, "submit", "--wait", "--output-dir", "out", "--", "sh", "-c", "ln -s /etc/passwd $WEFT_OUTPUTS/out/pw")
    assert p.returncode == 1
    assert "symlink pw points outside the tree (/etc/passwd)" in p.stderr and p.stderr.count("\n") == 1, p.stderr
