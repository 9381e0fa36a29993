"""The workspace: a folder holding the policy, inventories, runbooks,
playbooks, templates and the state folder `.opskit/`.

Selected by `--workspace DIR` or `OPSKIT_WORKSPACE` (default: the current
directory); the database by `--db URL` or `OPSKIT_DB` (default: SQLite in
`.opskit/opskit.db`).
"""

from __future__ import annotations

import os
import shutil
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
SUBDIRS = ("inventories", "runbooks", "playbooks", "templates", "compliance")
# The example inventories, runbooks, playbooks, templates and compliance rules ship inside the
# package (src/opskit/examples/ links to the repository's folders).
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


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
    def compliance_dir(self) -> Path:
        return self.root / "compliance"

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

        return load_policy(self.policy_path, inventories_dir=self.inventories_dir)

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


def init_workspace(
    root: str | Path, *, db: str | None = None, force: bool = False, examples: bool = True
) -> Workspace:
    """Creates a new workspace: folders, a policy, the state database and the
    workspace's Ed25519 signing key (for ledger checkpoints). With `examples`
    (the default) the shipped inventories, runbooks, playbooks and templates
    are copied in, so that the policy's default inventory exists and a first
    change can be made at once."""
    from opskit.ledger.keys import ensure_workspace_key
    from opskit.policy import DEFAULT_POLICY_YAML

    root = Path(root).expanduser().resolve()
    if (root / POLICY_FILE).exists() and not force:
        raise WorkspaceError(f"{root}: already a workspace ({POLICY_FILE} exists)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        for sub in SUBDIRS:
            (root / sub).mkdir(exist_ok=True)
        if examples:
            copy_examples(root)
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


def copy_examples(root: str | Path) -> list[Path]:
    """Copies the shipped examples into the workspace folder `root`, keeping
    every file that already exists there. Returns the files copied."""
    root = Path(root)
    if not EXAMPLES_DIR.is_dir():
        raise WorkspaceError(f"{EXAMPLES_DIR}: the shipped examples are missing from this install")
    copied = []
    for sub in SUBDIRS:
        source = EXAMPLES_DIR / sub
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            target = root / sub / file.relative_to(source)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)
            copied.append(target)
    return copied


def empty_listing_hint(what: str, folder: Path) -> str:
    """What to do when a listing of `what` (e.g. "runbooks") in `folder` is empty."""
    return (
        f"no {what} in {folder}: copy one from {EXAMPLES_DIR / what},"
        " or run 'opskit init --examples' to add the shipped examples"
    )
