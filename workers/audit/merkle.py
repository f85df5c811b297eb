"""An RFC 6962 Merkle tree hash over a stream of leaves, in O(log n) memory, with no I/O.

Leaves are hashed as ``SHA-256(0x00 || leaf)``, nodes as ``SHA-256(0x01 || left || right)``,
and the empty tree is ``SHA-256("")`` (RFC 6962 section 2.1). The stack holds one perfect
subtree per set bit of the leaf count: appending merges equal heights like a binary counter,
and the root folds the stack from right to left, which is exactly the RFC's split at the
largest power of two below n.
"""

import hashlib


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleRoot:
    """Feed leaves in order; read the root of the tree over every leaf fed so far."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (height, hash) of perfect subtrees
        self.size = 0

    def add(self, leaf: bytes) -> None:
        height, digest = 0, leaf_hash(leaf)
        while self._stack and self._stack[-1][0] == height:
            _, left = self._stack.pop()
            height, digest = height + 1, node_hash(left, digest)
        self._stack.append((height, digest))
        self.size += 1

    def root(self) -> str:
        """The hex root (SHA-256 of nothing for no leaves)."""
        if not self._stack:
            return hashlib.sha256(b"").hexdigest()
        digest = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            digest = node_hash(left, digest)
        return digest.hex()


def head_leaf(object_id: str, seq: int, hash_: str) -> bytes:
    """The leaf of one signed chain head."""
    return f"{object_id}\n{seq}\n{hash_}".encode()
