"""Content names, tree manifests and local-path inputs, in-process (no cluster)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import trio

from weft.actors.flow import load_flow
from weft.actors.localinputs import collecting, local_ref
from weft.actors.model import JobSpec, SpecError
from weft.actors.trees import MAGIC, Manifest, TreeError, lay_out, object_of, scan, short_name


def tree(root: Path, mode: int = 0o644) -> Path:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("f\n")
    (root / "g.txt").write_text("g\n")
    (root / "run").write_text("#!/bin/sh\n")
    (root / "run").chmod(0o755)
    (root / "g.txt").chmod(mode)
    return root


def test_a_plain_file_is_named_by_its_bytes(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"hello")
    s = scan(f)
    assert s.name == "sha256-" + hashlib.sha256(b"hello").hexdigest()
    assert s.obj == s.name + "/content" and s.manifest is None
    assert object_of(s.name) == s.obj and short_name(s.obj) == s.name


def test_an_executable_file_is_a_file_manifest_with_its_mode(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"hello")
    plain = scan(f).name
    f.chmod(0o700)
    s = scan(f)
    assert s.name != plain and s.manifest.startswith(MAGIC)
    m = Manifest.decode(s.manifest)
    assert m.kind == "file" and m.entries[0].mode == 0o755


def test_tree_names_depend_on_content_and_exec_bit_not_umask(tmp_path: Path) -> None:
    a = scan(tree(tmp_path / "one", 0o644))
    b = scan(tree(tmp_path / "two", 0o664))  # another umask: the same tree
    assert a.name == b.name
    assert len(a.blobs) == 3
    (tmp_path / "two" / "g.txt").chmod(0o775)  # an executable bit is content
    assert scan(tmp_path / "two").name != a.name
    (tmp_path / "one" / "a" / "b" / "f.txt").write_text("edited\n")
    assert scan(tmp_path / "one").name != a.name


def test_scan_refuses_what_cannot_be_stored_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(TreeError, match="no such file or directory"):
        scan(tmp_path / "missing")
    root = tree(tmp_path / "t")
    (root / "a" / "up").symlink_to("../../..")
    with pytest.raises(TreeError, match=r"symlink a/up points outside the tree \(\.\./\.\./\.\.\)"):
        scan(root)
    (root / "a" / "up").unlink()
    (root / "a" / "abs").symlink_to("/etc")
    with pytest.raises(TreeError, match="points outside the tree"):
        scan(root)
    (root / "a" / "abs").unlink()
    (root / "a" / "ok").symlink_to("../g.txt")  # inside: kept as a link
    assert any(e.kind == "l" and e.target == "../g.txt" for e in Manifest.decode(scan(root).manifest).entries)
    os.mkfifo(root / "fifo")
    with pytest.raises(TreeError, match="fifo is not a regular file"):
        scan(root)


def _manifest(entries: list[dict]) -> bytes:
    return MAGIC + json.dumps({"kind": "tree", "entries": entries}).encode()


H = "0" * 64


@pytest.mark.parametrize("entries, message", [
    ([{"p": "../x", "t": "f", "m": 420, "s": 1, "h": H}], "unsafe path"),
    ([{"p": "/etc/x", "t": "f", "m": 420, "s": 1, "h": H}], "unsafe path"),
    ([{"p": "a", "t": "l", "l": "../.."}], "points outside the tree"),
    ([{"p": "a", "t": "d"}, {"p": "a", "t": "d"}], "listed twice"),
    ([{"p": "a", "t": "l", "l": "b"}, {"p": "a/x", "t": "f", "m": 420, "s": 1, "h": H}], "not a directory"),
    ([{"p": "x", "t": "f", "m": 0o4755, "s": 1, "h": H}], "bad file entry"),
])
def test_a_manifest_that_would_write_outside_its_tree_is_refused(entries: list[dict], message: str) -> None:
    with pytest.raises(TreeError, match=message):
        Manifest.decode(_manifest(entries))


def test_lay_out_writes_structure_modes_and_each_content_once(tmp_path: Path) -> None:
    src = tree(tmp_path / "src")
    (src / "copy.txt").write_text("g\n")  # the bytes of g.txt
    s = scan(src)
    fetched: list[str] = []

    async def fetch(sha: str, path: Path) -> None:
        fetched.append(sha)
        path.write_bytes(s.blobs[sha][0].read_bytes())

    dest = tmp_path / "dest"
    trio.run(lay_out, Manifest.decode(s.manifest), dest, fetch)
    assert sorted(fetched) == sorted(s.blobs) and len(fetched) == 3
    assert (dest / "copy.txt").read_text() == "g\n" and (dest / "a" / "b" / "f.txt").read_text() == "f\n"
    assert os.access(dest / "run", os.X_OK) and not os.access(dest / "g.txt", os.X_OK)
    assert scan(dest).name == s.name


def test_local_refs_need_a_submitting_client(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    assert local_ref("job/out", tmp_path) is None
    with pytest.raises(TreeError, match="weft put"):
        local_ref("./x", tmp_path)
    with collecting() as found:
        obj = local_ref("./x", tmp_path)
    assert obj == scan(tmp_path / "x").obj and list(found) == [obj]


def test_flow_paths_are_relative_to_the_flow_file(tmp_path: Path) -> None:
    d = tmp_path / "proj"
    d.mkdir()
    (d / "main.c").write_text("int main(void) { return 0; }\n")
    (d / "build.toml").write_text('[jobs.cc]\ncommand = ["cc", "-c", "main.c"]\ninputs = { src = "@./main.c" }\n')
    with collecting() as found:
        [(_, spec)] = load_flow(d / "build.toml")
    assert spec.refs == {"src": scan(d / "main.c").obj} and list(found) == [spec.refs["src"]]
    first = spec.job_id()
    (d / "main.c").write_text("int main(void) { return 1; }\n")
    with collecting():
        [(_, spec2)] = load_flow(d / "build.toml")
    assert spec2.job_id() != first
    (d / "main.c").unlink()
    with collecting(), pytest.raises(TreeError, match=r"jobs\.cc\.inputs\.src: .*main\.c: no such file"):
        load_flow(d / "build.toml")


def test_directory_outputs_are_identity_only_when_given() -> None:
    plain = JobSpec(command=["true"], outputs=["out"])
    assert plain.to_wire() == {"o": ["out"], "cmd": ["true"]}  # no new key: ids of old jobs stay
    tree_out = JobSpec(command=["true"], outputs=["out"], dirs=["out"])
    assert tree_out.job_id() != plain.job_id()
    assert JobSpec.from_wire(tree_out.to_wire()).dirs == ["out"]


def test_local_paths_in_an_exit_action_flow_are_refused(tmp_path: Path) -> None:
    from weft.actors.flow import parse_on_exit

    (tmp_path / "x").write_text("x")
    (tmp_path / "cleanup.toml").write_text('[jobs.c]\ncommand = ["true"]\ninputs = { f = "@./x" }\n')
    with collecting(), pytest.raises(TreeError, match=r"exit action .* weft put it"):
        parse_on_exit({"1": "submit:cleanup.toml"}, tmp_path)


def test_lay_out_refuses_a_file_in_the_way_in_one_line(tmp_path: Path) -> None:
    s = scan(tree(tmp_path / "src"))

    async def fetch(sha: str, path: Path) -> None:
        path.write_bytes(s.blobs[sha][0].read_bytes())

    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a").write_text("a file where the tree has a directory")
    with pytest.raises(TreeError, match=r"dest/a: a file is in the way"):
        trio.run(lay_out, Manifest.decode(s.manifest), dest, fetch)
    (dest / "a").unlink()
    (dest / "a").symlink_to(tmp_path)  # never written through
    with pytest.raises(TreeError, match="in the way"):
        trio.run(lay_out, Manifest.decode(s.manifest), dest, fetch)
    assert not (tmp_path / "b").exists()


def test_stdout_cannot_be_a_directory_output() -> None:
    with pytest.raises(SpecError, match="'stdout' .* cannot be a directory"):
        JobSpec(command=["true"], outputs=["stdout"], dirs=["stdout"])


def test_depfiles_make_style_and_plain_lists() -> None:
    from weft.actors.depfiles import parse_depfile

    make = "ares_buf.o: ../src/ares_buf.c /in/include/ares.h \\\n  /in/include/my\\ file.h\n\n/in/include/ares.h:\n"
    assert parse_depfile(make) == ["../src/ares_buf.c", "/in/include/ares.h", "/in/include/my file.h"]
    assert parse_depfile("a.h\n# note\n  sub/b.h  \n") == ["a.h", "sub/b.h"]


def test_depfile_paths_count_only_inside_tree_inputs(tmp_path: Path) -> None:
    from weft.actors.depfiles import files_read

    inputs, cwd = tmp_path / "inputs", tmp_path / "work"
    paths = [f"{inputs}/include/a.h", "../inputs/include/sub/../b.h", "/usr/include/stdio.h",
             f"{inputs}/src", f"{inputs}/include/../../escape.h"]
    assert files_read(paths, cwd, inputs, ["include", "other"]) == {"include": ["a.h", "b.h"], "other": []}
