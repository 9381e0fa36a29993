"""Shared fixtures. Each fixture module belongs to one subsystem:
workspace (temporary workspaces), postgres (a real PostgreSQL server started
in a temporary folder), lab (emulated IOS devices and real sshd hosts).

Hypothesis profiles, chosen by the HYPOTHESIS_PROFILE environment variable:

- ``default`` (``make test``): a bounded number of examples, derandomized so
  that a CI failure reproduces on any machine, no example database;
- ``fuzz`` (``make fuzz``): many more, random, with the example database in
  ``.hypothesis/`` (git-ignored) so that a failure found once is replayed first.
"""

import contextlib
import os
import signal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Verbosity, settings

pytest_plugins = [
    "tests.fixtures.workspace",
    "tests.fixtures.postgres",
    "tests.fixtures.lab",
    "tests.fixtures.sshd",
    "tests.fixtures.redis",
    "tests.fixtures.nautobot",
]

# Examples build workspaces and run the CLI in-process: slow next to a pure
# function, and slower still on a loaded 2-core machine.
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "default",
    max_examples=50,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "fuzz",
    max_examples=1000,
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile("debug", parent=settings.get_profile("fuzz"), verbosity=Verbosity.verbose)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stops the background notification senders this run's CLI commands left
    behind (`opskit notify deliver --linger-pid`): they retry a test's unreachable
    receiver for up to an hour, in workspaces the run no longer needs. Only the
    controlling process does it, once every xdist worker has finished."""
    if hasattr(session.config, "workerinput"):
        return
    # This run's temporary folder only (xdist workers' are inside it): another
    # pytest run on the machine keeps its senders.
    base = str(session.config._tmp_path_factory.getbasetemp())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = [a.decode(errors="replace") for a in args]
        if "--linger-pid" in text and any(a.startswith(base) for a in text):
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGTERM)


def pytest_configure(config: pytest.Config) -> None:
    """Refuses `--dist loadgroup` when it would ignore the xdist_group marks:
    pytest-xdist 3.8 groups tests by writing a suffix into `Node._nodeid`, which
    pytest 9.2 no longer reads. The grouped tests share servers and state and
    must not be spread over workers (a spread Nautobot group migrated twice)."""
    from _pytest.nodes import Node

    groups_kept = "_nodeid" in getattr(Node, "__slots__", ("_nodeid",))
    if config.getvalue("dist") == "loadgroup" and not groups_kept:
        raise pytest.UsageError(
            f"pytest {pytest.__version__} ignores xdist_group with --dist loadgroup;"
            " install the pytest pinned in pyproject.toml"
        )
