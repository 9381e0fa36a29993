"""RFC 6962 Merkle trees in the stored-hash layout of Go's `sumdb/tlog`.

A log of records is a Merkle tree (RFC 6962 §2.1): the hash of record data is
``SHA-256(0x00 || data)``, an interior node is ``SHA-256(0x01 || left ||
right)``, and the tree of `n` records splits at the largest power of two
smaller than `n`. The hashes are stored in one dense sequence, exactly as
`golang.org/x/mod/sumdb/tlog` stores them: appending record `n` stores its
record hash, then the hash of every complete subtree it closes (on average
just under two hashes per record), starting at ``stored_hash_index(0, n)``.
From that sequence a tree hash, an inclusion proof (RFC 6962 "audit path") or
a consistency proof costs O(log n) reads, through a `HashReader`.

The functions mirror Go's, renamed to Python style: `record_hash`
(``RecordHash``), `node_hash`, `stored_hash_index`, `split_stored_hash_index`,
`stored_hash_count`, `stored_hashes`, `tree_hash`, `prove_record`,
`prove_tree`, `check_record` and `check_tree`. A hash is 32 `bytes`; a proof
is a list of hashes, in Go's order (deepest first). Example:

    >>> hashes = MemoryHashes()
    >>> for n, data in enumerate([b"a", b"b", b"c"]):
    ...     hashes.extend(stored_hashes(n, data, hashes))
    >>> root = tree_hash(3, hashes)
    >>> check_record(prove_record(3, 1, hashes), 3, root, 1, record_hash(b"b"))
    >>> len(hashes), stored_hash_count(3)
    (4, 4)

`TreeBuilder` appends many records at once from the tree's right edge (the
roots of its complete subtrees), which is what a writer and a full
recomputation use. This module imports only the standard library and
`opskit.errors`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from opskit.errors import OpskitError

HASH_SIZE = 32
#: The hash of the empty tree (RFC 6962 §2.1): SHA-256 of the empty string.
EMPTY_TREE_HASH = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


class MerkleError(OpskitError):
    """A proof that does not verify, or arguments outside the tree."""


class HashReader(Protocol):
    """Reads stored hashes by their index in the stored-hash sequence.

    `read_hashes` returns one 32-byte hash per index, in the order asked
    (the functions here always ask in increasing order), or raises.
    """

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]: ...


class MemoryHashes(list[bytes]):
    """The stored-hash sequence held in a list: a `HashReader` for tests,
    tools and the recomputation of a whole tree."""

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        return [self[index] for index in indexes]


def record_hash(data: bytes) -> bytes:
    """The leaf hash of record data: ``SHA-256(0x00 || data)``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def hash_text(digest: bytes) -> str:
    """A hash as standard base64, the form checkpoints and proofs print."""
    return base64.b64encode(digest).decode()


def parse_hash(text: str) -> bytes:
    """A base64 hash back to its 32 bytes; raises MerkleError if malformed."""
    try:
        digest = base64.b64decode(text, validate=True)
    except ValueError:
        digest = b""
    if len(digest) != HASH_SIZE or hash_text(digest) != text:
        raise MerkleError(f"malformed hash {text[:60]!r}")
    return digest


def _trailing_ones(n: int) -> int:
    return ((n ^ (n + 1)).bit_length()) - 1


def _maxpow2(n: int) -> tuple[int, int]:
    """(k, log2 k) for the largest power of two k smaller than n (n >= 2)."""
    level = (n - 1).bit_length() - 1
    return 1 << level, level


def stored_hash_index(level: int, n: int) -> int:
    """The position of hash (level, n) in the stored-hash sequence.

    Level L's n-th hash is stored right after level L+1's (2n+1)-th; level
    0's n-th hash sits at n + n/2 + n/4 + ... (Crosby and Wallach §3.3).
    """
    for _ in range(level):
        n = 2 * n + 1
    index = 0
    while n > 0:
        index += n
        n >>= 1
    return index + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """The inverse of `stored_hash_index`: (level, n) of a stored index."""
    n = index // 2
    index_n = stored_hash_index(0, n)
    while True:
        # Record n adds 1 + (trailing ones of n) hashes.
        following = index_n + 1 + _trailing_ones(n)
        if following > index:
            break
        n += 1
        index_n = following
    level = index - index_n
    return level, n >> level


def stored_hash_count(n: int) -> int:
    """How many hashes a tree of n records stores (2n - popcount(n))."""
    return 2 * n - n.bit_count() if n > 0 else 0


def stored_hashes(n: int, data: bytes, reader: HashReader) -> list[bytes]:
    """The hashes to store when appending record n with `data`."""
    return stored_hashes_for_record_hash(n, record_hash(data), reader)


