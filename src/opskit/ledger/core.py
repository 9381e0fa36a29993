"""The ledger: append, read, checkpoint, purge.

Writes go through the raw DB-API connection of the SQLAlchemy engine: the
hot path is one `executemany` per batch, and the write lock must be taken
before the head is read (SQLite `BEGIN IMMEDIATE`; PostgreSQL a
transaction-scoped advisory lock, with the primary key on `seq` as the
backstop), so that concurrent writers form one chain with no fork or gap.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from opskit.errors import LedgerError, SecretError
from opskit.ledger import keys as keymod
from opskit.ledger.canonical import (
    GENESIS_HASH,
    NON_BMP_UTF8,
    acceptable,
    check_value,
    encode_canonical,
    encode_canonical_bytes,
    explain,
    plain_types,
)
from opskit.ledger.model import PURGE_KIND, Checkpoint, Clock, Event, VerifyReport
from opskit.ledger.output import OutputFile
from opskit.ledger.reader import LedgerReader, blob_hash
from opskit.ledger.store import BLOBS, CHECKPOINTS, EVENTS, PURGES, TREE_HEADS
from opskit.ledger.tree import TreeWriter, tree_size
from opskit.ledger.treehead import (
    check_extends,
    default_origin,
    last_signed,
    sign_tree_head,
    workspace_origin,
)
from opskit.secrets import REDACTOR
from opskit.tlog.merkle import TreeBuilder

if TYPE_CHECKING:
    from opskit.workspace import Workspace

# pg_advisory_xact_lock key: the ASCII of "opskitLG".
PG_LOCK_KEY = 0x6F70736B69744C47
BLOB_REF = re.compile(r"sha256:[0-9a-f]{64}\Z")

_encode_bytes = encode_canonical_bytes
_non_bmp = NON_BMP_UTF8.search
_new_event = tuple.__new__
_sha256 = hashlib.sha256


def _as_bytes(data: bytes | str) -> bytes:
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise LedgerError(f"blob: {type(data).__name__} is not bytes or str")


def default_actor() -> str:
    """The OS user: who takes a checkpoint when no actor is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry in some containers
        return "unknown"


