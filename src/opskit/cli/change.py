"""`opskit change`: the change process, a thin layer over `opskit.changes.ChangeService`.

The commands live by concern: `change_process` (the verbs before and after
the rollout, and signed approvals), `change_rollout` (apply, rollback,
recover), `change_views` (show, list) and `change_pipeline` (wait, run
--standard); `change_common` holds what they share. Each declares its
commands (`change_common.command`); they are registered here in the order `--help` lists them.
"""

from __future__ import annotations

import typer

from opskit.cli import change_pipeline, change_process, change_rollout, change_views
from opskit.cli.change_common import COMMANDS

app = typer.Typer(
    help="Change requests: create, assess, approve, apply, roll back, close.",
    no_args_is_help=True,
)

# The change process from request to close, then the tools around it.
HELP_ORDER = [
    "create",
    "submit",
    "assess",
    "approve",
    "reject",
    "schedule",
    "wait",
    "apply",
    "run",
    "rollback",
    "recover",
    "close",
    "show",
    "cancel",
    "list",
    "sign",
    "keygen",
    "verify-approvals",
]
# The modules filling COMMANDS.
DECLARED_IN = (change_process, change_rollout, change_views, change_pipeline)

for name in [*HELP_ORDER, *(other for other in COMMANDS if other not in HELP_ORDER)]:
    app.command(name)(COMMANDS[name])
