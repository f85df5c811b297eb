"""The streamed Merkle root is RFC 6962's: the certificate-transparency test vectors, and the
recursive definition for every size up to 40."""

import hashlib

from workers.audit.merkle import (
    MerkleRoot,
    audit_path,
    leaf_hash,
    node_hash,
    root_from_path,
    tree_hash,
)

# RFC 6962's reference leaves (certificate-transparency's merkle tree tests).
LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]


def reference(leaves: list[bytes]) -> bytes:
    """MTH as RFC 6962 section 2.1 defines it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(reference(leaves[:k]), reference(leaves[k:]))


def root(leaves: list[bytes]) -> str:
    tree = MerkleRoot()
    for leaf in leaves:
        tree.add(leaf)
    assert tree.size == len(leaves)
    return tree.root()


def test_rfc6962_vectors() -> None:
    assert root([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root(LEAVES[:1]) == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert root(LEAVES[:2]) == "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
    assert root(LEAVES) == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def test_every_size_matches_the_recursive_definition() -> None:
    leaves = [f"leaf {n}".encode() for n in range(40)]
    for n in range(41):
        assert root(leaves[:n]) == reference(leaves[:n]).hex(), n


def test_any_change_changes_the_root() -> None:
    leaves = [f"leaf {n}".encode() for n in range(9)]
    changed = [*leaves[:4], b"other", *leaves[5:]]
    assert root(leaves) != root(changed)
    assert root(leaves) != root(leaves[:-1])
    assert root(leaves) != root([*leaves[1:], leaves[0]])  # order counts


def test_audit_paths_prove_every_leaf_of_every_size_and_nothing_else() -> None:
    leaves = [f"leaf {n}".encode() for n in range(20)]
    for n in range(1, 21):
        hashes = [leaf_hash(leaf) for leaf in leaves[:n]]
        top = root(leaves[:n])
        assert tree_hash(hashes).hex() == top
        for m in range(n):
            path = audit_path(hashes, m)
            assert root_from_path(leaves[m], m, n, path) == top, (n, m)
            assert root_from_path(b"other", m, n, path) != top
            if n > 1:
                assert root_from_path(leaves[m], (m + 1) % n, n, path) != top
    assert root_from_path(leaves[0], 3, 3, []) is None  # outside the tree
