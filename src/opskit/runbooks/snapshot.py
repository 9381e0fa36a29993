"""What a snapshot is: the pre-change state of one host, as a value.

Taking one (`opskit.runbooks.backup`), restoring one (`opskit.runbooks.restore`)
and proving a rollback against one all work on this type; it is what the
ledger's ``host.backup`` blobs hold and what ``Snapshot.from_blobs`` rebuilds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opskit import configdiff
from opskit.connectors.base import CommandRejected, Connector
from opskit.digests import files_digest


@dataclass
class Snapshot:
    """The pre-change state of a host: its configuration, or the files captured.

    A captured file that does not exist is kept as None ("absent"), so that a
    rollback can be proven to have removed what the change created.
    """

    connector: str
    source: str  # "running" / "startup", or "files"
    platform: str
    config: str | None = None
    files: dict[str, str | None] = field(default_factory=dict)
    taken: str = ""

    @property
    def hash(self) -> str:
        if self.config is not None:
            return configdiff.config_hash(self.config, self.platform)
        return files_digest(self.files)

    @property
    def absent(self) -> list[str]:
        return sorted(path for path, text in self.files.items() if text is None)

    def blobs(self) -> dict[str, str]:
        if self.config is not None:
            return {"config": self.config}
        return {f"file:{path}": text for path, text in self.files.items() if text is not None}

    def describe(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "source": self.source,
            "platform": self.platform,
            "hash": self.hash,
            "bytes": len(self.config.encode()) if self.config is not None else None,
            "files": sorted(self.files),
            "absent": self.absent,
            "taken": self.taken,
        }

    @classmethod
    def from_blobs(
        cls,
        blobs: Mapping[str, bytes | str],
        *,
        platform: str,
        connector: str,
        source: str = "running",
        absent: Sequence[str] = (),
    ) -> Snapshot:
        """Rebuilds a snapshot from its ``host.backup`` blobs (and ``absent`` files)."""

        def text(v: bytes | str) -> str:
            return v.decode() if isinstance(v, bytes) else v

        if "config" in blobs:
            return cls(connector, source, platform, config=text(blobs["config"]))
        files: dict[str, str | None] = {
            k[5:]: text(v) for k, v in blobs.items() if k.startswith("file:")
        }
        files.update(dict.fromkeys(absent))
        return cls(connector, "files", platform, files=files)

    def compare(self, other: Snapshot) -> tuple[bool, str]:
        if self.config is not None and other.config is not None:
            return configdiff.equal(self.config, other.config, self.platform)
        diffs = []
        for path in sorted(set(self.files) | set(other.files)):
            mine, theirs = self.files.get(path), other.files.get(path)
            if mine is None and theirs is None:
                continue
            residual = configdiff.diff(
                mine or "",
                theirs or "",
                None,
                before_name=f"{path} (snapshot)" if mine is not None else "/dev/null",
                after_name=f"{path} (now)" if theirs is not None else "/dev/null",
            )
            if not residual and (mine is None) != (theirs is None):
                residual = f"{path}: {'created' if mine is None else 'removed'} (empty)\n"
            if residual:
                diffs.append(residual)
        return not diffs, "".join(diffs)


def read_file(conn: Connector, path: str) -> str | None:
    """A file's content, or None when it does not exist."""
    try:
        return conn.get_config(path)
    except CommandRejected as exc:
        if "No such file" in str(exc) or "No such file" in (exc.output or ""):
            return None
        raise


__all__ = ["Snapshot", "read_file"]
