"""Least privilege in OpenBao: each role's token can do its work and nothing else."""

import os

import pytest

from workers.errors import Fatal
from workers.kms.keys import OpenBaoSigner, OpenBaoTransit, openbao_token
from workers.settings import Settings, load_settings


@pytest.fixture
def operator() -> Settings:
    return load_settings(operator=True)


async def test_each_role_does_its_work_and_nothing_else(operator: Settings, unique: str) -> None:
    name = f"{operator.kek_name}-{unique}"
    addr = operator.openbao_addr
    worker, reader, admin = (
        OpenBaoTransit(addr, openbao_token(operator, role), name)  # type: ignore[arg-type]
        for role in ("worker", "reader", "admin")
    )
    try:
        data_key = os.urandom(32)
        key_id, wrapped = await worker.wrap(data_key)  # creates the test's own KEK
        assert await worker.unwrap(key_id, wrapped) == data_key
        assert await reader.unwrap(key_id, wrapped) == data_key
        for forbidden in (worker.rotate(), reader.rotate(), reader.wrap(data_key)):
            with pytest.raises(Fatal, match="refused this token"):
                await forbidden
        newest = await admin.rotate()
        assert newest.endswith(":v2")
        rewrapped_id, rewrapped = await admin.rewrap(key_id, wrapped)
        with pytest.raises(Fatal):
            await worker.rewrap(key_id, wrapped)
        assert await worker.unwrap(rewrapped_id, rewrapped) == data_key
    finally:
        for client in (worker, reader, admin):
            await client.close()


async def test_only_the_sink_token_signs_checkpoints(operator: Settings, unique: str) -> None:
    """The sink's own token signs and verifies with the audit key and does nothing else; the
    workers' token is refused both; readers verify only."""
    addr, audit_key = operator.openbao_addr, operator.audit_signing_key
    worker, sink, reader = (
        OpenBaoSigner(addr, openbao_token(operator, role), audit_key)  # type: ignore[arg-type]
        for role in ("worker", "sink", "reader")
    )
    name = f"{operator.kek_name}-{unique}"
    kek = OpenBaoTransit(addr, openbao_token(operator, "worker"), name)
    sink_kek = OpenBaoTransit(addr, openbao_token(operator, "sink"), name)
    try:
        signature = await sink.sign(b"heads digest")
        assert await sink.verify(b"heads digest", signature)  # the latest, before the next
        assert not await sink.verify(b"another digest", signature)
        assert await reader.verify(b"heads digest", signature)
        assert not await reader.verify(b"another digest", signature)
        for refused in (worker.sign(b"heads digest"), reader.sign(b"heads digest")):
            with pytest.raises(Fatal, match="refused this token for transit sign"):
                await refused
        with pytest.raises(Fatal, match="refused this token for transit verify"):
            await worker.verify(b"heads digest", signature)
        # The audit key only: the sink's token neither wraps nor unwraps a data key.
        key_id, wrapped = await kek.wrap(os.urandom(32))
        for forbidden in (sink_kek.wrap(os.urandom(32)), sink_kek.unwrap(key_id, wrapped)):
            with pytest.raises(Fatal, match="refused this token"):
                await forbidden
    finally:
        for client in (worker, sink, reader, kek, sink_kek):
            await client.close()
