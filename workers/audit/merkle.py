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


def segment_leaf(segment: int, root: str, size: int) -> bytes:
    """The leaf of one segment (the root of its heads' tree) in the tree over segments."""
    return f"segment {segment}\n{size}\n{root}".encode()


def tree_hash(hashes: list[bytes]) -> bytes:
    """MTH over leaves already hashed (``leaf_hash``), as RFC 6962 defines it."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = split(len(hashes))
    return node_hash(tree_hash(hashes[:k]), tree_hash(hashes[k:]))


def split(n: int) -> int:
    """The largest power of two below ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def audit_path(hashes: list[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 6962 section 2.1.1: the sibling hashes from the leaf up."""
    if len(hashes) <= 1:
        return []
    k = split(len(hashes))
    if index < k:
        return [*audit_path(hashes[:k], index), tree_hash(hashes[k:])]
    return [*audit_path(hashes[k:], index - k), tree_hash(hashes[:k])]


def root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> str | None:
    """The root an inclusion proof gives (RFC 9162 section 2.1.3.2), None if the path does
    not fit a tree of ``size`` leaves."""
    if not 0 <= index < size:
        return None
    fn, sn, digest = index, size - 1, leaf_hash(leaf)
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            digest = node_hash(sibling, digest)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            digest = node_hash(digest, sibling)
        fn, sn = fn >> 1, sn >> 1
    return digest.hex() if sn == 0 else None
