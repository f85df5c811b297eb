"""The staging sweep: the encrypt workers' job that removes staged uploads nothing needs
any more (the rules: ``workers.staging.sweep``)."""

import logging

from workers import staging
from workers.deps import Deps
from workers.errors import MovingDataError

log = logging.getLogger("movingdata.jobs")


async def sweep_staging(deps: Deps) -> None:
    """Remove staged uploads older than the TTL that nothing needs (``staging.sweep``)."""
    settings = deps.settings
    older_than = staging.cutoff(deps.now(), settings.staging_ttl_s)
    try:
        swept = await staging.sweep(
            deps.staging, settings.staging_prefix, older_than, deps.catalog, deps.registry
        )
    except MovingDataError as exc:  # the next round tries again
        log.warning("staging sweep failed", extra={"error": str(exc)})
        return
    if swept:
        log.info("staging swept", extra={"removed": swept})
