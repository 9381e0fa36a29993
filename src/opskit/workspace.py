"""The workspace: a folder holding the policy, inventories, runbooks,
playbooks, templates and the state folder `.opskit/`.

Selected by `--workspace DIR` or `OPSKIT_WORKSPACE` (default: the current
directory); the database by `--db URL` or `OPSKIT_DB` (default: SQLite in
`.opskit/opskit.db`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.errors import WorkspaceError

# SQLAlchemy and pydantic (the database and the policy) are imported when
# first used: commands that need neither start faster.
if TYPE_CHECKING:
    from sqlalchemy import Engine

    from opskit.policy import Policy

POLICY_FILE = "opskit.yaml"
STATE_DIR = ".opskit"
SUBDIRS = ("inventories", "runbooks", "playbooks", "templates")


@dataclass
class Workspace:
    root: Path
    db_url_override: str | None = None
    _engine: Engine | None = field(default=None, repr=False)

    @classmethod
    def open(cls, root: str | Path | None = None, *, db: str | None = None) -> Workspace:
        """Opens an existing workspace (from the argument, OPSKIT_WORKSPACE, or cwd)."""
        root = Path(root or os.environ.get("OPSKIT_WORKSPACE") or ".").expanduser().resolve()
        if not (root / POLICY_FILE).is_file():
            raise WorkspaceError(
                f"{root}: not an opskit workspace (no {POLICY_FILE}); run 'opskit init'"
            )
        return cls(root=root, db_url_override=db or os.environ.get("OPSKIT_DB"))

    # -- layout -----------------------------------------------------------
    @property
    def policy_path(self) -> Path:
        return self.root / POLICY_FILE

    @property
    def inventories_dir(self) -> Path:
        return self.root / "inventories"

    @property
    def runbooks_dir(self) -> Path:
        return self.root / "runbooks"

    @property
    def playbooks_dir(self) -> Path:
        return self.root / "playbooks"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def artifacts_dir(self) -> Path:
        return self.state_dir / "artifacts"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    @property
    def db_url(self) -> str:
        return self.db_url_override or f"sqlite:///{self.state_dir / 'opskit.db'}"

    # -- loaded parts -----------------------------------------------------
    @cached_property
    def policy(self) -> Policy:
        from opskit.policy import load_policy

        return load_policy(self.policy_path)

    @property
    def engine(self) -> Engine:
        """The state database, created on first use."""
        if self._engine is None:
            from opskit.db import create_schema, open_engine

            self.state_dir.mkdir(parents=True, exist_ok=True)
            engine = open_engine(self.db_url)
            create_schema(engine)
            self._engine = engine
        return self._engine

    def inventory_path(self, name: str | None = None) -> Path:
        name = name or self.policy.inventory
        path = self.inventories_dir / name
        if not path.is_dir():
            raise WorkspaceError(f"{path}: no inventory named {name!r}")
        return path

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def init_workspace(root: str | Path, *, db: str | None = None, force: bool = False) -> Workspace:
    """Creates a new workspace: folders, a policy, the state database and the
    workspace's Ed25519 signing key (for ledger checkpoints)."""
    from opskit.ledger.keys import ensure_workspace_key
    from opskit.policy import DEFAULT_POLICY_YAML

    root = Path(root).expanduser().resolve()
    if (root / POLICY_FILE).exists() and not force:
        raise WorkspaceError(f"{root}: already a workspace ({POLICY_FILE} exists)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        for sub in SUBDIRS:
            (root / sub).mkdir(exist_ok=True)
        (root / POLICY_FILE).write_text(DEFAULT_POLICY_YAML)
        (root / STATE_DIR).mkdir(exist_ok=True)
        (root / STATE_DIR / ".gitignore").write_text("*\n")
    except OSError as exc:
        where = exc.filename or root
        raise WorkspaceError(f"{where}: cannot create the workspace ({exc.strerror})") from None
    ws = Workspace(root=root, db_url_override=db)
    ws.engine  # noqa: B018 - creates the schema now, so errors surface at init
    ensure_workspace_key(ws)
    return ws
