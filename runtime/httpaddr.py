"""HOST:PORT addresses of the HTTP endpoints (--metrics, --http): parsed once, no trio import."""

from __future__ import annotations

import ipaddress
import re

_ADDR = re.compile(r"(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9_.-]*)):([0-9]{1,5})")


def parse_addr(value: str) -> tuple[str, int]:
    """(host, port) of `HOST:PORT`, `[V6]:PORT` or `:PORT` (all interfaces); ValueError if not one."""
    m = _ADDR.fullmatch(value.strip())
    if m is None or int(m.group(3)) > 65535:
        raise ValueError(f"invalid address {value!r}: expected HOST:PORT")
    host = m.group(1) or m.group(2) or "0.0.0.0"
    return host, int(m.group(3))


def is_addr(value: str) -> bool:
    try:
        parse_addr(value)
    except ValueError:
        return False
    return True


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
