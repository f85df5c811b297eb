"""The API application: services opened once (lifespan), bearer-token auth, rate limits,
and an id for every request (``X-Request-Id``), which the audit records it makes carry."""

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from prometheus_client import Counter, Histogram

from workers.api import holds, links, objects, operations, problems, syncs
from workers.api.deps import VERSION, Services
from workers.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Services.open(settings) as opened:
            app.state.services = opened
            yield

    app = FastAPI(
        title="MovingData",
        version=VERSION,
        summary="Move data between clouds securely and verifiably.",
        lifespan=lifespan,
        responses=problems.PROBLEMS,  # type: ignore[arg-type]
    )
    problems.install(app)
    app.include_router(objects.router)
    app.include_router(operations.router)
    app.include_router(holds.router)
    app.include_router(links.router)
    app.include_router(syncs.router)

    @app.middleware("http")
    async def measured(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        began = time.monotonic()
        answer = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        REQUESTS.labels(request.method, path, str(answer.status_code)).inc()
        LATENCY.labels(request.method, path).observe(time.monotonic() - began)
        return answer

    @app.middleware("http")
    async def named(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.request_id = uuid.uuid4().hex
        request.state.rate_limit = {}  # set by the token check: an authenticated answer's
        answer = await call_next(request)
        answer.headers["X-Request-Id"] = request.state.request_id
        answer.headers.update(request.state.rate_limit)
        return answer

    return app


REQUESTS = Counter(
    "movingdata_api_requests_total", "API requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "movingdata_api_request_seconds", "Time to the first byte of an answer", ["method", "route"]
)
