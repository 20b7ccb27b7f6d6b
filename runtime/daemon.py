"""One daemon from setting values: the path `weft <role>` and the local-cluster launcher share.

Both hand over setting values by name (weft.runtime.settings); this checks
them, makes the data directory usable and locks it, and only then builds the
role, whose constructor already reads the directory (a journal, a task log).
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Any

from . import datadir
from .settings import SettingError, resolve

log = logging.getLogger("weft.security")


def role_class(role: str) -> type:
    # Imported on demand: a daemon loads its own role only.
    if role == "coordinator":
        from weft.actors.coordinator.node import CoordinatorNode as cls
    elif role == "storage":
        from weft.actors.storage.node import StorageNode as cls
    else:
        from weft.actors.compute.node import ComputeNode as cls
    return cls


def security(mode: str, keys_dir: Path | None, key_file: Path | None) -> Any:
    """The daemon's CurveZMQ setup, or None in the clear; SettingError naming what is missing."""
    if mode != "curve":
        return None
    if keys_dir is None:
        raise SettingError("--security curve needs --keys DIR (cluster.secret, allow, node.secret)")
    from weft.bus.curve import KeyFileError, load_daemon

    try:
        return load_daemon(Path(keys_dir), Path(key_file) if key_file else None)
    except KeyFileError as e:
        raise SettingError(str(e)) from None


def is_loopback(endpoint: str) -> bool:
    """Only this machine can reach it: ipc/inproc, or a TCP host in 127.0.0.0/8 or ::1 or localhost."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint[len("tcp://"):].rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name, or a wildcard: reachable from elsewhere


def check_exposure(listen: str, secure: bool, insecure: bool) -> None:
    """Refuse to serve in the clear where other hosts can reach it, unless told to (and then warn)."""
    if secure or is_loopback(listen):
        return
    if not insecure:
        raise SettingError(f"refusing to listen on {listen} in the clear (anyone who reaches it can run "
                           "commands as this user): use --security curve (docs/security.md), or --insecure")
    log.warning("listening on %s WITHOUT security (--insecure): anyone who reaches it can run commands as "
                "this user", listen)


def check_http(addr: str | None, tokens: Path | None, cert: Path | None = None, key: Path | None = None,
               insecure: bool = False) -> None:
    """The dashboard's rules: browsers cannot hold CURVE keys, so beyond loopback they present a token
    (--http-tokens), over HTTPS (--http-cert and --http-key) unless --insecure."""
    from .httpaddr import is_loopback_host, parse_addr

    if (cert is None) != (key is None):
        raise SettingError("--http-cert and --http-key go together (the certificate and its private key)")
    for flag, path in (("--http-tokens", tokens), ("--http-cert", cert), ("--http-key", key)):
        if path is not None and not Path(path).is_file():
            raise SettingError(f"{flag} {path}: no such file" + (" (make one with `weft keys token`)"
                                                                  if flag == "--http-tokens" else ""))
    if not addr or is_loopback_host(parse_addr(addr)[0]):
        return
    if tokens is None:
        raise SettingError(f"refusing to serve the dashboard on {addr} without --http-tokens FILE "
                           "(make one with `weft keys token --role user`): anyone who reaches it would see the "
                           "cluster's jobs")
    if cert is None:
        if not insecure:
            raise SettingError(f"refusing to serve the dashboard on {addr} without HTTPS (--http-cert, --http-key): "
                               "tokens would cross the network in the clear; or --insecure")
        log.warning("serving the dashboard on %s WITHOUT HTTPS (--insecure): its tokens cross the network in "
                    "the clear", addr)


def build(role: str, values: dict[str, Any]) -> Any:
    """The role's node, its data directory locked; SettingError (one line) if it cannot be."""
    from .node import NodeConfig

    node, options = resolve(role, values)
    node["security"] = security(node.get("security_mode", "none"), node.get("keys_dir"), node.get("key_file"))
    check_exposure(node.get("listen") or "", node["security"] is not None, node.get("insecure", False))
    check_http(node.get("http"), node.get("http_tokens"), node.get("http_cert"), node.get("http_key"),
               node.get("insecure", False))
    d = datadir.prepare(node.get("data_dir") or datadir.default_data_dir(role))
    datadir.lock(d)
    node["data_dir"] = d
    return role_class(role)(NodeConfig(**node), **options)
