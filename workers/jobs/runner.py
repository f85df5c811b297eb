"""How the sink leader's jobs over MongoDB's state run on a timer."""

import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from workers import metrics
from workers.client.state import State
from workers.errors import MovingDataError
from workers.settings import Settings

log = logging.getLogger("movingdata.jobs")


class StateJob:
    """A once-per-group job over MongoDB's state, with the sink: the scheduled scrub (a share
    of the replicas read back, longest ago first: in store-digest mode, how every replica is
    still read back), the reconcile (pending versions that stopped moving, re-driven) and the
    retention (versions older than the verified ones kept, deleted).
    Its client opens inside the event loop that runs it; a failure waits for the next round."""

    def __init__(
        self,
        settings: Settings,
        job: Callable[[Settings, State], Awaitable[int]],
        name: str,
        done: str,
        task: str,
    ) -> None:
        self.settings, self.job, self.name, self.done = settings, job, name, done
        self.task = task  # its label in the job metrics
        self.state: State | None = None

    async def run(self) -> None:
        if self.state is None:
            self.state = State(self.settings)
        try:
            sent = await self.job(self.settings, self.state)
        except (MovingDataError, PyMongoError, KafkaError) as exc:  # the next round tries again
            metrics.JOB_FAILURES.labels(self.task).inc()
            log.warning(f"{self.name} failed", extra={"error": str(exc)[:200]})
            return
        metrics.JOB_SUCCEEDED.labels(self.task).set(time.time())
        if sent:
            log.info(self.done, extra={"stage": "sink", "events": sent})