def stored_hashes_for_record_hash(n: int, leaf: bytes, reader: HashReader) -> list[bytes]:
    """`stored_hashes` given the record hash instead of the data. Reads the
    left siblings of the subtrees record n completes (at most log2 n)."""
    completed = _trailing_ones(n)
    indexes = [stored_hash_index(i, (n >> i) - 1) for i in reversed(range(completed))]
    old = _read(reader, indexes)
    hashes = [leaf]
    for sibling in reversed(old):
        leaf = node_hash(sibling, leaf)
        hashes.append(leaf)
    return hashes


def _read(reader: HashReader, indexes: list[int]) -> list[bytes]:
    if not indexes:
        return []
    hashes = reader.read_hashes(indexes)
    if len(hashes) != len(indexes) or any(len(h) != HASH_SIZE for h in hashes):
        raise MerkleError(f"the hash store gave {len(hashes)} hashes for {len(indexes)} indexes")
    return list(hashes)


def _require_hashes(what: str, hashes: list[bytes]) -> None:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise MerkleError(f"invalid {what}: a hash is not {HASH_SIZE} bytes")


def _subtree_indexes(lo: int, hi: int, need: list[int]) -> None:
    """Append the stored indexes of the complete subtrees covering [lo, hi)."""
    while lo < hi:
        k, level = _maxpow2(hi - lo + 1)
        need.append(stored_hash_index(level, lo >> level))
        lo += k


def _subtree_hash(lo: int, hi: int, hashes: list[bytes]) -> bytes:
    """Fold the hashes `_subtree_indexes(lo, hi)` read (consumed from the front)."""
    count = 0
    while lo < hi:
        k, _ = _maxpow2(hi - lo + 1)
        count += 1
        lo += k
    parts = hashes[:count]
    del hashes[:count]
    digest = parts[-1]
    for left in reversed(parts[:-1]):
        digest = node_hash(left, digest)
    return digest


def edge_indexes(n: int) -> list[int]:
    """The stored indexes of the roots of the complete subtrees of a tree of
    n records, largest first: what `TreeBuilder` starts from."""
    need: list[int] = []
    _subtree_indexes(0, n, need)
    return need


def tree_hash(n: int, reader: HashReader) -> bytes:
    """The root hash of the tree of the first n records (one read, at most
    1 + log2 n hashes)."""
    if n < 0:
        raise MerkleError(f"invalid tree size {n}")
    if n == 0:
        return EMPTY_TREE_HASH
    hashes = _read(reader, edge_indexes(n))
    return _subtree_hash(0, n, hashes)


def _leaf_proof_indexes(lo: int, hi: int, n: int, need: list[int]) -> None:
    if lo + 1 == hi:
        return
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        _leaf_proof_indexes(lo, lo + k, n, need)
        _subtree_indexes(lo + k, hi, need)
    else:
        _subtree_indexes(lo, lo + k, need)
        _leaf_proof_indexes(lo + k, hi, n, need)


def _leaf_proof(lo: int, hi: int, n: int, hashes: list[bytes]) -> list[bytes]:
    if lo + 1 == hi:
        return []
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        proof = _leaf_proof(lo, lo + k, n, hashes)
        sibling = _subtree_hash(lo + k, hi, hashes)
    else:
        sibling = _subtree_hash(lo, lo + k, hashes)
        proof = _leaf_proof(lo + k, hi, n, hashes)
    return [*proof, sibling]


def prove_record(t: int, n: int, reader: HashReader) -> list[bytes]:
    """The inclusion proof that the tree of size t contains record n."""
    if t < 0 or n < 0 or n >= t:
        raise MerkleError(f"record {n} is not in a tree of size {t}")
    need: list[int] = []
    _leaf_proof_indexes(0, t, n, need)
    hashes = _read(reader, need)
    return _leaf_proof(0, t, n, hashes)


def _run_record_proof(proof: Sequence[bytes], lo: int, hi: int, n: int, leaf: bytes) -> bytes:
    if lo + 1 == hi:
        if proof:
            raise MerkleError("invalid inclusion proof: too many hashes")
        return leaf
    if not proof:
        raise MerkleError("invalid inclusion proof: too few hashes")
    k, _ = _maxpow2(hi - lo)
    if n < lo + k:
        return node_hash(_run_record_proof(proof[:-1], lo, lo + k, n, leaf), proof[-1])
    return node_hash(proof[-1], _run_record_proof(proof[:-1], lo + k, hi, n, leaf))


def check_record(proof: Sequence[bytes], t: int, root: bytes, n: int, leaf: bytes) -> None:
    """Raise MerkleError unless `proof` shows that the tree of size t with
    hash `root` has record hash `leaf` at index n."""
    if t < 0 or n < 0 or n >= t:
        raise MerkleError(f"record {n} is not in a tree of size {t}")
    _require_hashes("inclusion proof", [*proof, root, leaf])
    if _run_record_proof(proof, 0, t, n, leaf) != root:
        raise MerkleError(f"invalid inclusion proof for record {n} in tree size {t}")


