"""Every client the project has, over the local broker's SASL_SSL listener (the stack's own
CA): workers, the CLI and the tests' helpers; a wrong password or a missing TLS is refused."""

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from schemas.events import Placement, Source
from tests.pipeline import Pipeline
from topics import INGEST
from workers.broker import kafka_options
from workers.client.identity import cli_actor
from workers.client.kafka import Producer
from workers.client.puts import put_request
from workers.settings import Settings


@pytest.fixture
def pipeline_overrides(settings: Settings) -> dict[str, object]:
    return {
        "kafka_servers": f"127.0.0.1:{settings.kafka_sasl_port}",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_ssl_cafile": settings.home / "kafka" / "tls" / "ca.pem",
        "source_roots": (),
    }


async def test_the_whole_chain_runs_over_sasl_ssl(
    pipeline: Pipeline, worker_all, tmp_path: Path
) -> None:
    assert pipeline.settings.kafka_sasl_password is not None  # the stack's generated user
    (tmp_path / "over-tls.txt").write_bytes(b"encrypted twice on the way")
    done = pipeline.cli("put", str(tmp_path / "over-tls.txt"), "--wait", timeout_s=300)
    assert done.returncode == 0 and "over-tls.txt v1 verified" in done.stdout, (
        done.stdout + done.stderr
    )
    plain = pipeline.settings.model_copy(update={"kafka_sasl_mechanism": "PLAIN"})
    request = put_request(
        Placement(name="p.txt", targets=("s3",)), Source(inline_b64="eA=="), None, actor=cli_actor()
    )
    async with Producer(plain) as producer:  # the PLAIN mechanism too
        await producer.send(INGEST, request)


@pytest.mark.parametrize("change", ["wrong password", "no TLS"])
async def test_a_client_without_the_right_credentials_is_refused(
    pipeline: Pipeline, change: str
) -> None:
    settings = pipeline.settings
    if change == "wrong password":
        settings = settings.model_copy(update={"kafka_sasl_password": SecretStr("not-it")})
        options = kafka_options(settings)
    else:
        options = {**kafka_options(settings), "security_protocol": "SASL_PLAINTEXT"}
        del options["ssl_context"]
    producer = AIOKafkaProducer(**options, request_timeout_ms=5000)
    with pytest.raises((KafkaError, OSError, asyncio.TimeoutError)):
        await asyncio.wait_for(producer.start(), timeout=20)
    await producer.stop()
