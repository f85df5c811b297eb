"""The checkpointer: the sink leader's job that signs the next audit checkpoint on a timer
(``workers.audit.checkpoints``), publishes it and each refusal on the audit topic, copies it
to the object-locked bucket where one is set (``workers.audit.lockcopy``), and remembers what
it signed, so a database put back to an older checkpoint is refused while it runs. One
signer at a time: it runs on the leader of the sink's group only."""

import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from topics import AUDIT
from workers import metrics
from workers.audit import checkpoints, lockcopy
from workers.client.kafka import produce_events
from workers.errors import MovingDataError
from workers.kms.keys import open_signer
from workers.settings import Settings

log = logging.getLogger("movingdata.audit")


class Checkpointer:
    """One round per call of ``run``; a failure waits for the next round."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db: Any = None
        self.signer = open_signer(settings, "sink")  # the sink's own token: only it signs
        self.last: checkpoints.Signed | None = None
        self.unsent: list[dict[str, Any]] = []  # what it signed, for the locked bucket
        self.bucket_ready = False
        self.actor = f"worker:sink@{socket.gethostname()}"

    async def run(self) -> None:
        if self.db is None:  # inside the event loop that uses it
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.settings.mongo_url)
            self.db = client[self.settings.mongo_database]
            await checkpoints.create_indexes(self.db)
        try:
            now = datetime.now(UTC)
            done = await checkpoints.sign_next(
                self.db, self.signer, now, self.last, self.settings.audit_sweep_segments
            )
            records = [
                checkpoints.refusal(o, why, now, self.actor) for o, why in done.refused.items()
            ]
            if done.signed is not None:
                self.last = checkpoints.Signed(done.signed["_id"], done.signed["digest"])
                records.append(checkpoints.published(done.signed, self.actor))
                if self.settings.audit_lock_bucket:
                    self.unsent.append(done.signed)
            if records:
                await produce_events(self.settings, AUDIT, records)
            await self.copy()
        except (MovingDataError, PyMongoError, KafkaError) as exc:  # the next round tries again
            metrics.JOB_FAILURES.labels("checkpoint").inc()
            log.warning("audit checkpoint failed", extra={"error": str(exc)[:200]})
            return
        metrics.JOB_SUCCEEDED.labels("checkpoint").set(time.time())
        metrics.CHECKPOINT_REFUSED.set(len(done.refused) + (done.problem is not None))
        if done.problem is not None:
            log.error("audit checkpoint refused", extra={"stage": "sink", "reason": done.problem})
        for object_id, (problem, _) in done.refused.items():
            log.error(
                "audit head refused",
                extra={"stage": "sink", "object_id": object_id, "reason": problem},
            )
        if done.signed is not None:
            signed = {"number": done.signed["_id"], "moved": done.signed["moved"]}
            log.info("audit checkpoint signed", extra={"stage": "sink", **signed})

    async def copy(self) -> None:
        """Copy what this process signed to the locked bucket, oldest first (a copy that
        failed is tried next round): only its own checkpoints, never one it read from the
        database, which a forgery could have put there."""
        if self.unsent and not self.bucket_ready:
            await lockcopy.ensure(self.settings)
            self.bucket_ready = True
        while self.unsent:
            doc = self.unsent[0]
            await lockcopy.put(
                self.settings, checkpoints.published(doc, self.actor).detail, doc["at"]
            )
            self.unsent.pop(0)