def _tree_proof_indexes(lo: int, hi: int, n: int, need: list[int]) -> None:
    if n == hi:
        if lo != 0:
            _subtree_indexes(lo, hi, need)
        return
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        _tree_proof_indexes(lo, lo + k, n, need)
        _subtree_indexes(lo + k, hi, need)
    else:
        _subtree_indexes(lo, lo + k, need)
        _tree_proof_indexes(lo + k, hi, n, need)


def _tree_proof(lo: int, hi: int, n: int, hashes: list[bytes]) -> list[bytes]:
    if n == hi:
        return [] if lo == 0 else [_subtree_hash(lo, hi, hashes)]
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        proof = _tree_proof(lo, lo + k, n, hashes)
        sibling = _subtree_hash(lo + k, hi, hashes)
    else:
        sibling = _subtree_hash(lo, lo + k, hashes)
        proof = _tree_proof(lo + k, hi, n, hashes)
    return [*proof, sibling]


def prove_tree(t: int, n: int, reader: HashReader) -> list[bytes]:
    """The consistency proof that the tree of size t extends the tree of
    size n (1 <= n <= t)."""
    if t < 1 or n < 1 or n > t:
        raise MerkleError(f"no consistency proof from size {n} to size {t}")
    need: list[int] = []
    _tree_proof_indexes(0, t, n, need)
    return _tree_proof(0, t, n, _read(reader, need))


def _run_tree_proof(
    proof: Sequence[bytes], lo: int, hi: int, n: int, old: bytes
) -> tuple[bytes, bytes]:
    if n == hi:
        if lo == 0:
            if proof:
                raise MerkleError("invalid consistency proof: too many hashes")
            return old, old
        if len(proof) != 1:
            raise MerkleError("invalid consistency proof: wrong number of hashes")
        return proof[0], proof[0]
    if not proof:
        raise MerkleError("invalid consistency proof: too few hashes")
    k, _ = _maxpow2(hi - lo)
    if n <= lo + k:
        old_hash, new_hash = _run_tree_proof(proof[:-1], lo, lo + k, n, old)
        return old_hash, node_hash(new_hash, proof[-1])
    old_hash, new_hash = _run_tree_proof(proof[:-1], lo + k, hi, n, old)
    return node_hash(proof[-1], old_hash), node_hash(proof[-1], new_hash)


def check_tree(proof: Sequence[bytes], t: int, root: bytes, n: int, old_root: bytes) -> None:
    """Raise MerkleError unless `proof` shows that the tree of size t with
    hash `root` contains as a prefix the tree of size n with hash `old_root`."""
    if t < 1 or n < 1 or n > t:
        raise MerkleError(f"no consistency proof from size {n} to size {t}")
    _require_hashes("consistency proof", [*proof, root, old_root])
    old_hash, new_hash = _run_tree_proof(proof, 0, t, n, old_root)
    if old_hash != old_root or new_hash != root:
        raise MerkleError(f"invalid consistency proof from size {n} to size {t}")


class TreeBuilder:
    """Appends records to a tree from its right edge, without any reads.

    The edge is the list of the roots of the tree's complete subtrees,
    largest first (the hashes at `edge_indexes(size)`). `append` returns the
    hashes to store for the new record, exactly `stored_hashes`' answer.
    Example: ``TreeBuilder().append(record_hash(b"a"))`` is
    ``[record_hash(b"a")]``; a second append returns the record hash and the
    node over both.
    """

    def __init__(self, size: int = 0, edge: Iterable[bytes] = ()) -> None:
        self.size = size
        self.edge = list(edge)
        if len(self.edge) != size.bit_count():
            raise MerkleError(f"a tree of size {size} has {size.bit_count()} edge hashes")

    @classmethod
    def from_reader(cls, size: int, reader: HashReader) -> TreeBuilder:
        """The builder for a stored tree of `size` records (one read)."""
        return cls(size, _read(reader, edge_indexes(size)))

    def append(self, leaf: bytes) -> list[bytes]:
        """Add the record with this record hash; the hashes to store for it."""
        out = [leaf]
        edge = self.edge
        for _ in range(_trailing_ones(self.size)):
            leaf = node_hash(edge.pop(), leaf)
            out.append(leaf)
        edge.append(leaf)
        self.size += 1
        return out

    def root(self) -> bytes:
        """The root hash of the tree built so far."""
        if not self.edge:
            return EMPTY_TREE_HASH
        digest = self.edge[-1]
        for left in reversed(self.edge[:-1]):
            digest = node_hash(left, digest)
        return digest
