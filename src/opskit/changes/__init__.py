"""The change process: request, assess, approve, schedule, apply, roll back, close.

Public API:

- `ChangeService(ws)`: `create`, `submit`, `assess`, `approve`, `reject`,
  `schedule`, `apply`, `rollback`, `recover`, `cancel`, `close`, `get`, `list`.
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
