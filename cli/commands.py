"""Imports every command module so that each registers its commands."""

from . import bench, daemons, direct, jobs, up  # noqa: F401
