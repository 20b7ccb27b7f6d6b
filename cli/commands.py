"""Imports every command module so that each registers its commands."""

from . import daemons  # noqa: F401
