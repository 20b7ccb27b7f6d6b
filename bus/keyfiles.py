"""Key files and the allow-list of a secure cluster (formats: bus/curve.py).

Apart from curve.py, which applies keys to sockets, so that `weft keys` and
whoever reads a key file need not import libzmq or trio.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEY_ROLES = ("node", "admin", "user")
_Z85_KEY = re.compile(r"[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")


class KeyFileError(ValueError):
    """A key file or allow-list that cannot be used: the message is one line for the user."""


def read_toml(path: Path, what: str, error: type[Exception], invalid: str = "is not valid TOML") -> dict[str, Any]:
    """A TOML file's table; `error` with one line naming `what` and the file if it cannot be read."""
    import tomllib  # here: only key, configuration and workflow files need it, not a daemon's start

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{what} {path} {invalid}: {e}") from None


@dataclass(frozen=True)
class Identity:
    """One key pair with who it is. `secret` is None for a public key file."""

    name: str
    role: str
    public: str
    secret: str | None = None
    cluster_public: str | None = None

    @property
    def user(self) -> str:
        return f"{self.role}:{self.name}"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise KeyFileError(f"invalid key name {name!r}: letters, digits, '.', '_', '-', at most 64")
    return name


def generate(name: str, role: str) -> Identity:
    if role not in KEY_ROLES:
        raise KeyFileError(f"invalid role {role!r}: expected one of {', '.join(KEY_ROLES)}")
    import zmq  # only here: reading and writing key files needs no libzmq

    public, secret = zmq.curve_keypair()
    return Identity(check_name(name), role, public.decode(), secret.decode())


def _toml_line(key: str, value: str) -> str:
    return f'{key} = "{value}"'


def write_identity(directory: Path, ident: Identity, *, cluster_public: str | None = None) -> tuple[Path, Path]:
    """`DIR/NAME.secret` (mode 0600) and `DIR/NAME.public`; refuses to overwrite a secret."""
    directory.mkdir(parents=True, exist_ok=True)
    secret_path = directory / f"{ident.name}.secret"
    public_path = directory / f"{ident.name}.public"
    lines = [f"# weft {ident.role} key {ident.name!r}: keep this file secret",
             _toml_line("name", ident.name), _toml_line("role", ident.role),
             _toml_line("public", ident.public), _toml_line("secret", ident.secret or "")]
    if cluster_public:
        lines.append(_toml_line("cluster_public", cluster_public))
    try:
        fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{secret_path} exists already; remove it first to make a new key") from None
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    public_path.write_text("\n".join([f"# weft {ident.role} public key {ident.name!r}",
                                      _toml_line("name", ident.name), _toml_line("role", ident.role),
                                      _toml_line("public", ident.public)]) + "\n")
    return secret_path, public_path


def read_identity(path: Path, *, secret: bool = True) -> Identity:
    """A key file (`.secret`, or `.public` with secret=False); KeyFileError naming the file if unusable."""
    doc = read_toml(path, "key file", KeyFileError, "is not a weft key file")
    try:
        name, role, public = str(doc["name"]), str(doc["role"]), str(doc["public"])
    except KeyError as e:
        raise KeyFileError(f"key file {path} has no {e.args[0]!r}") from None
    if role not in KEY_ROLES or not _Z85_KEY.fullmatch(public):
        raise KeyFileError(f"key file {path} is not a weft key file (role or public key invalid)")
    sec = doc.get("secret")
    if secret and not (isinstance(sec, str) and _Z85_KEY.fullmatch(sec)):
        raise KeyFileError(f"key file {path} holds no secret key (a .public file?)")
    cluster = doc.get("cluster_public")
    if cluster is not None and not (isinstance(cluster, str) and _Z85_KEY.fullmatch(cluster)):
        raise KeyFileError(f"key file {path}: cluster_public is not a key")
    return Identity(name, role, public, sec if secret else None, cluster)


@dataclass
class AllowList:
    """Admitted public keys -> (role, name), from a file; reloaded on demand (SIGHUP, `keys allow`)."""

    path: Path
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The User-Ids (`ROLE:NAME`) of the keys admitted now: a connection made
    # with a key since revoked still carries its tag, and `Admission` refuses it.
    users: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self._set(self.keys)

    def _set(self, keys: dict[str, tuple[str, str]]) -> None:
        # Every change of the keys (load, add, remove) renews `users` with them.
        self.keys = keys
        self.users = frozenset(f"{r}:{n}" for r, n in keys.values())

    def load(self) -> None:
        keys: dict[str, tuple[str, str]] = {}
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            raise KeyFileError(f"allow-list {self.path} does not exist") from None
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            parts = line.split()
            entry = len(parts) == 3 and _Z85_KEY.fullmatch(parts[0]) and parts[1] in KEY_ROLES
            # A comment is a line starting with '#' that is not an entry: '#'
            # is also a character of Z85 keys.
            if not line or (line.startswith("#") and not entry):
                continue
            if not entry:
                raise KeyFileError(f"{self.path}:{n}: expected 'PUBLIC-KEY ROLE NAME', got {raw.strip()!r}")
            keys[parts[0]] = (parts[1], parts[2])
        self._set(keys)

    def lookup(self, public: str) -> tuple[str, str] | None:
        return self.keys.get(public)

    def add(self, ident: Identity) -> None:
        """Admit `ident` (written to the file; a key already there gets the new role and name)."""
        if not _Z85_KEY.fullmatch(ident.public) or ident.role not in KEY_ROLES:
            raise KeyFileError(f"not a weft public key: {ident.public!r} ({ident.role})")
        check_name(ident.name)
        self.load()
        self._set({**self.keys, ident.public: (ident.role, ident.name)})
        self._write()

    def remove(self, name: str) -> int:
        """Drop every key named `name`; how many went."""
        self.load()
        gone = [k for k, (_, n) in self.keys.items() if n == name]
        if gone:
            self._set({k: v for k, v in self.keys.items() if v[1] != name})
            self._write()
        return len(gone)

    def _write(self) -> None:
        # Daemons of one machine may share the file: each writes its own temporary.
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text("# weft allow-list: PUBLIC-KEY ROLE NAME\n"
                       + "".join(f"{k} {r} {n}\n" for k, (r, n) in sorted(self.keys.items(), key=lambda x: x[1])))
        os.replace(tmp, self.path)
