"""The S3 store's SSE-KMS token (SeaweedFS's) may use its own transit key and nothing else:
never the data-key KEK, whose unwrap would hand it every object's data key."""

import os

import pytest

from workers.errors import Fatal
from workers.kms.keys import OpenBaoTransit, openbao_token
from workers.settings import Settings, load_settings
from workers.stack.services import OpenBao


@pytest.fixture
def operator() -> Settings:
    return load_settings(operator=True)


async def test_seaweed_token_is_refused_on_the_kek(operator: Settings, unique: str) -> None:
    addr, seaweed_token = operator.openbao_addr, OpenBao(operator).token("seaweed")
    worker = OpenBaoTransit(addr, openbao_token(operator, "worker"), operator.kek_name)
    # a KEK named after the configured one (a second deployment's, a test's)
    worker_kin = OpenBaoTransit(
        addr, openbao_token(operator, "worker"), f"{operator.kek_name}-{unique}"
    )
    seaweed_on = {
        name: OpenBaoTransit(addr, seaweed_token, name)
        for name in (operator.kek_name, f"{operator.kek_name}-{unique}", operator.s3_kms_key_id)
    }
    try:
        data_key = os.urandom(32)
        for kek, name in (
            (worker, operator.kek_name),
            (worker_kin, f"{operator.kek_name}-{unique}"),
        ):
            key_id, wrapped = await kek.wrap(data_key)
            assert await kek.unwrap(key_id, wrapped) == data_key
            with pytest.raises(Fatal, match="refused this token for transit decrypt"):
                await seaweed_on[name].unwrap(key_id, wrapped)
            with pytest.raises(Fatal, match="refused this token for transit encrypt"):
                await seaweed_on[name].wrap(data_key)
        # its own key: what SSE-KMS needs (encrypt, decrypt; datakey and key reads below)
        own = seaweed_on[operator.s3_kms_key_id]
        key_id, wrapped = await own.wrap(data_key)
        assert await own.unwrap(key_id, wrapped) == data_key
        datakey = await own._call(f"datakey/plaintext/{operator.s3_kms_key_id}", {})
        assert datakey["ciphertext"]
        assert (await own._call(f"keys/{operator.s3_kms_key_id}"))["name"] == own._name
        with pytest.raises(Fatal):
            await own._call(f"datakey/plaintext/{operator.kek_name}", {})
        with pytest.raises(Fatal):
            await own._call(f"keys/{operator.kek_name}")
    finally:
        for client in (worker, worker_kin, *seaweed_on.values()):
            await client.close()
