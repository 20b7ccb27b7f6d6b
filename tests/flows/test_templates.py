"""Flow files for real builds: variables, [[each]] templates, includes, flow
names, and the one-line errors that name the file and the key. In-process:
parsing needs no cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from weft.actors.flow import load_flow, load_named_flow
from weft.actors.model import SpecError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_variables_fill_commands_and_inputs_and_a_list_fills_argv(tmp_path: Path) -> None:
    flow = write(tmp_path / "b.toml", """
[vars]
cc = "gcc"
cflags = ["-O2", "-Wall"]
lib = "lib${cc}.a"
[jobs.compile]
command = ["${cc}", "${cflags}", "-c", "x.c", "-DFLAGS=${cflags}", "$${HOME}"]
inputs = { out = "${lib}", n = 3 }
""")
    [(name, spec)] = load_flow(flow)
    assert name == "compile"
    assert spec.command == ["gcc", "-O2", "-Wall", "-c", "x.c", "-DFLAGS=-O2 -Wall", "${HOME}"]
    assert spec.inputs == {"out": "libgcc.a", "n": "3"}


def test_variables_change_the_job_id_like_a_written_out_flow(tmp_path: Path) -> None:
    templated = write(tmp_path / "t.toml", '[vars]\nf = "-O2"\n[jobs.a]\ncommand = ["cc", "${f}"]\n')
    plain = write(tmp_path / "p.toml", '[jobs.a]\ncommand = ["cc", "-O2"]\n')
    other = write(tmp_path / "o.toml", '[vars]\nf = "-O3"\n[jobs.a]\ncommand = ["cc", "${f}"]\n')
    ids = [load_flow(f)[0][1].job_id() for f in (templated, plain, other)]
    assert ids[0] == ids[1] != ids[2]


def test_each_over_a_list_stamps_one_job_per_item_and_refs_between_them(tmp_path: Path) -> None:
    flow = write(tmp_path / "l.toml", """
[[each]]
for = "word"
in = ["alpha", "beta"]
name = "say-${word}"
[each.job]
command = ["echo", "${word}"]
[jobs.both]
command = ["cat", "inputs/a", "inputs/b"]
inputs = { a = "@say-alpha", b = "@say-beta/stdout" }
""")
    jobs = dict(load_flow(flow))
    assert sorted(jobs) == ["both", "say-alpha", "say-beta"]
    assert jobs["say-beta"].command == ["echo", "beta"]
    assert jobs["both"].refs == {"a": f"{jobs['say-alpha'].job_id()}/stdout",
                                 "b": f"{jobs['say-beta'].job_id()}/stdout"}


def test_each_over_a_glob_is_relative_to_the_flow_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "proj" / "src" / "ares_buf.c", "int a;\n")
    write(tmp_path / "proj" / "src" / "ares_addr.c", "int b;\n")
    write(tmp_path / "proj" / "src" / "notes.txt", "")
    flow = write(tmp_path / "proj" / "build.toml", """
[vars]
cflags = ["-O2"]
[[each]]
for = "src"
glob = "src/*.c"
name = "cc-${src.stem}"
[each.job]
command = ["cc", "${cflags}", "-c", "${src.name}"]
inputs = { path = "${src}", dir = "${src.dir}" }
outputs = ["${src.stem}.o"]
""")
    monkeypatch.chdir(tmp_path)  # not the flow's folder: the glob must not depend on it
    jobs = dict(load_flow(flow))
    assert sorted(jobs) == ["cc-ares_addr", "cc-ares_buf"]
    assert jobs["cc-ares_buf"].command == ["cc", "-O2", "-c", "ares_buf.c"]
    assert jobs["cc-ares_buf"].inputs == {"path": "src/ares_buf.c", "dir": "src"}
    assert jobs["cc-ares_buf"].outputs == ["ares_buf.o"]


def test_includes_bring_vars_and_jobs_relative_to_each_file(tmp_path: Path) -> None:
    write(tmp_path / "lib" / "src" / "one.c", "")
    write(tmp_path / "lib" / "common.toml", """
[vars]
cc = "clang"
[[each]]
for = "f"
glob = "src/*.c"
name = "lib-${f.stem}"
[each.job]
command = ["${cc}", "-c", "${f.name}"]
""")
    flow = write(tmp_path / "main.toml", """
