"""The configuration file as an operator uses it: daemons, `weft up`, the CLI, `weft config`.

Precedence, high to low: a command-line flag, a WEFT_* variable, the file, the default.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Daemons, assert_one_line_error, clean_env, free_port, wait_for, weft


def _write(tmp_path: Path, text: str, name: str = "weft.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_config_show_names_where_each_value_comes_from(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "[common]\ncluster = 'lab'\n[coordinator]\nreplicas = 2\nheartbeat-timeout = 4.0\n")
    p = weft("config", "show", "--role", "coordinator", "--json", "--config", str(cfg),
             env=clean_env(WEFT_COORDINATOR_HEARTBEAT_TIMEOUT="3"))
    assert p.returncode == 0, p.stderr
    shown = json.loads(p.stdout)["coordinator"]
    assert shown["replicas"] == {"value": 2, "source": f"file {cfg}"}
    assert shown["cluster"] == {"value": "lab", "source": f"file {cfg}"}  # [common] reaches every role
    # The variable beats the file.
    assert shown["heartbeat_timeout"] == {"value": 3.0, "source": "env WEFT_COORDINATOR_HEARTBEAT_TIMEOUT"}
    assert shown["storage_grace"] == {"value": 30.0, "source": "default"}


def test_weft_config_file_is_found_through_weft_config(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "[storage]\nmax_writes = 7\n")
    p = weft("config", "show", "--json", env=clean_env(WEFT_CONFIG=str(cfg)))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["storage"]["max_writes"]["value"] == 7


@pytest.mark.parametrize(("text", "parts"), [
    ("[coordinator]\nreplicaz = 2\n", ["[coordinator]", "'replicaz'"]),
    ("[coordinater]\nreplicas = 2\n", ["unknown section [coordinater]"]),
    ("[coordinator]\nreplicas = 0\n", ["replicas", "expected at least 1"]),
    ("[compute]\nslots = 'many'\n", ["slots", "expected"]),
    ("[coordinator\nreplicas = 2\n", ["not valid TOML"]),
    ("[client]\nendpoint = 'x'\n", ["[client]", "'endpoint'"]),
])
def test_a_bad_config_file_is_one_line_naming_the_file_and_key(tmp_path: Path, text: str, parts: list[str]) -> None:
    cfg = _write(tmp_path, text)
    assert_one_line_error(weft("config", "show", "--config", str(cfg)), str(cfg), *parts)
    # A daemon refuses it the same way, before it starts.
    assert_one_line_error(weft("storage", "--config", str(cfg), "--data-dir", str(tmp_path / "s")), str(cfg))


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    assert_one_line_error(weft("config", "show", "--config", str(tmp_path / "nope.toml")), "nope.toml",
                          "does not exist")


def test_template_is_a_valid_file_listing_every_setting() -> None:
    import tomllib

    from weft.runtime.settings import ROLES, settings

    p = weft("config", "template")
    assert p.returncode == 0, p.stderr
    # Uncommenting every line that has a value gives a file weft accepts.
    lines = [line[2:] if line.startswith("# ") and " = " in line and not line.endswith(" =") else line
             for line in p.stdout.splitlines()]
    doc = tomllib.loads("\n".join(line for line in lines if not line.endswith(" =")))
    for role in ROLES:
        for s in settings(role):
            assert f"# {s.name} =" in p.stdout, s.name
    assert doc["coordinator"]["replicas"] == 1


def _node_id(daemons: Daemons, *args: str, env: dict[str, str] | None = None) -> str:
    p = daemons.start("storage", *args, env=env)
    line = daemons.ready_line(p)
    assert line.startswith("weft storage "), line
    return line.split()[2]


def test_a_daemon_takes_the_file_under_its_variables_and_flags(tmp_path: Path, daemons: Daemons) -> None:
    cfg = _write(tmp_path, "[storage]\nnode_id = 'from-file'\nno_beacon = true\n")

    def args(d: str) -> tuple[str, ...]:
        return ("--config", str(cfg), "--listen", f"tcp://127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / d))

    assert _node_id(daemons, *args("a")) == "from-file"
    assert _node_id(daemons, *args("b"), env=clean_env(WEFT_STORAGE_NODE_ID="from-env")) == "from-env"
    assert _node_id(daemons, *args("c"), "--node-id", "from-flag",
                    env=clean_env(WEFT_STORAGE_NODE_ID="from-env")) == "from-flag"


def test_weft_up_and_the_cli_read_the_file(tmp_path: Path, daemons: Daemons) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg = _write(tmp_path, f"[compute]\nslots = 3\n[client]\ncoordinator = '{endpoint}'\n")
    env = clean_env(WEFT_CONFIG=str(cfg))
    up = daemons.start("up", "--json", "--compute", "1", "--storage", "1", "--data-dir", str(tmp_path / "data"),
                       "--listen", endpoint, env=env)
    json.loads(daemons.ready_line(up))

    def computes() -> list[dict]:
        # No --coordinator: the CLI finds the cluster through the file's [client] section.
        p = weft("nodes", "--json", env=env)
        assert p.returncode == 0, p.stderr
        return [n for n in json.loads(p.stdout)["nodes"] if n["role"] == "compute"]

    nodes = wait_for(computes, 20, "the compute node registered")
    assert [n["slots"] for n in nodes] == [3]
