"""Credential references and the redaction registry.

An inventory never holds a secret, only a reference to one: an environment
variable, a file, a keyring entry, or an interactive prompt. A reference is
resolved at connect time only; every resolved value is registered with the
process-wide `REDACTOR`, which every writer (ledger, logs, transcripts,
ansible-runner artifacts, exception messages) runs its text through.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.errors import SecretError

MASK = "********"
# Values shorter than this are too common to redact safely ("a", "1"), and are
# refused as secrets instead, see `Redactor.register`.
MIN_SECRET_LENGTH = 3
# Up to this many registered forms, a search is one C substring search per
# form: on a few KB of text about ten times faster than the compiled
# alternation, which scans character by character. With more forms (a
# different password on every device), the alternation's one pass wins.
SCAN_BY_SUBSTRING = 16


class Redactor:
    """Registry of secret values that must never be written anywhere."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        if not value:
            return
        # A multi-line secret (a private key) also travels JSON-escaped, e.g. in
        # Ansible events or a serialised payload: mask those forms too, with
        # non-ASCII escaped (\uXXXX) and as raw UTF-8 (the ledger's canonical text).
        forms = {
            value,
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
        }
        with self._lock:
            if not forms <= self._values:
                # Pattern first: a reader that sees None waits for this lock.
                self._pattern = None
                self._values = self._values | forms

    @property
    def values(self) -> frozenset[str]:
        return frozenset(self._values)

    def _compiled(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is not None or not self._values:  # the hot path takes no lock
            return pattern
        with self._lock:
            if self._pattern is None and self._values:
                # Longest first so that a secret containing another is masked whole.
                alternatives = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in alternatives))
            return self._pattern

    def redact(self, text: str) -> str:
        # Most texts hold no secret: the search is cheaper than a substitution.
        if not text or not self.find(text):
            return text
        pattern = self._compiled()
        return text if pattern is None else pattern.sub(MASK, text)

    def redact_bytes(self, data: bytes) -> bytes:
        if not self._values:
            return data
        for value in sorted(self._values, key=len, reverse=True):
            data = data.replace(value.encode(), MASK.encode())
        return data

    def redact_obj(self, obj: Any) -> Any:
        """Redacts every string inside a JSON-like structure (keys too)."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            return {self.redact_obj(k): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.redact_obj(v) for v in obj]
        return obj

    def find(self, text: str | bytes) -> bool:
        """True when `text` contains any registered secret value."""
        values = self._values  # replaced, never changed, by register/clear: no lock
        if not values:  # nothing registered: the ledger's usual case
            return False
        if isinstance(text, bytes):
            return any(v.encode() in text for v in values)
        if len(values) <= SCAN_BY_SUBSTRING:
            # A loop, not any(): no generator on a path every text takes.
            for value in values:  # noqa: SIM110
                if value in text:
                    return True
            return False
        pattern = self._compiled()
        return pattern is not None and pattern.search(text) is not None

    def clear(self) -> None:
        with self._lock:
            self._pattern = None
            self._values = set()  # replaced, not emptied: a search may be iterating it


REDACTOR = Redactor()


def redact(text: str) -> str:
    return REDACTOR.redact(text)


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives. Exactly one of the sources is set.

    YAML forms: ``{env: VAR}``, ``{file: path}``, ``{keyring: {service, username}}``,
    ``{prompt: "text"}``. A plain string is not a secret reference: the
    inventory schema refuses plain strings for secret fields.
    """

    env: str | None = None
    file: str | None = None
    keyring_service: str | None = None
    keyring_username: str | None = None
    prompt: str | None = None

    @classmethod
    def parse(cls, data: Any, *, where: str = "credential") -> SecretRef:
        if isinstance(data, SecretRef):
            return data
        if not isinstance(data, Mapping) or len(data) != 1:
            raise SecretError(
                f"{where}: a secret reference is one of {{env: VAR}}, {{file: PATH}}, "
                "{keyring: {service: S, username: U}} or {prompt: TEXT}"
            )
        ((kind, value),) = data.items()
        if kind == "env" and isinstance(value, str):
            return cls(env=value)
        if kind == "file" and isinstance(value, str):
            return cls(file=value)
        if kind == "prompt" and isinstance(value, str):
            return cls(prompt=value)
        if kind == "keyring" and isinstance(value, Mapping):
            return cls(keyring_service=value.get("service"), keyring_username=value.get("username"))
        raise SecretError(f"{where}: unknown secret reference {kind!r}")

    def describe(self) -> str:
        """A printable description of the reference (never the value)."""
        if self.env:
            return f"env:{self.env}"
        if self.file:
            return f"file:{self.file}"
        if self.keyring_service:
            return f"keyring:{self.keyring_service}/{self.keyring_username}"
        return f"prompt:{self.prompt}"

    def to_data(self) -> dict[str, Any]:
        if self.env:
            return {"env": self.env}
        if self.file:
            return {"file": self.file}
        if self.keyring_service:
            return {"keyring": {"service": self.keyring_service, "username": self.keyring_username}}
        return {"prompt": self.prompt}

    def resolve(self, *, base_dir: Path | None = None) -> str:
        """Returns the secret value and registers it for redaction."""
        value = self._lookup(base_dir)
        REDACTOR.register(value)
        return value

    def _lookup(self, base_dir: Path | None) -> str:
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise SecretError(f"secret {self.describe()}: environment variable is not set")
            return value
        if self.file:
            path = Path(os.path.expanduser(self.file))
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            try:
                return path.read_text().rstrip("\r\n")
            except OSError as exc:
                raise SecretError(f"secret {self.describe()}: {exc.strerror}") from None
        if self.keyring_service:
            try:
                import keyring  # optional dependency
            except ImportError:
                raise SecretError(
                    f"secret {self.describe()}: the 'keyring' package is not installed"
                ) from None
            value = keyring.get_password(self.keyring_service, self.keyring_username or "")
            if value is None:
                raise SecretError(f"secret {self.describe()}: no such keyring entry")
            return value
        import getpass
        import sys

        if not sys.stdin.isatty():
            raise SecretError(f"secret {self.describe()}: needs a terminal to prompt")
        return getpass.getpass(f"{self.prompt}: ")


def resolve_all(refs: Mapping[str, SecretRef], *, base_dir: Path | None = None) -> dict[str, str]:
    return {name: ref.resolve(base_dir=base_dir) for name, ref in refs.items()}


def assert_no_secret(items: Iterable[str | bytes], *, what: str) -> None:
    """Raises SecretError when any item contains a registered secret value."""
    for item in items:
        if REDACTOR.find(item):
            raise SecretError(f"{what} contains a secret value; refused")


def install_log_redaction() -> None:
    """Redacts every log record of the process, whatever logger or handler
    writes it (ours, netmiko's, paramiko's, invoke's): the message, its
    arguments and any formatted exception are masked when the record is made.
    Idempotent; installed when `opskit` is imported."""
    import logging

    current = logging.getLogRecordFactory()
    if getattr(current, "_opskit_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        if not REDACTOR.values:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own handling
            return record
        record.msg, record.args = REDACTOR.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = REDACTOR.redact(logging.Formatter().formatException(record.exc_info))
        return record

    factory._opskit_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