name = "app"
include = ["lib/common.toml"]
[vars]
cc = "gcc"
[jobs.link]
command = ["${cc}", "-o", "app"]
inputs = { one = "@lib-one" }
""")
    name, jobs = load_named_flow(flow)
    got = dict(jobs)
    assert name == "app"
    assert got["lib-one"].command == ["clang", "-c", "one.c"]  # its own file's vars
    assert got["link"].command == ["gcc", "-o", "app"]  # the including file's win
    assert got["link"].refs == {"one": f"{got['lib-one'].job_id()}/stdout"}


def test_flow_name_is_the_name_key_else_the_file_name(tmp_path: Path) -> None:
    assert load_named_flow(write(tmp_path / "cbuild.toml", '[jobs.a]\ncommand = ["true"]\n'))[0] == "cbuild"
    named = write(tmp_path / "x.toml", 'name = "mine"\n[jobs.a]\ncommand = ["true"]\n')
    assert load_named_flow(named)[0] == "mine"


@pytest.mark.parametrize(("files", "wanted"), [
    ({"f.toml": '[jobs.a]\ncommand = ["cc", "${cflag}"]\n'},
     "f.toml: jobs.a.command[1]: undefined variable ${cflag} (variables: none defined)"),
    ({"f.toml": '[vars]\ncflags = "x"\n[jobs.a]\ncommand = ["cc"]\ninputs = { i = "a${cflag}" }\n'},
     "f.toml: jobs.a.inputs.i: undefined variable ${cflag} (variables: cflags)"),
    ({"f.toml": '[[each]]\nfor = "s"\nglob = "src/*.c"\nname = "cc-${s.stem}"\n[each.job]\ncommand = ["cc"]\n'},
     "f.toml: each[0].glob 'src/*.c': matches no file under "),
    ({"f.toml": '[[each]]\nfor = "s"\nglob = "/etc/*"\nname = "c-${s.stem}"\n[each.job]\ncommand = ["cc"]\n'},
     "f.toml: each[0].glob '/etc/*': the pattern is relative to the flow file"),
    ({"f.toml": 'include = ["g.toml"]\n[jobs.a]\ncommand = ["true"]\n',
      "g.toml": 'include = ["f.toml"]\n[jobs.b]\ncommand = ["true"]\n'},
     "g.toml: include 'f.toml': include cycle: "),
    ({"f.toml": 'include = ["g.toml"]\n[jobs.a]\ncommand = ["true"]\n',
      "g.toml": '[jobs.a]\ncommand = ["false"]\n'},
     "f.toml: jobs.a: job 'a' is defined twice (also at "),
    ({"f.toml": '[jobs.cc-x]\ncommand = ["true"]\n[[each]]\nfor = "s"\nin = ["x"]\nname = "cc-${s}"\n'
                '[each.job]\ncommand = ["cc"]\n'},
     "f.toml: each[0] (cc-x): job 'cc-x' is defined twice (also at "),
    ({"f.toml": 'include = ["missing.toml"]\n[jobs.a]\ncommand = ["true"]\n'},
     "f.toml: include 'missing.toml': workflow file "),
    ({"f.toml": 'jobz = 1\n[jobs.a]\ncommand = ["true"]\n'},
     "f.toml: unknown top-level keys: jobz"),
])
def test_errors_are_one_line_naming_file_and_key(tmp_path: Path, files: dict[str, str], wanted: str) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(SpecError) as e:
        load_flow(tmp_path / "f.toml")
    msg = str(e.value)
    assert "\n" not in msg
    head, _, rest = wanted.partition(": ")
    assert msg.startswith(f"{tmp_path / head}: {rest}"), msg


def test_the_include_cycle_error_shows_the_chain(tmp_path: Path) -> None:
    write(tmp_path / "f.toml", 'include = ["g.toml"]\n[jobs.a]\ncommand = ["true"]\n')
    write(tmp_path / "g.toml", 'include = ["f.toml"]\n[jobs.b]\ncommand = ["true"]\n')
    with pytest.raises(SpecError, match=r"include cycle: .*f\.toml -> .*g\.toml -> .*f\.toml$"):
        load_flow(tmp_path / "f.toml")


def test_input_names_take_variables_too(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for n in ("a.c", "b.c"):
        (tmp_path / "src" / n).write_text("int x;\n")
    flow = tmp_path / "f.toml"
    flow.write_text('[[each]]\nfor = "src"\nglob = "src/*.c"\nname = "cc-${src.stem}"\n[each.job]\n'
                    'command = ["cc", "-c", "${src.name}"]\ninputs = { "${src.stem}_in" = "@cc-x" }\n'
                    '[jobs.cc-x]\ncommand = ["true"]\n')
    from weft.actors.flow import load_flow

    specs = dict(load_flow(flow))
    assert set(specs["cc-a"].refs) == {"a_in"} and set(specs["cc-b"].refs) == {"b_in"}


def test_output_dirs_are_outputs_kept_as_trees_like_the_command_lines(tmp_path: Path) -> None:
    flow = write(tmp_path / "d.toml", """
[jobs.install]
command = ["sh", "-c", "make DESTDIR=$WEFT_OUTPUTS/tree install"]
output_dirs = ["tree"]
[jobs.both]
command = ["sh", "-c", "true"]
outputs = ["stdout", "log"]
output_dirs = ["log", "site"]
[jobs.reader]
command = ["ls", "-R"]
inputs = { t = "@install/tree" }
""")
    specs = dict(load_flow(flow))
    assert specs["install"].outputs == ["tree"] and list(specs["install"].dirs) == ["tree"]
    assert specs["both"].outputs == ["stdout", "log", "site"] and list(specs["both"].dirs) == ["log", "site"]
    assert specs["reader"].refs == {"t": f"{specs['install'].job_id()}/tree"}
    # A directory output changes what the job makes, so its id.
    plain = write(tmp_path / "p.toml", '[jobs.install]\ncommand = ["sh", "-c", "make DESTDIR=$WEFT_OUTPUTS/tree install"]\n'
                                        'outputs = ["tree"]\n')
    assert dict(load_flow(plain))["install"].job_id() != specs["install"].job_id()


def test_output_dirs_must_be_output_names(tmp_path: Path) -> None:
    write(tmp_path / "f.toml", '[jobs.a]\ncommand = ["true"]\noutput_dirs = [1]\n')
    with pytest.raises(SpecError, match=r"f\.toml: jobs\.a\.output_dirs: expected a list of output names$"):
        load_flow(tmp_path / "f.toml")
