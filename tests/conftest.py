"""Shared fixtures. Each fixture module belongs to one subsystem:
workspace (temporary workspaces), postgres (a real PostgreSQL server started
in a temporary folder), lab (emulated IOS devices and real sshd hosts).

Hypothesis profiles, chosen by the HYPOTHESIS_PROFILE environment variable:

- ``default`` (``make test``): a bounded number of examples, derandomized so
  that a CI failure reproduces on any machine, no example database;
- ``fuzz`` (``make fuzz``): many more, random, with the example database in
  ``.hypothesis/`` (git-ignored) so that a failure found once is replayed first.
"""

import os

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
