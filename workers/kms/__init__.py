"""The KMS boundary: key-encryption keys behind one small interface (``keys``: OpenBao
transit, the local keyring file in ``keyring``), the audit signer, and the registry of each
version's one data key or its tombstone (``keyregistry``)."""
