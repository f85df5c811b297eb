"""A recording HTTP endpoint on 127.0.0.1: what each store backend actually sends.

Every test starts its own server on an ephemeral port, answering with a handler the test
gives, and reads back each request's method, path, query, headers and body.
"""

import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes


Respond = Callable[[Seen], Awaitable[web.Response]]


@dataclass
class Recorder:
    """The server's base URL and the requests it has seen."""

    url: str
    seen: list[Seen]

    def to(self, path_start: str) -> list[Seen]:
        """The requests whose path starts with ``path_start``, in order."""
        return [s for s in self.seen if s.path.startswith(path_start)]


@asynccontextmanager
async def recording(respond: Respond, tls: ssl.SSLContext | None = None) -> AsyncIterator[Recorder]:
    """Serve ``respond`` on 127.0.0.1 (https when ``tls`` is given) and record every request."""
    seen: list[Seen] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        one = Seen(
            request.method, request.path, dict(request.query), CIMultiDict(request.headers), body
        )
        seen.append(one)
        return await respond(one)

    server = web.Server(handle)
    runner = web.ServerRunner(server)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # an ephemeral port, known before the server starts
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock, ssl_context=tls).start()
    try:
        yield Recorder(f"{'https' if tls else 'http'}://127.0.0.1:{port}", seen)
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class LocalTLS:
    """A server context for the recording endpoint and a client context that trusts it."""

    server: ssl.SSLContext
    client: ssl.SSLContext