class Ledger:
    """The append-only, hash-chained event ledger of one database."""

    def __init__(
        self,
        engine: Engine,
        *,
        keys_dir: Path | None = None,
        origin: str | Callable[[], str] | None = None,
    ) -> None:
        self.engine = engine
        self.keys_dir = keys_dir
        # The checkpoints' origin line: given, found when first needed (a
        # workspace's policy), or the default derived from the log key.
        self._origin = origin
        self._reader = LedgerReader(engine, keys_dir=keys_dir)
        self.dialect = self._reader.dialect
        self._dbapi_error = self._reader.dbapi_error
        self._local = threading.local()
        # The tree's right edge after this object's last commit, by head hash:
        # the next batch that starts from that head needs no read for it.
        self._tree_cache: tuple[str, TreeBuilder] | None = None
        # Called with each batch after its rows are written, before it
        # commits: what they write commits with the events (opskit.notify).
        self.commit_hooks: list[Callable[[Batch], None]] = []
        # Sends each new checkpoint to the policy's witnesses (opskit.ledger.witnessing).
        self.witnessing: Callable[[Ledger, Checkpoint], Checkpoint] | None = None
        self.last_witnessing: Any = None

    @classmethod
    def open(cls, ws: Workspace) -> Ledger:
        """The workspace's ledger. A workspace made before it had a signing key
        gets one now; checkpoints by a lost key then show as an unknown key."""
        keymod.ensure_workspace_key(ws)
        from opskit.ledger.witnessing import for_workspace

        ledger = cls(ws.engine, keys_dir=ws.keys_dir, origin=lambda: workspace_origin(ws))
        ledger.witnessing = for_workspace(ws)
        ledger.build_tree(quiet=True)
        from opskit.notify.outbox import attach

        attach(ledger, ws)
        return ledger

    @property
    def origin(self) -> str:
        """The log's origin: the first line of its checkpoints and the name of
        its note key (docs/ledger-format.md)."""
        if callable(self._origin):
            self._origin = self._origin()
        if self._origin is None:
            if self.keys_dir is None:
                raise LedgerError("checkpoint: this ledger has no signing key (no keys folder)")
            self._origin = default_origin(keymod.load_private_key(self.keys_dir).public_key())
        return self._origin

    def build_tree(self, *, quiet: bool = False) -> int:
        """Adds the Merkle tree leaves of records written before the ledger
        had a tree (one write transaction; nothing to do on a current
        ledger). Returns the tree size. `quiet`: a ledger that cannot be
        written (a read-only copy) is left as it is."""
        with self._reader.session() as session:
            cursor = session.cursor()
            stored, head = tree_size(cursor), self.head()[0]
            cursor.close()
        if stored >= head:
            return stored
        try:
            with self.batch() as batch:
                return batch.seq
        except LedgerError:
            if quiet:
                return stored
            raise

    def sql(self, text: str) -> str:
        """`text` with `?` placeholders turned into the driver's paramstyle."""
        return self._reader.sql(text)

    # -- transactions -----------------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[Any]:
        fairy = self.engine.raw_connection()
        try:
            yield fairy
        finally:
            fairy.close()

    @contextmanager
    def _write_transaction(self) -> Iterator[Any]:
        """A transaction holding the ledger's write lock; yields a DB-API cursor."""
        with self._connection() as fairy:
            if self.dialect == "sqlite":
                connection = fairy.driver_connection
                saved = connection.isolation_level
                connection.isolation_level = None  # we issue BEGIN ourselves
                try:
                    cursor = connection.cursor()
                    try:
                        cursor.execute("BEGIN IMMEDIATE")
                    except self._dbapi_error as exc:
                        raise LedgerError(f"ledger: cannot take the write lock: {exc}") from None
                    try:
                        yield cursor
                        cursor.execute("COMMIT")
                    except BaseException:
                        if connection.in_transaction:
                            connection.rollback()
                        raise
                finally:
                    connection.isolation_level = saved
            else:
                cursor = fairy.cursor()
                try:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))
                    yield cursor
                    fairy.commit()
                except BaseException:
                    fairy.rollback()
                    raise

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Many appends committed in one transaction (all or none).

        Inside a batch, `ledger.append` (and a nested `batch()`) in the same
        thread joins it rather than waiting for the lock the batch holds.
        """
        active: Batch | None = getattr(self._local, "batch", None)
        if active is not None:
            yield active
            return
        try:
            with self._write_transaction() as cursor:
                batch = Batch(self, cursor)
                self._local.batch = batch
                try:
                    yield batch
                    batch.flush()
                    for hook in self.commit_hooks:
                        hook(batch)
                finally:
                    self._local.batch = None
            if batch.tree.builder is not None and batch.tree.builder.size == batch.seq:
                self._tree_cache = (batch.head, batch.tree.builder)
        except self._dbapi_error as exc:
            raise LedgerError(f"ledger: write failed: {REDACTOR.redact(str(exc))}") from None

    # -- writing ----------------------------------------------------------
    def append(
        self,
        kind: str,
        *,
        actor: str,
        payload: Mapping[str, Any] | None = None,
        change_id: str | None = None,
        ci: str | None = None,
        blobs: Mapping[str, bytes | str] | None = None,
    ) -> Event:
        """Appends one event in its own transaction; durable when it returns."""
        with self.batch() as batch:
            return batch.append(
                kind, actor=actor, payload=payload, change_id=change_id, ci=ci, blobs=blobs
            )

    def put_blob(self, data: bytes | str) -> str:
        """Stores content (deduplicated) and returns its 'sha256:<hex>' hash."""
        with self.batch() as batch:
            return batch.put_blob(data)

    def purge_blob(self, hash_: str, actor: str, reason: str) -> Event:
        """Removes a blob's content, keeping its hash; the purge is an event."""
        if not BLOB_REF.match(hash_ or ""):
            raise LedgerError(f"purge: {hash_!r} is not a blob hash (sha256:<64 hex>)")
        with self.batch() as batch:
            cursor = batch.cursor
            cursor.execute(
                self.sql(f"SELECT content IS NULL FROM {BLOBS} WHERE hash = ?"), (hash_,)
            )
            row = cursor.fetchone()
            if row is None:
                raise LedgerError(f"purge: no blob {hash_}")
            if row[0]:
                raise LedgerError(f"purge: blob {hash_} is already purged")
            event = batch.append(PURGE_KIND, actor=actor, payload={"blob": hash_, "reason": reason})
            batch.flush()
            cursor.execute(
                self.sql(f"INSERT INTO {PURGES} (seq, blob_hash) VALUES (?, ?)"),
                (event.seq, hash_),
            )
            cursor.execute(self.sql(f"UPDATE {BLOBS} SET content = NULL WHERE hash = ?"), (hash_,))
            return event

    def checkpoint(self, actor: str | None = None, *, out: Path | None = None) -> Checkpoint:
        """Signs (head seq, head hash) with the workspace key and stores it; with
        `out`, also writes it there. A place that cannot be written is refused
        before anything is signed or stored."""
        if self.keys_dir is None:
            raise LedgerError("checkpoint: this ledger has no signing key (no keys folder)")
        key = keymod.load_private_key(self.keys_dir)
        if out is None:
            checkpoint = self._checkpoint(key, actor, None)
        else:
            with OutputFile(out) as target:
                checkpoint = self._checkpoint(key, actor, target)
                target.commit()
        return checkpoint if self.witnessing is None else self.witnessing(self, checkpoint)

    def _checkpoint(self, key: Any, actor: str | None, target: OutputFile | None) -> Checkpoint:
        origin = self.origin
        with self.batch() as batch:
            note = batch.tree_head(key, origin)
            checkpoint = Checkpoint.sign(
                key, seq=batch.seq, head=batch.head, actor=actor or default_actor(), note=note
            )
            batch.cursor.execute(
                self.sql(
                    f"INSERT INTO {CHECKPOINTS} "
                    "(seq, head, at, actor, key_id, public_key, signature) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"
                ),
                (
                    checkpoint.seq,
                    checkpoint.head,
                    checkpoint.at,
                    checkpoint.actor,
                    checkpoint.key_id,
                    checkpoint.public_key,
                    checkpoint.signature,
                ),
            )
            (checkpoint_id,) = batch.cursor.fetchone()
            batch.cursor.execute(
                self.sql(
                    f"INSERT INTO {TREE_HEADS} (checkpoint_id, origin, size, note) "
                    "VALUES (?, ?, ?, ?)"
                ),
                (checkpoint_id, origin, batch.seq, note),
            )
            if target is not None:  # a failed write rolls the checkpoint back
                target.stage(checkpoint.to_json())
        return checkpoint

    # -- reading ----------------------------------------------------------
    def reader(self) -> LedgerReader:
        """The public read interface of this ledger (`opskit.ledger.reader`)."""
        return self._reader

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record; (0, '0'*64) when empty."""
        return self._reader.head()

    def events(
        self,
        change_id: str | None = None,
        ci: str | None = None,
        kind: str | None = None,
        since: datetime | str | None = None,
        *,
        after_seq: int | None = None,
    ) -> Iterator[Event]:
        """Events in sequence order, filtered by any of the arguments."""
        return self._reader.events(change_id, ci, kind, since, after_seq=after_seq)

    def get_blob(self, hash_: str) -> bytes:
        """The content of a blob; LedgerError when purged, missing or altered."""
        return self._reader.get_blob(hash_)

    def checkpoints(self) -> list[Checkpoint]:
        """The stored signed checkpoints, oldest first."""
        return self._reader.checkpoints()

    def trusted_keys(self) -> dict[str, Any] | None:
        """The workspace's public keys by key id; None without any."""
        return self._reader.trusted_keys()

    def verify(self, since_checkpoint: Checkpoint | Path | str | None = None) -> VerifyReport:
        """Re-hashes the whole chain, every blob and every checkpoint."""
        from opskit.ledger.verify import verify_ledger

        if isinstance(since_checkpoint, str | Path):
            since_checkpoint = Checkpoint.load(Path(since_checkpoint))
        return verify_ledger(self._reader, since_checkpoint)

    def export_bundle(
        self,
        change_id: str,
        out: Path,
        *,
        actor: str | None = None,
        withhold: Iterable[int] = (),
    ) -> Path:
        """Writes the complete bundle of one change (`opskit.ledger.changebundle`)."""
        from opskit.ledger.changebundle import export_change_bundle

        return export_change_bundle(self, change_id, Path(out), actor=actor, withhold=withhold)


