"""Readiness: real checks of what a process depends on (the API's and every worker's
``/readyz``): the broker, the database, each store with this process's credentials, the KMS.

Every dependency is checked and reported (``ok``, ``timeout`` or ``unreachable``: never the
exception's text, which goes to the log), but a process is ready when what it cannot serve
without answers: ``needs`` says what, per stage (``NEEDS``). A store is needed as "at least
one": one cloud down must not take every API pod out of its Service, nor every worker."""

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from workers.broker import kafka_options
from workers.metrics import DEPENDENCY_UP
from workers.settings import Settings
from workers.stores.base import ObjectStore

TIMEOUT_S = 5.0
log = logging.getLogger("movingdata.health")


@dataclass(frozen=True, slots=True)
class Needs:
    """What a process cannot serve without: these dependencies, and at least one store."""

    required: frozenset[str]
    a_store: bool


# Per stage (and the API): what its work touches besides the broker, which every one needs.
NEEDS = {
    "api": Needs(frozenset({"broker", "database"}), a_store=True),  # reads, uploads
    "scan": Needs(frozenset({"broker", "database"}), a_store=False),  # jobs; reads sources
    "ingest": Needs(frozenset({"broker", "database"}), a_store=False),  # the catalog
    "encrypt": Needs(frozenset({"broker", "database", "kms"}), a_store=True),  # data keys
    "replicate": Needs(frozenset({"broker"}), a_store=True),
    "verify": Needs(frozenset({"broker"}), a_store=True),
    "tier": Needs(frozenset({"broker", "database"}), a_store=True),
    "delete": Needs(frozenset({"broker", "database"}), a_store=True),  # tombstones
    "retry": Needs(frozenset({"broker"}), a_store=False),
    "sink": Needs(frozenset({"broker", "database", "kms"}), a_store=False),  # it signs
}


def needs_of(stages: Iterable[str]) -> Needs:
    """What a process running ``stages`` needs: the union of theirs."""
    chosen = [NEEDS[s] for s in stages]
    return Needs(frozenset().union(*(n.required for n in chosen)), any(n.a_store for n in chosen))


def ready(checks: Mapping[str, str], needs: Needs) -> bool:
    """Whether every required dependency answered, and a store if one is needed."""
    stores = [v for k, v in checks.items() if k.startswith("store:")]
    return all(checks.get(d) == "ok" for d in needs.required) and (
        not needs.a_store or "ok" in stores
    )


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


async def readiness(
    settings: Settings, stores: Mapping[str, ObjectStore], needs: Needs
) -> dict[str, object]:
    """The ``/readyz`` body: ready or not for ``needs``, each dependency's state (also the
    ``movingdata_dependency_up`` gauge), what is required."""
    checks = await check_all(settings, stores)
    for name, state in checks.items():
        DEPENDENCY_UP.labels(name).set(state == "ok")
    return {
        "ready": ready(checks, needs),
        "checks": checks,
        "required": sorted(needs.required) + (["a store"] if needs.a_store else []),
    }


async def check_all(settings: Settings, stores: Mapping[str, ObjectStore]) -> dict[str, str]:
    """``ok``, ``timeout`` or ``unreachable`` per dependency (the reason logged, never
    answered); every check at once, each bounded in time."""
    checks: dict[str, Awaitable[None]] = {
        "broker": broker(settings),
        "database": database(settings),
        "kms": kms(settings),
        **{f"store:{name}": store.check() for name, store in stores.items()},
    }

    async def one(name: str, check: Awaitable[None]) -> str:
        try:
            await asyncio.wait_for(check, TIMEOUT_S + 1)
        except TimeoutError:
            log.warning("dependency timed out", extra={"dependency": name})
            return "timeout"
        except Exception as exc:  # the reason is for the operator's log, not the answer
            reason = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("dependency unreachable", extra={"dependency": name, "error": reason})
            return "unreachable"
        return "ok"

    results = await asyncio.gather(*(one(n, c) for n, c in checks.items()))
    return dict(zip(checks, results, strict=True))
