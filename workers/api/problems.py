"""RFC 9457 problem details: every error the API returns is ``application/problem+json``.
A refusal a client acts on has a stable ``type`` URI (below); plain HTTP statuses keep
``about:blank``."""

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger("movingdata.api")

# MongoDB hands back naive UTC datetimes: every time the API answers with names its zone.
UtcDateTime = Annotated[
    datetime, AfterValidator(lambda t: t if t.tzinfo else t.replace(tzinfo=UTC))
]

MEDIA_TYPE = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content too large",
    416: "Range not satisfiable",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal error",
    502: "A service behind the API failed",
    503: "A service behind the API is unavailable",
}


TYPES = "https://movingdata.dev/problems/"
REHYDRATING = TYPES + "rehydrating"  # 503: the replica is coming back from archive; Retry-After
TOMBSTONED = TYPES + "tombstoned"  # 409: the version was deleted or forgotten
HELD = TYPES + "held"  # 409: retention or a legal hold keeps the version
PENDING = TYPES + "pending"  # 409: the version is not verified yet: ask again later
STORE_DOWN = TYPES + "store-down"  # 502/503: no store could serve the replica
RATE_LIMITED = TYPES + "rate-limited"  # 429: the minute's budget is spent; Retry-After
KINDS = {
    REHYDRATING: "Rehydrating",
    TOMBSTONED: "Tombstoned",
    HELD: "Held",
    PENDING: "Pending",
    STORE_DOWN: "Store down",
    RATE_LIMITED: "Rate limited",
}


class ProblemDetail(BaseModel):
    """An RFC 9457 problem."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    instance: str | None = None


class Problem(Exception):
    """Raise to answer with a problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        headers: dict[str, str] | None = None,
        kind: str = "about:blank",
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.kind = status, detail, headers or {}, kind


def response(
    status: int,
    detail: str,
    request: Request,
    headers: dict[str, str] | None = None,
    kind: str = "about:blank",
) -> JSONResponse:
    title = KINDS.get(kind) or TITLES.get(status, "Error")
    body = ProblemDetail(
        type=kind, title=title, status=status, detail=detail, instance=request.url.path
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def install(app: FastAPI) -> None:
    """Every error path answers with a problem: ours, HTTP errors, bad input, the rest."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return response(exc.status, exc.detail, request, exc.headers, exc.kind)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return response(exc.status_code, str(exc.detail), request, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        return response(422, detail, request)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        log.info("client disconnected", extra={"path": request.url.path})
        return response(400, "the client disconnected before the body ended", request)

    @app.exception_handler(KafkaError)
    async def _broker(request: Request, exc: KafkaError) -> JSONResponse:
        kind = type(exc).__name__
        log.warning("broker error", extra={"path": request.url.path, "error": kind})
        return response(503, f"the broker refused or is unreachable ({kind})", request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # One structured line for the operator; the client gets no traceback.
        log.exception("unexpected error", extra={"path": request.url.path})
        return response(500, "an unexpected error; the operator's log has the details", request)


PROBLEMS_CONTENT = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}
# Every operation documents these answers, as problem+json (the model puts the schema in
# the document's components).
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDetail, "description": TITLES[status], "content": PROBLEMS_CONTENT}
    for status in (400, 401, 403, 404, 413, 416, 422, 429, 500, 502, 503)
}
