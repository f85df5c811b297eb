"""Readiness: real checks of what a process depends on (the API's and every worker's
``/readyz``): the broker, the database, each store with this process's credentials, the KMS."""

import asyncio
from collections.abc import Awaitable, Mapping

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from workers.broker import kafka_options
from workers.settings import Settings
from workers.stores.base import ObjectStore

TIMEOUT_S = 5.0


async def broker(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(settings), request_timeout_ms=int(TIMEOUT_S * 1000))
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()


async def database(settings: Settings) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        settings.mongo_url, serverSelectionTimeoutMS=int(TIMEOUT_S * 1000)
    )
    try:
        await client.admin.command("ping")
    finally:
        await client.close()


async def kms(settings: Settings) -> None:
    if settings.kek_provider == "local":
        return
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    url = f"{settings.openbao_addr}/v1/sys/health"
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as response:
        if response.status != 200:  # 429 standby, 503 sealed, 501 not initialised
            raise RuntimeError(f"openbao answered {response.status}")


async def readiness(settings: Settings, stores: Mapping[str, ObjectStore]) -> dict[str, str]:
    """``ok`` or the reason, per dependency; every check at once, each bounded in time."""
    checks: dict[str, Awaitable[None]] = {
        "broker": broker(settings),
        "database": database(settings),
        "kms": kms(settings),
        **{f"store:{name}": store.check() for name, store in stores.items()},
    }

    async def one(check: Awaitable[None]) -> str:
        try:
            await asyncio.wait_for(check, TIMEOUT_S + 1)
        except Exception as exc:  # the reason is the answer
            return f"{type(exc).__name__}: {exc}"[:200] or type(exc).__name__
        return "ok"

    results = await asyncio.gather(*(one(c) for c in checks.values()))
    return dict(zip(checks, results, strict=True))
