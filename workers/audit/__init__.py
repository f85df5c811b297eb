"""The audit trail as evidence: the per-object hash chains (``workers.core.auditchain``), the
signed, append-only checkpoint log over their heads (``checkpoints``), and its Merkle tree
(``merkle``)."""
