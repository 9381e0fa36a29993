"""The change process: request, assess, approve, schedule, apply, roll back, close.

Public API:

- `ChangeService(ws)`: `create`, `submit`, `assess`, `approve`, `reject`,
  `schedule`, `apply`, `rollback`, `recover`, `cancel`, `close`, `get`, `list`.
  Its seams, each injectable: `journal=` (`opskit.changes.journal.Journal`:
  events with their working-table updates), `store=`
  (`opskit.changes.changestore.ChangeStore`: the working index), `runner=`
  (`opskit.changes.runners`: the executor of per-host jobs). What the engine
  shares is read from `svc.context` (`opskit.changes.context.EngineContext`):
  `ledger`, `policy`, `engine`, `catalog`, `clock`, `journal`, `store`.
- `verify_approvals(ledger, change_id, policy=None)`: re-checks the approvals
  (bindings and signatures) of a change from the ledger alone.
- `ChangeRequest`, `State`, `ChangeType`, `TRANSITIONS`.
"""

from opskit.changes.audit import verify_approvals
from opskit.changes.model import TRANSITIONS, ChangeRequest, ChangeType, State
from opskit.changes.service import ChangeService

__all__ = [
    "TRANSITIONS",
    "ChangeRequest",
    "ChangeService",
    "ChangeType",
    "State",
    "verify_approvals",
]
