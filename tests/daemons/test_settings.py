"""weft.runtime.settings is the one declaration of a daemon setting: the CLI, the
launcher and the Ansible role all follow it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from weft.localcluster.cluster import _launch_argv
from weft.runtime import settings as S

from .conftest import REPO, weft

ROLE_DIR = REPO / "deploy" / "ansible" / "roles" / "weft_daemon"
FLAG = re.compile(r"""['"](--[a-z][a-z0-9-]*)['"]""")


def _role_files() -> list[Path]:
    return sorted(p for sub in ("defaults", "vars", "templates", "tasks") for p in (ROLE_DIR / sub).glob("*")
                  if p.is_file())


def test_every_setting_the_ansible_role_writes_is_a_setting_of_that_role() -> None:
    # The role writes each daemon's settings into its configuration file (weft.toml.j2) from
    # weft_daemon_common_settings ([common]) and weft_daemon_role_settings ([<role>]).
    key = re.compile(r"'([a-z][a-z0-9_]*)':")
    v = yaml.safe_load((ROLE_DIR / "vars" / "main.yml").read_text())
    common = set(key.findall(v["weft_daemon_common_settings"]))
    assert {"cluster", "security", "keys", "insecure"} <= common, common  # the scan sees the keys
    assert common <= {s.name for s in S.COMMON}, sorted(common - {s.name for s in S.COMMON})
    role_settings = v["weft_daemon_role_settings"]
    shared, rest = role_settings.split("| combine(({'replicas'", 1)
    coordinator_part, compute_part = rest.split("if weft_role == 'coordinator'", 1)
    every = {s.name for role in S.ROLES for s in S.settings(role)}
    for part, names in ((shared, every), ("'replicas':" + coordinator_part, {s.name for s in S.settings("coordinator")}),
                        (compute_part, {s.name for s in S.settings("compute")})):
        found = set(key.findall(part))
        assert found and found <= names, sorted(found - names)
    # Flags still passed on a command line (weft_extra_args examples aside) are settings too.
    flags = {flag for p in _role_files() for flag in FLAG.findall(p.read_text())} - {"--config"}
    every_flag = {s.flag for role in S.ROLES for s in S.settings(role)}
    assert not flags - every_flag, f"flags the Ansible role passes that no daemon has: {sorted(flags - every_flag)}"


def test_the_ansible_role_defaults_are_weft_defaults() -> None:
    d = yaml.safe_load((ROLE_DIR / "defaults" / "main.yml").read_text())
    common = {s.name: s.default for s in S.COMMON}
    coordinator = {s.name: s.default for s in S.settings("coordinator")}
    assert d["weft_beacon_addr"] == common["beacon_addr"]
    assert d["weft_beacon_port"] == common["beacon_port"]
    assert d["weft_cluster"] == common["cluster"]
    assert d["weft_replicas"] == coordinator["replicas"]
    assert f"tcp://127.0.0.1:{d['weft_coordinator_port']}" == S.DEFAULT_COORDINATOR == coordinator["listen"]


@pytest.mark.parametrize("role", S.ROLES)
def test_weft_role_help_lists_every_setting_with_its_metavar(role: str) -> None:
    p = weft(role, "--help")
    assert p.returncode == 0, p.stderr
    for s in S.settings(role):
        assert s.flag in p.stdout, s.flag
        if s.metavar:
            # (typer lists a setting's aliases after its flag: "--slots,--cpus  N")
            assert re.search(re.escape(s.flag) + r"(?:,\S+)*\s+" + re.escape(s.metavar), p.stdout), (s.flag, s.metavar)


@pytest.mark.parametrize("role", S.ROLES)
def test_the_launcher_takes_every_setting_as_the_cli_does(role: str, tmp_path: Path) -> None:
    samples = {str: "x", int: 3, float: 2.5, bool: True, Path: tmp_path}
    values = {s.name: samples[s.type] for s in S.settings(role)}
    values.update({name: "tcp://127.0.0.1:5999" for name in ("listen", "advertise", "coordinator")
                   if name in values})
    values.update({name: "2h" for name in ("keep",) if name in values})  # a duration
    values["security"] = "curve"
    values.update({name: "127.0.0.1:9100" for name in ("metrics", "http") if name in values})  # HOST:PORT
    values.update({name: "deny Sat-Sun" for name in ("time_windows",) if name in values})  # time windows
    values.update({name: "512M" for name in ("memory",) if name in values})  # a size
    values.update({k: v for k, v in (("isolation", "none"), ("share", str(tmp_path))) if k in values})  # isolation.py
    args = [role, *S.to_args(role, values)]
    argv = _launch_argv(role, args)
    assert argv[:2] == ["-m", "weft.localcluster.launch"], f"a setting sent {role} to the full CLI: {argv}"
    assert S.resolve(role, S.from_args(role, args[1:])) == S.resolve(role, values)
    # What it resolves to fits NodeConfig and the role class as they are.
    import inspect

    from weft.runtime.daemon import role_class
    from weft.runtime.node import NodeConfig

    node, options = S.resolve(role, values)
    NodeConfig(**node)
    inspect.signature(role_class(role)).bind(NodeConfig(), **options)
    # A flag no setting has goes to the full CLI, which names it.
    assert _launch_argv(role, [role, "--no-such-flag", "1"])[:2] == ["-m", "weft"]


def test_resolve_maps_settings_onto_nodeconfig_and_role_keywords() -> None:
    node, options = S.resolve("storage", {"page_cache_mb": 2, "no_beacon": True})
    assert options == {"page_cache": 2 << 20, "max_writes": 128} and node["beacon"] is False
    node, options = S.resolve("coordinator", {})
    assert node["listen"] == S.DEFAULT_COORDINATOR and "coordinator" not in node
    with pytest.raises(S.SettingError, match="invalid --follow-ahead -1: expected 0 or more"):
        S.resolve("coordinator", {"follow_ahead": -1})
