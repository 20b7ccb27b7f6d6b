"""Built-in callables, for the CLI, tests and benchmarks (`weft.actors.builtins:<name>`).

Inputs arrive as str (immediate values) or bytes (objects); every function
accepts either.
"""

from __future__ import annotations

import time


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")


def hello(message: str | bytes = "hello, world") -> bytes:
    return f"hello from weft: {_text(message)}\n".encode()


def noop(**kwargs: str | bytes) -> bytes:
    return b""


def echo(**kwargs: str | bytes) -> bytes | dict[str, bytes]:
    """One input: its bytes, as output `result`. Several: each as an output of its own name."""
    if len(kwargs) == 1:
        return _bytes(next(iter(kwargs.values())))
    return {name: _bytes(value) for name, value in kwargs.items()}


def concat(**kwargs: str | bytes) -> bytes:
    """The inputs concatenated in order of their names."""
    return b"".join(_bytes(kwargs[name]) for name in sorted(kwargs))


def fail(message: str | bytes = "boom") -> bytes:
    raise RuntimeError(_text(message))


def sleep(seconds: str | bytes = "1") -> bytes:
    time.sleep(float(_text(seconds)))
    return b""
