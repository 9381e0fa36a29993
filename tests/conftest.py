"""Shared fixtures. Each fixture module belongs to one subsystem:
workspace (temporary workspaces), postgres (a real PostgreSQL server started
in a temporary folder), lab (emulated IOS devices and real sshd hosts)."""

pytest_plugins = [
    "tests.fixtures.workspace",
    "tests.fixtures.postgres",
    "tests.fixtures.lab",
    "tests.fixtures.sshd",
]
