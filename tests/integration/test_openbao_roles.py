"""Least privilege in OpenBao: each role's token can do its work and nothing else."""

import os

import pytest

from workers.errors import Fatal
from workers.keys import OpenBaoSigner, OpenBaoTransit, openbao_token
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
    signers = {
        role: OpenBaoSigner(addr, openbao_token(operator, role), operator.audit_signing_key)  # type: ignore[arg-type]
        for role in ("worker", "reader")
    }
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
        signature = await signers["worker"].sign(b"heads digest")
        assert await signers["reader"].verify(b"heads digest", signature)
        assert not await signers["reader"].verify(b"another digest", signature)
        with pytest.raises(Fatal):
            await signers["reader"].sign(b"heads digest")
    finally:
        for client in (worker, reader, admin, *signers.values()):
            await client.close()