def _admit(check: Callable[[Any], bool], payload: dict[str, Any], kind: str) -> None:
    """Raises LedgerError naming the first part of `payload` that `check` refuses."""
    try:
        admitted = check(payload)
    except RecursionError:
        raise LedgerError(f"append {kind}: payload is nested too deeply") from None
    if not admitted:
        explain(payload, f"append {kind}: payload")


def _check_fields(kind: Any, actor: Any, change_id: Any, ci: Any) -> None:
    """Raises LedgerError for the first malformed event field."""
    if not isinstance(kind, str) or not kind:
        raise LedgerError("append: kind must be a non-empty string")
    if not isinstance(actor, str) or not actor:
        raise LedgerError(f"append {kind}: actor must be a non-empty string")
    for name, value in (("kind", kind), ("actor", actor), ("change_id", change_id), ("ci", ci)):
        if value is not None and (not isinstance(value, str) or "\x00" in value):
            raise LedgerError(f"append {kind!r}: {name} must be a string without U+0000")


class Batch:
    """Appends inside one write transaction; rows are written on `flush`."""

    def __init__(self, ledger: Ledger, cursor: Any) -> None:
        self.ledger = ledger
        self.cursor = cursor
        cursor.execute(f"SELECT seq, hash FROM {EVENTS} ORDER BY seq DESC LIMIT 1")
        row = cursor.fetchone()
        self.seq, self.head = (int(row[0]), row[1]) if row else (0, GENESIS_HASH)
        self._rows: list[tuple[Any, ...]] = []
        # This transaction's events, for the commit hooks.
        self.events: list[Event] = []
        columns = "seq, at, actor, kind, change_id, ci, prev_hash, hash, record"
        self._insert = ledger.sql(
            f"INSERT INTO {EVENTS} ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        # PostgreSQL loads many rows fastest with COPY (it needs only the
        # INSERT privilege, like the INSERT it replaces).
        self._copy = (
            f"COPY {EVENTS} ({columns}) FROM STDIN" if ledger.dialect == "postgresql" else None
        )
        self._stored_blobs: set[str] = set()
        self._clock = Clock()  # one per batch: no state shared between threads
        # The Merkle tree gets this transaction's records in this transaction.
        self.tree = TreeWriter(cursor, ledger.sql, ledger.dialect)
        cache = ledger._tree_cache
        self.tree.start(self.seq, cache[1] if cache and cache[0] == self.head else None)

    def append(
        self,
        kind: str,
        *,
        actor: str,
        payload: Mapping[str, Any] | None = None,
        change_id: str | None = None,
        ci: str | None = None,
        blobs: Mapping[str, bytes | str] | None = None,
    ) -> Event:
        # Fast path: plain strings (a U+0000 in them shows in the record as
        # an escape, below); anything else takes the field-by-field checks,
        # which name the culprit.
        if not (
            type(kind) is str
            and type(actor) is str
            and kind
            and actor
            and (change_id is None or type(change_id) is str)
            and (ci is None or type(ci) is str)
        ):
            _check_fields(kind, actor, change_id, ci)
            # A str subclass (a StrEnum) is stored as its text, in the record
            # as in the indexed columns: orjson would write an Enum's value.
            kind, actor = str.__str__(kind), str.__str__(actor)
            change_id = None if change_id is None else str.__str__(change_id)
            ci = None if ci is None else str.__str__(ci)
        payload = dict(payload or {})
        # The types here; integer range, keys and text from the encoding below.
        _admit(plain_types, payload, kind)
        if "blobs" in payload:
            self._check_blob_refs(kind, payload)
        if blobs:
            contents = {name: _as_bytes(data) for name, data in blobs.items()}
            for name, data in contents.items():
                if REDACTOR.find(data):
                    raise SecretError(f"append {kind}: blob {name!r} contains a secret; refused")
            refs = dict(payload.get("blobs") or {})
            refs.update({name: blob_hash(data) for name, data in contents.items()})
            check_value(refs, f"append {kind}: blobs")
            payload["blobs"] = refs
        else:
            contents = {}
        at = self._clock.now()
        seq = self.seq + 1
        fields = {
            "actor": actor,
            "at": at,
            "change_id": change_id,
            "ci": ci,
            "kind": kind,
            "payload": payload,
            "seq": seq,
        }
        try:
            data = _encode_bytes(fields)
        except TypeError:
            # orjson refuses integers beyond ±(2**53-1), non-string keys and
            # lone surrogates, which the full check names; and some values
            # the ledger accepts (str-subclass keys, nesting deeper than 254
            # levels), which the documented encoder writes: it leaves only
            # lone surrogates for `encode` to refuse.
            _admit(acceptable, payload, kind)
            try:
                record = encode_canonical(fields)
            except RecursionError:
                raise LedgerError(f"append {kind}: payload is nested too deeply") from None
            try:
                data = record.encode()
            except UnicodeEncodeError:
                raise LedgerError(
                    f"append {kind}: text with a lone surrogate is not Unicode"
                ) from None
        else:
            record = data.decode()
            # A key beyond U+FFFF needs a 4-byte UTF-8 character (str.isascii
            # only reads a flag).
            if not record.isascii() and _non_bmp(data) and not acceptable(payload):
                explain(payload, f"append {kind}: payload")
        # A U+0000 escaped, or the literal text "\\u0000"; most records hold
        # no backslash at all, which one memchr tells.
        if "\\" in record and "\\u0000" in record:
            _check_fields(kind, actor, change_id, ci)
            explain(payload, f"append {kind}: payload")
        if REDACTOR.find(record):
            raise SecretError(f"append {kind}: the event contains a secret value; refused")
        # Blobs are written before the event that references them.
        for content in contents.values():
            self._store_blob(content)
        hash_ = _sha256((self.head + _sha256(data).hexdigest()).encode()).hexdigest()
        self._rows.append((seq, at, actor, kind, change_id, ci, self.head, hash_, record))
        # tuple.__new__: the named tuple's own __new__ is a Python function.
        event = _new_event(Event, (seq, at, actor, kind, change_id, ci, payload, self.head, hash_))
        self.seq, self.head = seq, hash_
        self.events.append(event)
        return event

    def tree_head(self, key: Any, origin: str) -> str:
        """The signed checkpoint note of the tree of every record written so
        far (flushed first), after checking that it extends the last tree
        head signed for `origin` (LedgerError otherwise: nothing is signed)."""
        self.flush()
        builder = self.tree.builder
        if builder is None or builder.size != self.seq:
            raise LedgerError("checkpoint: the ledger's tree does not cover its records")
        root = builder.root()
        last = last_signed(self.cursor, self.ledger.sql, origin)
        if last is not None:
            check_extends(self.cursor, self.ledger.sql, last, self.seq, root)
        return sign_tree_head(key, origin, self.seq, root)

    def _check_blob_refs(self, kind: str, payload: dict[str, Any]) -> None:
        refs = payload.get("blobs")
        if refs is None:
            return
        if not isinstance(refs, dict):
            raise LedgerError(f"append {kind}: payload.blobs must map names to blob hashes")
        for name, ref in refs.items():
            if not isinstance(ref, str) or not BLOB_REF.match(ref):
                raise LedgerError(f"append {kind}: payload.blobs.{name} is not a blob hash")
            if ref in self._stored_blobs:
                continue
            self.cursor.execute(self.ledger.sql(f"SELECT 1 FROM {BLOBS} WHERE hash = ?"), (ref,))
            if self.cursor.fetchone() is None:
                raise LedgerError(f"append {kind}: payload.blobs.{name}: no blob {ref}")

    def put_blob(self, data: bytes | str) -> str:
        content = _as_bytes(data)
        if REDACTOR.find(content):
            raise SecretError("blob contains a secret value; refused")
        return self._store_blob(content)

    def _store_blob(self, content: bytes) -> str:
        hash_ = blob_hash(content)
        if hash_ in self._stored_blobs:
            return hash_
        sql = self.ledger.sql
        self.cursor.execute(
            sql(
                f"INSERT INTO {BLOBS} (hash, size, content) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            (hash_, len(content), content),
        )
        if self.cursor.rowcount == 0:
            # Known already; if its content was purged, storing it again restores it.
            self.cursor.execute(
                sql(f"UPDATE {BLOBS} SET content = ? WHERE hash = ? AND content IS NULL"),
                (content, hash_),
            )
        self._stored_blobs.add(hash_)
        return hash_

    def flush(self) -> None:
        """Writes every row appended so far (in this transaction)."""
        rows, self._rows = self._rows, []
        if self._copy is not None and len(rows) > 1:
            with self.cursor.copy(self._copy) as copy:
                for row in rows:
                    copy.write_row(row)
        elif rows:
            self.cursor.executemany(self._insert, rows)
        self.tree.add(rows)
