"""Unit files parsed in-process: each mistake is one line naming the file
and what is allowed; parameters typed as declared."""

from __future__ import annotations

from pathlib import Path

import pytest

from weft.actors.model import SpecError
from weft.actors.units import find, list_units, load


def unit(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(("name", "text", "says"), [
    ("a.batch", "[Batch]\nPriority=1\n", "[Batch] needs Exec=COMMAND"),
    ("a.batch", "[Workorder]\nExec=true\n", "unknown section [Workorder] (a .batch file has [Batch] and [Parameters])"),
    ("a.batch", "[Batch]\nExec=true\nNice=3\n", "unknown key Nice= in [Batch] (keys: Exec, Priority, Size"),
    ("a.batch", "[Batch]\nExec=true\nSize=huge\n", "Size='huge': allowed values are tiny, small, medium, large"),
    ("a.batch", "[Batch]\nExec=true\nTimeLimit=soon\n", "TimeLimit= 'soon'"),
    ("a.batch", "[Batch]\nExec=true\n[Parameters]\nN=float\n", "parameter N='float': expected int, str, path or VALUE1|VALUE2"),
    ("a.batch", "[Batch]\nExec=echo 'open\n", "Exec=: No closing quotation"),
    ("a.job", "[Batch]\nExec=true\n", "a unit file is NAME.workorder or NAME.batch"),
])
def test_a_bad_unit_file_is_one_line_naming_it(tmp_path: Path, name: str, text: str, says: str) -> None:
    with pytest.raises(SpecError) as e:
        load(unit(tmp_path, name, text))
    assert str(e.value).startswith(str(tmp_path / name)) and says in str(e.value)
    assert "\n" not in str(e.value)


def test_parameters_are_typed_and_checked(tmp_path: Path) -> None:
    u = load(unit(tmp_path, "b.workorder", "[Workorder]\nExec=make $X\nPriority=4\n"
                  "[Parameters]\nN=int\nMODE=a|b\nDIR=path\n"))
    assert u.job_class == "workorder" and u.command == ["make", "$X"]
    spec, extra = u.spec({"N": " 12", "MODE": "b", "DIR": "/tmp"})
    assert spec.params == {"N": 12, "MODE": "b", "DIR": "/tmp"} and spec.priority == 4
    assert spec.groups == ["b"] and spec.job_class == "workorder" and extra == {}
    with pytest.raises(SpecError, match="unit b has no parameter M \\(it takes: DIR, MODE, N\\)"):
        u.spec({"M": "a"})
    with pytest.raises(SpecError, match="parameter DIR='': expected a path"):
        u.spec({"N": "1", "MODE": "a", "DIR": ""})


def test_find_names_the_units_there(tmp_path: Path) -> None:
    unit(tmp_path, "x.batch", "[Batch]\nExec=true\n")
    unit(tmp_path, "y.workorder", "[Workorder]\nExec=true\n")
    assert [u.name for u in list_units(tmp_path)] == ["x", "y"]
    with pytest.raises(SpecError, match=r"no unit 'z' in .* \(units: x, y\)"):
        find(tmp_path, "z")
    unit(tmp_path, "x.workorder", "[Workorder]\nExec=true\n")
    with pytest.raises(SpecError, match="unit 'x' is defined twice"):
        find(tmp_path, "x")
    with pytest.raises(SpecError, match="units directory .*nope does not exist"):
        find(tmp_path / "nope", "x")
