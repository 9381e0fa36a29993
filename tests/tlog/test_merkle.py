"""opskit.tlog.merkle against the public RFC 6962 vectors of transparency-dev/merkle
(tests/data/tlog) and, by properties, against itself on random trees."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opskit.tlog import merkle
from opskit.tlog.merkle import MemoryHashes, MerkleError

VECTORS = Path(__file__).parents[1] / "data" / "tlog" / "transparency-dev-merkle"
# The leaf inputs of the Certificate Transparency test tree that the vectors prove
# (transparency-dev/merkle testonly.LeafInputs, from the CT reference implementation).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]


def _b64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _vectors(kind: str) -> list[tuple[str, dict]]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert len(files) >= 90, f"missing {kind} vectors"
    return [(str(f.relative_to(VECTORS)), json.loads(f.read_text())) for f in files]


def _over_ct_tree(name: str) -> bool:
    """The numbered folders prove the CT test tree; `additional/` and
    `single-entry/` use made-up hashes."""
    return name.split("/")[1].isdigit()


def _store(leaves: list[bytes]) -> MemoryHashes:
    hashes = MemoryHashes()
    for n, data in enumerate(leaves):
        new = merkle.stored_hashes(n, data, hashes)
        hashes.extend(new)
        assert len(hashes) == merkle.stored_hash_count(n + 1)
    return hashes


CT_TREE = _store(CT_LEAVES)


@pytest.mark.parametrize(("name", "vector"), _vectors("inclusion"), ids=lambda v: str(v)[:60])
def test_inclusion_vectors(name: str, vector: dict) -> None:
    proof = [_b64(h) for h in vector["proof"] or []]
    args = (proof, vector["treeSize"], _b64(vector["root"]), vector["leafIdx"])
    if vector["wantErr"]:
        with pytest.raises(MerkleError):
            merkle.check_record(*args, _b64(vector["leafHash"]))
        return
    merkle.check_record(*args, _b64(vector["leafHash"]))
    if not _over_ct_tree(name):
        return
    # The same proof and root come out of our own stored tree of the CT leaves.
    size, index = vector["treeSize"], vector["leafIdx"]
    assert merkle.tree_hash(size, CT_TREE) == _b64(vector["root"])
    assert merkle.record_hash(CT_LEAVES[index]) == _b64(vector["leafHash"])
    assert merkle.prove_record(size, index, CT_TREE) == proof


@pytest.mark.parametrize(("name", "vector"), _vectors("consistency"), ids=lambda v: str(v)[:60])
def test_consistency_vectors(name: str, vector: dict) -> None:
    proof = [_b64(h) for h in vector["proof"] or []]
    size1, size2 = vector["size1"], vector["size2"]
    args = (proof, size2, _b64(vector["root2"]), size1, _b64(vector["root1"]))
    # Like Go's tlog (whose hashes are [32]byte), a hash of another length is
    # refused even where transparency-dev accepts equal sizes without looking.
    not_hashes = any(len(h) != merkle.HASH_SIZE for h in [*proof, args[2], args[4]])
    if vector["wantErr"] or not_hashes:
        with pytest.raises(MerkleError):
            merkle.check_tree(*args)
        return
    merkle.check_tree(*args)
    if not _over_ct_tree(name):
        return
    assert merkle.tree_hash(size1, CT_TREE) == _b64(vector["root1"])
    assert merkle.tree_hash(size2, CT_TREE) == _b64(vector["root2"])
    assert merkle.prove_tree(size2, size1, CT_TREE) == proof


def test_rfc6962_hashes_and_empty_tree() -> None:
    # RFC 6962 §2.1: MTH({}) = SHA-256(), leaf = SHA-256(0x00 || d), node = SHA-256(0x01 || l || r).
    assert merkle.tree_hash(0, MemoryHashes()) == hashlib.sha256(b"").digest()
    assert merkle.record_hash(b"") == bytes.fromhex(
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    left, right = merkle.record_hash(b"a"), merkle.record_hash(b"b")
    assert merkle.node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


def test_stored_hash_index_matches_go_layout() -> None:
    # Go's tlog stores, for 3 records: h(0), h(1), node(0,1), h(2) at indexes 0, 1, 2, 3;
    # a fourth record adds h(3), node(2,3) and the level-2 root.
    assert [merkle.stored_hash_index(0, n) for n in range(4)] == [0, 1, 3, 4]
    assert merkle.stored_hash_index(1, 0) == 2
    assert merkle.stored_hash_index(1, 1) == 5
    assert merkle.stored_hash_index(2, 0) == 6
    for level in range(10):
        for n in range(100):
            index = merkle.stored_hash_index(level, n)
            assert merkle.split_stored_hash_index(index) == (level, n)


@st.composite
def trees(draw: st.DrawFn, max_size: int = 40) -> list[bytes]:
    return draw(st.lists(st.binary(max_size=40), min_size=1, max_size=max_size))


@given(leaves=trees(), data=st.data())
def test_every_inclusion_proof_verifies_and_any_flipped_byte_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    hashes = _store(leaves)
    for size in range(1, len(leaves) + 1):
        root = merkle.tree_hash(size, hashes)
        for index in range(size):
            leaf = merkle.record_hash(leaves[index])
            proof = merkle.prove_record(size, index, hashes)
            merkle.check_record(proof, size, root, index, leaf)
            if proof:
                which = data.draw(st.integers(0, len(proof) - 1))
                bad = [*proof]
                bad[which] = _flip(bad[which], data.draw(st.integers(0, 31)))
                with pytest.raises(MerkleError):
                    merkle.check_record(bad, size, root, index, leaf)
            with pytest.raises(MerkleError):
                merkle.check_record(proof, size, _flip(root, index % 32), index, leaf)
            with pytest.raises(MerkleError):
                merkle.check_record(proof, size, root, index, _flip(leaf, size % 32))


@given(leaves=trees(max_size=30), data=st.data())
def test_every_consistency_proof_verifies_and_any_flipped_byte_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    hashes = _store(leaves)
    roots = [merkle.tree_hash(size, hashes) for size in range(len(leaves) + 1)]
    for new in range(1, len(leaves) + 1):
        for old in range(1, new + 1):
            proof = merkle.prove_tree(new, old, hashes)
            merkle.check_tree(proof, new, roots[new], old, roots[old])
            if proof:
                which = data.draw(st.integers(0, len(proof) - 1))
                bad = [*proof]
                bad[which] = _flip(bad[which], data.draw(st.integers(0, 31)))
                with pytest.raises(MerkleError):
                    merkle.check_tree(bad, new, roots[new], old, roots[old])
            with pytest.raises(MerkleError):
                merkle.check_tree(proof, new, roots[new], old, _flip(roots[old], new % 32))
            if old < new:  # a tree that forgot or changed its last record is caught
                with pytest.raises(MerkleError):
                    merkle.check_tree(proof, new, roots[new - 1], old, roots[old])


@given(leaves=trees(max_size=80))
def test_tree_builder_stores_what_stored_hashes_stores(leaves: list[bytes]) -> None:
    hashes = _store(leaves)
    builder = merkle.TreeBuilder()
    built = MemoryHashes()
    for n, data in enumerate(leaves):
        built.extend(builder.append(merkle.record_hash(data)))
        assert builder.root() == merkle.tree_hash(n + 1, hashes)
        resumed = merkle.TreeBuilder.from_reader(n + 1, hashes)
        assert resumed.edge == builder.edge
    assert built == hashes


def test_bad_arguments_are_merkle_errors() -> None:
    hashes = _store(CT_LEAVES)
    for call in (
        lambda: merkle.prove_record(8, 8, hashes),
        lambda: merkle.prove_record(0, 0, hashes),
        lambda: merkle.prove_tree(8, 0, hashes),
        lambda: merkle.prove_tree(3, 4, hashes),
        lambda: merkle.tree_hash(-1, hashes),
        lambda: merkle.parse_hash("not base64"),
        lambda: merkle.parse_hash(merkle.hash_text(b"x" * 31)),
        lambda: merkle.TreeBuilder(3, [b"x" * 32]),
    ):
        with pytest.raises(MerkleError):
            call()
    digest = merkle.record_hash(b"x")
    assert merkle.parse_hash(merkle.hash_text(digest)) == digest


def _flip(digest: bytes, position: int) -> bytes:
    changed = bytearray(digest)
    changed[position] ^= 0x01
    return bytes(changed)
