"""`opskit change`: the change process, a thin layer over `opskit.changes.ChangeService`.

The commands live by concern: `change_process` (the verbs before and after
the rollout, and signed approvals), `change_rollout` (apply, rollback,
recover) and `change_views` (show, list); `change_common` holds what they
share. They are registered here in the order `--help` lists them.
"""

from __future__ import annotations

import typer

from opskit.cli import change_process as process
from opskit.cli import change_rollout as rollout
from opskit.cli import change_views as views

app = typer.Typer(
    help="Change requests: create, assess, approve, apply, roll back, close.",
    no_args_is_help=True,
)

app.command()(process.create)
app.command()(process.submit)
app.command()(process.assess)
app.command()(process.approve)
app.command()(process.reject)
app.command()(process.schedule)
app.command()(rollout.apply)
app.command()(rollout.rollback)
app.command()(rollout.recover)
app.command()(process.close)
app.command()(views.show)
app.command()(process.cancel)
app.command("list")(views.list_changes)
app.command()(process.sign)
app.command()(process.keygen)
app.command("verify-approvals")(process.verify_approvals_cmd)
