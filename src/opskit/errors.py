"""The error types a user can meet.

Every expected failure is an `OpskitError` whose `str()` is one clear line that
names the file, line or item at fault. The CLI prints that line and exits 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path

from opskit.hoststate import HostState


class OpskitError(Exception):
    """An expected failure with a one-line, user-facing message."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        # A user-facing error is always one line: fold anything longer.
        super().__init__(" ".join(str(message).split()))


class UsageError(OpskitError):
    """A wrong parameter or combination of options (CLI exit code 2)."""

    exit_code = 2


class ValidationError(OpskitError):
    """Invalid input data; names the file, the line and the field when known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        where = ""
        if self.file:
            where = self.file + (f":{line}" if line else "")
        if field:
            where = f"{where} [{field}]" if where else f"[{field}]"
        super().__init__(f"{where}: {message}" if where else message)


class WorkspaceError(OpskitError):
    """The workspace is missing, incomplete or unreadable."""


class InventoryError(ValidationError):
    """A malformed inventory, an unknown CI or a bad selection."""


class PolicyError(ValidationError):
    """A malformed policy file (opskit.yaml)."""


class SecretError(OpskitError):
    """A credential reference cannot be resolved, or a secret would leak."""


class LedgerError(OpskitError):
    """The ledger refused an append, or cannot be read."""


class ConnectorError(OpskitError):
    """A device or host operation failed. `status` is the host state it
    gives the step (`opskit.hoststate.HostState`; each subclass its own)."""

    status: HostState = HostState.FAILED


class RunbookError(ValidationError):
    """A malformed runbook or a wrong parameter."""


class ChangeError(OpskitError):
    """A change-process error: illegal transition, unknown change."""


class ChangeRefused(ChangeError):
    """The policy refuses this action; `reason` says why (also in the ledger)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
